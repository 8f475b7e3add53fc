/**
 * The server lock and the checks before anything changes. Every step that changes a server
 * starts with `stepScript`: it runs only while this update holds the lock (its lease, exported by
 * the Command resource as NOSTROMO_LEASE), and takes it, after the preflight checks, when it does
 * not hold it yet, so a retry, a config-only or an env-only change is locked and checked exactly
 * as a new release is.
 */
import { DeployConfig } from "../config";
import { quote, script } from "../shell";
import { layout, prelude } from "./layout";
import { CONFIG_BACKUP_RESULT, configBackupLines } from "./configBackup";
import { SYSTEMD_UNIT_DIR } from "./slot";

/** The checks before anything changes on the server, and the root layout. */
export function preflightLines(cfg: DeployConfig): string[] {
  const { server } = cfg;
  const needed = new Set(["git", "tar", "curl", "node", "npm", "flock", "mktemp", "timeout"]);
  for (const app of cfg.apps) needed.add(app.kind !== "static" ? (app.manager === "pm2" ? "pm2" : "systemctl") : "ln");
  // A python release makes its own virtualenv (python3 -m venv: Debian's python3-venv).
  if (cfg.apps.some((a) => a.kind === "python")) needed.add("python3");
  if (cfg.backup.enabled && cfg.apps.some((a) => a.migrate)) ["pg_dump", "pg_restore", "psql", "sha256sum"].forEach((c) => needed.add(c));
  if (cfg.nginx.routes.length > 0) needed.add(cfg.nginx.reloadCommand.split(/\s+/)[0]);
  const L = layout(server.root);
  const dirs = ["releases", "current", "shared", "slots", "repos"].map((d) => `${server.root}/${d}`);
  const pm2 = cfg.apps.some((a) => a.kind !== "static" && a.manager === "pm2");
  return [
    `missing=""`,
    `for c in ${[...needed].map(quote).join(" ")}; do command -v "$c" >/dev/null 2>&1 || missing="$missing $c"; done`,
    `[ -z "$missing" ] || { echo "preflight: missing on $(hostname): $missing (PATH=$PATH)" >&2; exit 1; }`,
    ...(cfg.apps.some((a) => a.kind !== "static" && a.manager === "systemd")
      ? [
          `[ -w ${quote(SYSTEMD_UNIT_DIR)} ] || { echo "preflight: $(id -un)@$(hostname) cannot write ${SYSTEMD_UNIT_DIR}: apps with manager systemd need a deploy user that can (root), to install their slots' units" >&2; exit 1; }`,
        ]
      : []),
    `mkdir -p ${[...dirs, L.backups, L.upstreams].map(quote).join(" ")}`,
    `free=$(df -Pm ${quote(server.root)} | awk 'NR==2 {print $4}')`,
    ...(cfg.apps.some((a) => a.kind === "python")
      ? [
          `python3 -c 'import ensurepip, venv' 2>/dev/null || { echo "preflight: python3 on $(hostname) cannot make virtualenvs (install python3-venv), needed by the python apps" >&2; exit 1; }`,
        ]
      : []),
    `[ "$free" -ge ${server.minFreeMiB} ] || { echo "preflight: only $free MiB free under ${server.root}, need ${server.minFreeMiB} MiB (server.minFreeMiB)" >&2; exit 1; }`,
    // PM2 forgets its processes when its daemon restarts (a reboot) unless `pm2 startup` installed
    // its boot hook: we save after every switch, the hook resurrects what was saved.
    ...(pm2
      ? [
          `ls /etc/systemd/system/pm2-*.service /etc/init.d/pm2-* >/dev/null 2>&1 || echo "preflight: warning: PM2 has no boot hook on $(hostname) (run \\\`pm2 startup\\\` once as $(id -un)); after a reboot nothing serves until \\\`pulumi up --refresh\\\`" >&2`,
        ]
      : []),
    `echo "preflight ok: $free MiB free"`,
  ];
}

/**
 * The lines every server-changing step starts with: a private temp folder, the exit trap, and
 * the lease check. The lock is a folder (stack, lease, owner, since, started) changed only under
 * flock, so sibling steps of one update never see it half-written. A lock of this same stack
 * with another lease was left by a deploy of ours that stopped (the backend lock rules out a
 * concurrent one): it is taken over. Another stack's lock is refused, naming its holder.
 * A failing step leaves the lock held (siblings of the same update may still run).
 */
export function leaseGuard(cfg: DeployConfig): string {
  const root = cfg.server.root;
  const lock = layout(root).lock;
  const stack = quote(cfg.stack);
  return [
    `lock=${quote(lock)}`,
    `nostromo_tmp=$(mktemp -d)`,
    `nostromo_held=""`,
    // A step with its own clean-up redefines nostromo_cleanup rather than setting another trap.
    `nostromo_cleanup() { :; }`,
    `nostromo_on_exit() {`,
    `  rc=$?`,
    `  nostromo_cleanup`,
    `  rm -rf "$nostromo_tmp"`,
    `  if [ "$rc" -ne 0 ] && [ -n "$nostromo_held" ]; then echo "the server lock stays with this update (lease $NOSTROMO_LEASE): other steps of it may still run; the next \\\`pulumi up\\\` of stack "${stack}" takes it over (if no deploy runs: rm -rf ${lock})" >&2; fi`,
    `  exit "$rc"`,
    `}`,
    `trap nostromo_on_exit EXIT`,
    `[ -n "\${NOSTROMO_LEASE:-}" ] || { echo "no lease: a step runs only inside a pulumi up that holds the server lock" >&2; exit 1; }`,
    `mkdir -p ${quote(root)}`,
    `exec 9>>${quote(`${root}/.lock-acquire`)}`,
    `flock -w 60 9 || { echo "could not take ${root}/.lock-acquire in 60 s" >&2; exit 1; }`,
    `if [ "$(cat "$lock/lease" 2>/dev/null)" != "$NOSTROMO_LEASE" ]; then`,
    ...preflightLines(cfg).map((l) => `  ${l}`),
    `  if [ -d "$lock" ]; then`,
    `    holder=$(cat "$lock/stack" 2>/dev/null || echo unknown)`,
    `    if [ "$holder" != ${stack} ]; then`,
    `      echo "deploy lock held by stack '$holder' (update $(cat "$lock/lease" 2>/dev/null), $(cat "$lock/owner" 2>/dev/null), since $(cat "$lock/since" 2>/dev/null)); nothing was changed. That stack's next \\\`pulumi up\\\` takes it back; if no deploy is running there: rm -rf $lock" >&2`,
    `      exit 1`,
    `    fi`,
    `    echo "taking over the lock left by update $(cat "$lock/lease" 2>/dev/null) of this stack (since $(cat "$lock/since" 2>/dev/null))"`,
    `    rm -rf "$lock"`,
    `  fi`,
    `  mkdir "$lock"`,
    `  printf '%s\\n' ${stack} > "$lock/stack"`,
    `  printf '%s\\n' "$NOSTROMO_LEASE" > "$lock/lease"`,
    `  printf '%s@%s\\n' "$(id -un)" "$(hostname)" > "$lock/owner"`,
    `  date -u +%Y-%m-%dT%H:%M:%SZ > "$lock/since"`,
    `  date +%s > "$lock/started"`,
    `  echo "lock taken by "${stack}" (lease $NOSTROMO_LEASE)"`,
    `fi`,
    `nostromo_held=1`,
    `flock -u 9`,
    `exec 9>&-`,
  ].join("\n");
}

/** A server-changing step: prelude, lease guard, then its own lines (ending with its result). */
export function stepScript(cfg: DeployConfig, ...lines: (string | false | undefined)[]): string {
  return script(prelude(cfg.server), leaseGuard(cfg), ...lines);
}

/**
 * The first step of a deploy: preflight and the lock, taken for this update, then the archive of
 * the server's configuration as it is (lib/scripts/configBackup.ts), before any later step can
 * change it.
 */
export function lockScript(cfg: DeployConfig): string {
  return stepScript(
    cfg,
    ...configBackupLines(cfg),
    `nostromo_result stack=${quote(cfg.stack)} started="$(cat "$lock/started")" ${CONFIG_BACKUP_RESULT}`,
  );
}
