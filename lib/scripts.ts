/**
 * Pure builders of the shell scripts one deploy runs on the server: values in, script text out,
 * every interpolated value through `quote`. No secret is ever part of a script's text: secrets
 * arrive on standard input (a failing command's text is printed in the error).
 */
import { createHash } from "crypto";
import { AppConfig, DeployConfig, ServerConfig, SmokeStep } from "./config";
import { quote, script } from "./shell";

/** Where things live under the deploy root (DESIGN: server layout). */
export function layout(root: string, app?: string) {
  return {
    releases: `${root}/releases/${app}`,
    current: `${root}/current/${app}`,
    shared: `${root}/shared/${app}`,
    slots: `${root}/slots/${app}`,
    mirror: `${root}/repos/${app}.git`,
    backups: `${root}/backups`,
    lock: `${root}/.lock`,
    journal: `${root}/deploys.jsonl`,
    upstreams: `${root}/nginx-upstreams`,
  };
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** PATH and environment every remote script starts with. */
export function prelude(server: ServerConfig): string {
  const lines = ["umask 022"];
  if (server.path.length > 0) lines.push(`export PATH=${server.path.map(quote).join(":")}:"$PATH"`);
  for (const [k, v] of Object.entries(server.env)) lines.push(`export ${k}=${quote(v)}`);
  return lines.join("\n");
}

/** Checks the server before anything changes, and creates the root layout. */
export function preflightScript(cfg: DeployConfig): string {
  const { server } = cfg;
  const needed = new Set(["git", "tar", "curl", "node", "npm", "flock"]);
  for (const app of cfg.apps) needed.add(app.kind === "node" ? (app.manager === "pm2" ? "pm2" : "systemctl") : "ln");
  if (cfg.backup.enabled && cfg.apps.some((a) => a.migrate)) ["pg_dump", "pg_restore", "sha256sum"].forEach((c) => needed.add(c));
  if (cfg.nginx.site) needed.add(cfg.nginx.reloadCommand.split(/\s+/)[0]);
  const L = layout(server.root);
  return script(
    prelude(server),
    `missing=""`,
    `for c in ${[...needed].map(quote).join(" ")}; do command -v "$c" >/dev/null 2>&1 || missing="$missing $c"; done`,
    `[ -z "$missing" ] || { echo "preflight: missing on $(hostname): $missing (PATH=$PATH)" >&2; exit 1; }`,
    cfg.apps.some((a) => a.kind === "node" && a.manager === "systemd") &&
      `[ -w ${quote(SYSTEMD_UNIT_DIR)} ] || { echo "preflight: $(id -un)@$(hostname) cannot write ${SYSTEMD_UNIT_DIR}: apps with manager systemd need a deploy user that can (root), to install their slots' units" >&2; exit 1; }`,
    `mkdir -p ${[`${server.root}/releases`, `${server.root}/current`, `${server.root}/shared`, `${server.root}/slots`, `${server.root}/repos`, L.backups, L.upstreams].map(quote).join(" ")}`,
    `free=$(df -Pm ${quote(server.root)} | awk 'NR==2 {print $4}')`,
    `[ "$free" -ge ${server.minFreeMiB} ] || { echo "preflight: only $free MiB free under ${server.root}, need ${server.minFreeMiB} MiB (server.minFreeMiB)" >&2; exit 1; }`,
    `echo "preflight ok: $free MiB free"`,
  );
}

/**
 * Takes the server-side deploy lock (mkdir is atomic). A lock left by this same stack is a
 * deploy of ours that died (the backend lock rules out a concurrent one): it is taken over.
 * A lock of another stack is refused, naming its holder and how to clear it.
 */
export function lockScript(server: ServerConfig, stack: string, refs: string): string {
  const lock = layout(server.root).lock;
  return script(
    prelude(server),
    `lock=${quote(lock)}`,
    `if ! mkdir "$lock" 2>/dev/null; then`,
    `  holder=$(cat "$lock/stack" 2>/dev/null || echo unknown)`,
    `  if [ "$holder" != ${quote(stack)} ]; then`,
    `    echo "deploy lock held by stack '$holder' ($(cat "$lock/owner" 2>/dev/null), since $(cat "$lock/since" 2>/dev/null)); if no deploy is running there: rm -rf $lock" >&2`,
    `    exit 1`,
    `  fi`,
    `  echo "taking over a stale lock of this stack from $(cat "$lock/since" 2>/dev/null)"`,
    `fi`,
    `printf '%s\\n' ${quote(stack)} > "$lock/stack"`,
    `printf '%s@%s\\n' "$(id -un)" "$(hostname)" > "$lock/owner"`,
    `date -u +%Y-%m-%dT%H:%M:%SZ > "$lock/since"`,
    `date +%s > "$lock/started"`,
    `printf '%s\\n' ${quote(refs)} > "$lock/refs"`,
    `echo "lock taken by "${quote(stack)}`,
  );
}

/**
 * pg_dump in custom format, verified (pg_restore --list, size > 0, sha256), newest `keep` kept.
 * DATABASE_URL arrives on standard input. Prints one JSON line: path, size, sha256, time.
 */
export function backupScript(cfg: DeployConfig, label: string): string {
  const { server, stack } = cfg;
  const dir = layout(server.root).backups;
  const journal = layout(server.root).journal;
  return script(
    prelude(server),
    lockGuard(cfg),
    `IFS= read -r DATABASE_URL`,
    `dir=${quote(dir)}`,
    `mkdir -p "$dir"`,
    `stamp=$(date -u +%Y%m%dT%H%M%SZ)`,
    `file="$dir/"${quote(stack)}"-$stamp-"${quote(label)}".dump"`,
    `tmp="$dir/.partial-$$.dump"`,
    `nostromo_cleanup() { rm -f "$tmp"; }`,
    `pg_dump --format=custom --no-owner --dbname="$DATABASE_URL" --file="$tmp"`,
    `pg_restore --list "$tmp" >/dev/null`,
    `size=$(stat -c %s "$tmp")`,
    `[ "$size" -gt 0 ] || { echo "backup: empty dump" >&2; exit 1; }`,
    `sum=$(sha256sum "$tmp" | cut -d' ' -f1)`,
    `mv "$tmp" "$file"`,
    `printf '%s  %s\\n' "$sum" "$(basename "$file")" > "$file.sha256"`,
    // Newest first; everything after the newest `keep` goes, with its checksum, except the
    // backup of the last successful deploy (a run of failed deploys must not push it out).
    `last_good=$(grep '"result":"succeeded"' ${quote(journal)} 2>/dev/null | tail -n 1 | sed -n 's/.*"backup":"\\([^"]*\\)".*/\\1/p')`,
    `ls -1t "$dir"/${quote(stack)}-*.dump 2>/dev/null | tail -n +${cfg.backup.keep + 1} | while IFS= read -r old; do [ "$old" = "$last_good" ] || rm -f "$old" "$old.sha256"; done`,
    `printf '{"path":"%s","size":%s,"sha256":"%s","time":"%s"}\\n' "$file" "$size" "$sum" "$stamp"`,
  );
}

/**
 * Fetches `sha` into releases/<app>/<sha>, links the shared .env (read from standard input,
 * written 0600), installs and builds. A release already built for that SHA is kept as it is.
 * Prints the changelog since the serving release, then `previous=<sha|none>`.
 */
export function releaseScript(cfg: DeployConfig, app: AppConfig, sha: string): string {
  const { server } = cfg;
  const L = layout(server.root, app.name);
  const release = `${L.releases}/${sha}`;
  return script(
    prelude(server),
    lockGuard(cfg),
    `mirror=${quote(L.mirror)}; release=${quote(release)}; shared=${quote(L.shared)}`,
    `mkdir -p ${quote(L.releases)} "$shared" ${quote(`${server.root}/repos`)}`,
    // The .env is rendered on every run: config and secrets may change without a new SHA.
    `(umask 077; cat > "$shared/.env.new") && mv -f "$shared/.env.new" "$shared/.env"`,
    `if [ ! -d "$mirror" ]; then git clone --quiet --mirror ${quote(app.repo)} "$mirror"; fi`,
    `git -C "$mirror" cat-file -e ${quote(`${sha}^{commit}`)} 2>/dev/null || git -C "$mirror" fetch --quiet --prune --tags origin '+refs/heads/*:refs/heads/*'`,
    `git -C "$mirror" cat-file -e ${quote(`${sha}^{commit}`)} || { echo "release: commit ${sha} not found in "${quote(app.repo)} >&2; exit 1; }`,
    `if [ -f "$release/.nostromo-built" ]; then`,
    `  echo "release ${app.name}@${sha.slice(0, 12)} already built: kept"`,
    `else`,
    `  tmp=${quote(`${L.releases}/.${sha}.partial`)}`,
    `  rm -rf "$tmp" && mkdir -p "$tmp"`,
    `  git -C "$mirror" archive ${quote(sha)} | tar -x -C "$tmp"`,
    `  ln -sfn "$shared/.env" "$tmp/.env"`,
    `  printf '%s\\n' ${quote(sha)} > "$tmp/REVISION"`,
    `  cd "$tmp"`,
    `  ${app.install}`,
    app.build ? `  ${app.build}` : undefined,
    `  touch .nostromo-built`,
    `  cd /`,
    `  rm -rf "$release" && mv -T "$tmp" "$release"`,
    `  echo "release ${app.name}@${sha.slice(0, 12)} built"`,
    `fi`,
    `prev=$(basename "$(readlink ${quote(L.current)} 2>/dev/null)" 2>/dev/null || true)`,
    `if [ -n "$prev" ] && [ "$prev" != ${quote(sha)} ] && git -C "$mirror" cat-file -e "$prev^{commit}" 2>/dev/null; then`,
    `  git -C "$mirror" log --no-merges --format='changelog: %h %s' "$prev..${sha}"`,
    `fi`,
    `echo "previous=\${prev:-none}"`,
  );
}

/**
 * Runs the app's migration inside the new release, with the release's .env loaded. A failure
 * names the backup taken just before it.
 */
export function migrateScript(cfg: DeployConfig, app: AppConfig, sha: string, backupPath?: string): string {
  const release = `${layout(cfg.server.root, app.name).releases}/${sha}`;
  return script(
    prelude(cfg.server),
    lockGuard(cfg),
    `cd ${quote(release)}`,
    `set -a; . ./.env; set +a`,
    `echo "migrating ${app.name}@${sha.slice(0, 12)}"`,
    `if ! ( ${app.migrate} ); then`,
    `  echo "migration of ${app.name}@${sha.slice(0, 12)} failed; nothing was switched, the old release still serves."${backupPath ? `" Database backup taken just before it: "${quote(backupPath)}` : ""} >&2`,
    `  exit 1`,
    `fi`,
  );
}

/** Name of a slot's process (PM2) or unit (systemd). */
export function slotUnit(app: string, slot: "blue" | "green", manager: "pm2" | "systemd"): string {
  return manager === "pm2" ? `${app}-${slot}` : `nostromo-${app}-${slot}.service`;
}

/** Reads the live slot (blue/green) and picks the other one as `target`, with its port. */
function pickSlot(server: ServerConfig, app: AppConfig): string[] {
  const L = layout(server.root, app.name);
  const ports = app.ports!;
  return [
    `live=$(cat ${quote(`${L.slots}/live`)} 2>/dev/null || echo none)`,
    `if [ "$live" = blue ]; then target=green; port=${ports.green}; else target=blue; port=${ports.blue}; fi`,
  ];
}

/** Where the slots' units are written (the deploy user must be able to write there). */
export const SYSTEMD_UNIT_DIR = "/etc/systemd/system";

/**
 * systemd unit of one slot; the slot symlink points at the release it runs. The app's .env is
 * sourced by bash, as under PM2 (one parser for both managers, and the one that wrote it: the
 * file is shell-quoted), so no EnvironmentFile=. Every value goes through systemd's quoting.
 */
export function systemdUnit(server: ServerConfig, app: AppConfig, slot: "blue" | "green"): string {
  const L = layout(server.root, app.name);
  const port = app.ports![slot];
  const env: [string, string][] = [["PORT", String(port)]];
  if (server.path.length > 0) env.push(["PATH", `${server.path.join(":")}:/usr/local/bin:/usr/bin:/bin`]);
  // The scripts' environment (prelude), which a PM2 process inherits too; sorted, so the unit's
  // text (and so its restart) does not depend on the order of keys in the stack's config.
  for (const k of Object.keys(server.env).sort()) env.push([k, server.env[k]]);
  return [
    "[Unit]",
    `Description=nostromo ${app.name} (${slot} slot)`,
    "After=network.target",
    "",
    "[Service]",
    "Type=simple",
    `User=${server.user}`,
    `WorkingDirectory=${L.slots}/${slot}`,
    ...env.map(([k, v]) => `Environment=${systemdQuote(`${k}=${v}`, false)}`),
    `ExecStart=/bin/bash -c ${systemdQuote(`set -a; . ./.env; set +a; exec ${app.start}`, true)}`,
    "Restart=on-failure",
    "RestartSec=2",
    "KillSignal=SIGTERM",
    "TimeoutStopSec=30",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/**
 * systemd's quoting of one word (an ExecStart argument, an Environment= assignment): double
 * quotes, `\\` and `\"` escaped, `%` doubled (specifiers), control characters as C escapes (a raw
 * newline would end the line: "Unbalanced quoting"). `$` is doubled only where systemd expands
 * variables (ExecStart=), not in Environment=.
 */
export function systemdQuote(text: string, execLine: boolean): string {
  let out = text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%");
  if (execLine) out = out.replace(/\$/g, "$$$$");
  // eslint-disable-next-line no-control-regex -- escaping control characters is what this does
  out = out.replace(/[\x00-\x1f\x7f]/g, (c) =>
    c === "\n" ? "\\n" : c === "\t" ? "\\t" : c === "\r" ? "\\r" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
  return `"${out}"`;
}

/**
 * Starts release `sha` in the slot that is not live, beside the serving one, then gates it
 * on its health check: a slot that fails is stopped and the step fails (nothing is switched).
 * One step, so a failed check leaves no "started" record and the next `up` starts it again.
 * Prints `slot=<slot> port=<port>`.
 */
export function startSlotScript(cfg: DeployConfig, app: AppConfig, sha: string, version: string): string {
  const { server } = cfg;
  const L = layout(server.root, app.name);
  const release = `${L.releases}/${sha}`;
  const startLines =
    app.manager === "pm2"
      ? [
          `name=${quote(app.name)}-$target`,
          `pm2 delete "$name" >/dev/null 2>&1 || true`,
          // .env is loaded by the shell, so any app gets its config the same way under PM2 and systemd.
          `PORT=$port pm2 start bash --name "$name" --cwd "$slot_dir" --time --kill-timeout 10000 -- -c ${quote(`set -a; . ./.env; set +a; exec ${app.start}`)} >/dev/null`,
          `stop_slot() { pm2 delete "$name" >/dev/null 2>&1 || true; }`,
        ]
      : [
          `unit=${quote(`nostromo-${app.name}-`)}"$target.service"`,
          `unit_dir=${quote(SYSTEMD_UNIT_DIR)}`,
          `if [ "$target" = blue ]; then unit_text=${quote(systemdUnit(server, app, "blue"))}; else unit_text=${quote(systemdUnit(server, app, "green"))}; fi`,
          `printf '%s' "$unit_text" > "$unit_dir/$unit.new" && mv -f "$unit_dir/$unit.new" "$unit_dir/$unit"`,
          `systemctl daemon-reload`,
          // Enabled, so the slot comes back after a reboot as it was (both slots run: rollback).
          `systemctl enable --quiet "$unit"`,
          `since=$(date +%s)`,
          `systemctl restart "$unit"`,
          // On a failed check: the unit's state and its processes' last output lines since this
          // start (not systemd's own lines about it: the step's error shows only 30 lines),
          // then the slot is stopped and disabled.
          `stop_slot() {`,
          `  echo "$unit: $(systemctl show -p ActiveState,SubState,Result,NRestarts,ExecMainStatus "$unit" 2>&1 | tr '\\n' ' ')" >&2`,
          `  echo "last log lines of $unit:" >&2`,
          `  journalctl _SYSTEMD_UNIT="$unit" --since "@$since" -n 20 --no-pager -o cat >&2 || true`,
          `  systemctl disable --now --quiet "$unit" || true`,
          `}`,
        ];
  return script(
    prelude(server),
    lockGuard(cfg),
    ...pickSlot(server, app),
    `slot_dir=${quote(L.slots)}/$target`,
    `mkdir -p ${quote(L.slots)}`,
    `ln -sfn ${quote(release)} "$slot_dir.new" && mv -T "$slot_dir.new" "$slot_dir"`,
    ...startLines,
    healthGate(app, version, "$port"),
    `echo "slot=$target port=$port"`,
  );
}

/**
 * Polls the slot's health URL until it answers 200 with the expected JSON fields and version,
 * or the deadline passes; then stops the slot and fails naming app, URL, expectation and answer.
 */
export function healthGate(app: AppConfig, version: string, port: string): string {
  const h = app.health!;
  const expect: Record<string, string> = { ...h.expect };
  if (h.versionField) expect[h.versionField] = version;
  const urls = [h.path, ...h.extraPaths];
  return [
    `deadline=$(( $(date +%s) + ${h.timeoutSeconds} ))`,
    `expect=${quote(JSON.stringify(expect))}`,
    `for path in ${urls.map(quote).join(" ")}; do`,
    `  url="http://127.0.0.1:${port}$path"`,
    `  while :; do`,
    `    code=$(curl -sS -m 5 -o /tmp/nostromo-health.$$ -w '%{http_code}' "$url" 2>/tmp/nostromo-health-err.$$ || true)`,
    `    body=$(head -c 300 /tmp/nostromo-health.$$ 2>/dev/null || true)`,
    `    [ "$code" = 000 ] && body=$(cat /tmp/nostromo-health-err.$$)`,
    `    if [ "$code" = 200 ]; then`,
    // Only the main health path carries the expected fields; extra paths need a 200.
    `      [ "$path" != ${quote(h.path)} ] && break`,
    `      node -e 'const e=JSON.parse(process.argv[1]);let b;try{b=JSON.parse(process.argv[2])}catch{process.exit(1)}for(const k in e){if(String(b[k])!==e[k])process.exit(1)}' "$expect" "$body" && break`,
    `    fi`,
    `    if [ "$(date +%s)" -ge "$deadline" ]; then`,
    `      stop_slot`,
    `      echo "health check failed for ${app.name}: $url expected HTTP 200 with $expect, got HTTP $code: $body (the new slot was stopped; nothing was switched)" >&2`,
    `      rm -f /tmp/nostromo-health.$$ /tmp/nostromo-health-err.$$`,
    `      exit 1`,
    `    fi`,
    `    sleep 1`,
    `  done`,
    `done`,
    `rm -f /tmp/nostromo-health.$$ /tmp/nostromo-health-err.$$`,
    `echo "health ok: ${app.name} ${version} on port ${port}"`,
  ].join("\n");
}

/** The nginx site: the static app at /, the API app's live slot at /api/ and /health. */
export function nginxSite(cfg: DeployConfig): string {
  const site = cfg.nginx.site!;
  const api = cfg.apps.find((a) => a.name === site.apiApp)!;
  const web = cfg.apps.find((a) => a.name === site.staticApp)!;
  const up = layout(cfg.server.root).upstreams;
  return [
    `# Written by nostromo-deploy (stack ${cfg.stack}); the live slot is in ${up}/${api.name}.conf`,
    `upstream nostromo_${api.name.replace(/-/g, "_")} {`,
    `    include ${up}/${api.name}.conf;`,
    `    keepalive 16;`,
    `}`,
    `server {`,
    `    listen ${cfg.nginx.listen};`,
    `    root ${cfg.server.root}/current/${web.name}/${web.output};`,
    `    location /api/ {`,
    `        proxy_pass http://nostromo_${api.name.replace(/-/g, "_")};`,
    `        proxy_http_version 1.1;`,
    `        proxy_set_header Connection "";`,
    `        proxy_set_header Host $host;`,
    `        proxy_next_upstream error timeout;`,
    `    }`,
    `    location = /health {`,
    `        proxy_pass http://nostromo_${api.name.replace(/-/g, "_")};`,
    `        proxy_http_version 1.1;`,
    `        proxy_set_header Connection "";`,
    `    }`,
    `    location / {`,
    `        try_files $uri $uri/ /index.html;`,
    `    }`,
    `}`,
    ``,
  ].join("\n");
}

/** Installs the nginx site (kept if unchanged) with a first upstream, tested before reload. */
export function nginxSiteScript(cfg: DeployConfig): string {
  const api = cfg.apps.find((a) => a.name === cfg.nginx.site!.apiApp)!;
  const up = `${layout(cfg.server.root).upstreams}/${api.name}.conf`;
  const site = `${cfg.nginx.sitesDir}/nostromo.conf`;
  return script(
    prelude(cfg.server),
    lockGuard(cfg),
    `mkdir -p ${quote(layout(cfg.server.root).upstreams)} ${quote(cfg.nginx.sitesDir)}`,
    `[ -f ${quote(up)} ] || printf 'server 127.0.0.1:%s;\\n' ${api.ports!.blue} > ${quote(up)}`,
    `[ -f ${quote(site)} ] && cp -p ${quote(site)} ${quote(`${site}.previous`)} || true`,
    `printf '%s' ${quote(nginxSite(cfg))} > ${quote(`${site}.new`)} && mv -f ${quote(`${site}.new`)} ${quote(site)}`,
    `if ! ${cfg.nginx.testCommand} >/tmp/nostromo-nginx.$$ 2>&1; then`,
    `  cat /tmp/nostromo-nginx.$$ >&2; rm -f /tmp/nostromo-nginx.$$`,
    `  if [ -f ${quote(`${site}.previous`)} ]; then mv -f ${quote(`${site}.previous`)} ${quote(site)}; else rm -f ${quote(site)}; fi`,
    `  echo "nginx rejected the site; the previous one was put back" >&2; exit 1`,
    `fi`,
    `rm -f /tmp/nostromo-nginx.$$`,
    cfg.nginx.reloadCommand,
    `echo "nginx site installed: ${site}"`,
  );
}

/** One app's cutover target: its checked release, and for node apps the checked slot. */
export interface CutoverTarget {
  app: AppConfig;
  sha: string;
  slot?: string;
  port?: number;
}

/**
 * The atomic switch of one app, when it is not already serving that release. Node apps: the
 * nginx upstream include names the new slot, tested and gracefully reloaded (the old slot
 * finishes its requests and stays up for a rollback). Static apps: the `current` symlink is
 * swapped with `mv -T`. What was switched is listed in $switched for a switch-back.
 */
function switchLines(cfg: DeployConfig, t: CutoverTarget): string[] {
  const { app, sha } = t;
  const L = layout(cfg.server.root, app.name);
  const release = `${L.releases}/${sha}`;
  const up = `${L.upstreams}/${app.name}.conf`;
  const serving =
    app.kind === "node"
      ? `[ "$(readlink ${quote(L.current)} 2>/dev/null)" = ${quote(release)} ] && [ "$(cat ${quote(`${L.slots}/live`)} 2>/dev/null)" = ${quote(String(t.slot))} ]`
      : `[ "$(readlink ${quote(L.current)} 2>/dev/null)" = ${quote(release)} ]`;
  const lines = [`if ${serving}; then`, `  echo "${app.name} already serves ${sha.slice(0, 12)}"`, `else`];
  if (app.kind === "static") {
    const index = `${release}/${app.output}/index.html`;
    lines.push(
      `  [ -s ${quote(index)} ] || { echo "check failed for ${app.name}: ${index} is missing or empty; nothing was switched" >&2; exit 1; }`,
    );
  } else {
    lines.push(
      `  [ -f ${quote(up)} ] && cp -p ${quote(up)} ${quote(`${up}.previous`)} || true`,
      `  printf 'server 127.0.0.1:%s;\\n' ${quote(String(t.port))} > ${quote(`${up}.new`)} && mv -f ${quote(`${up}.new`)} ${quote(up)}`,
      `  if ! { ${cfg.nginx.testCommand} && ${cfg.nginx.reloadCommand}; } >/tmp/nostromo-nginx.$$ 2>&1; then`,
      `    cat /tmp/nostromo-nginx.$$ >&2; rm -f /tmp/nostromo-nginx.$$`,
      `    [ -f ${quote(`${up}.previous`)} ] && mv -f ${quote(`${up}.previous`)} ${quote(up)}`,
      `    echo "switch of ${app.name} failed: nginx refused the new upstream; the previous one was put back" >&2; exit 1`,
      `  fi`,
      `  rm -f /tmp/nostromo-nginx.$$`,
      `  cat ${quote(`${L.slots}/live`)} > ${quote(`${L.slots}/previous`)} 2>/dev/null || true`,
      `  printf '%s\\n' ${quote(String(t.slot))} > ${quote(`${L.slots}/live`)}`,
    );
  }
  lines.push(
    `  readlink ${quote(L.current)} > ${quote(`${L.releases}/.previous`)} 2>/dev/null || rm -f ${quote(`${L.releases}/.previous`)}`,
    `  ln -sfn ${quote(release)} ${quote(`${L.current}.new`)} && mv -T ${quote(`${L.current}.new`)} ${quote(L.current)}`,
    `  switched="$switched ${app.name}"`,
    `  echo "switched ${app.name} to ${sha.slice(0, 12)}${app.kind === "node" ? ` (slot ${t.slot}, port ${t.port})` : ""}"`,
    `fi`,
  );
  return lines;
}

/** Puts one switched app back on the release (and slot) that served before the cutover. */
function switchBackLines(cfg: DeployConfig, app: AppConfig): string[] {
  const L = layout(cfg.server.root, app.name);
  const up = `${L.upstreams}/${app.name}.conf`;
  const lines = [`case " $switched " in *" ${app.name} "*)`];
  if (app.kind === "node") {
    lines.push(
      `  [ -f ${quote(`${up}.previous`)} ] && mv -f ${quote(`${up}.previous`)} ${quote(up)} && { ${cfg.nginx.testCommand} && ${cfg.nginx.reloadCommand}; } >&2 || true`,
      `  [ -f ${quote(`${L.slots}/previous`)} ] && cp ${quote(`${L.slots}/previous`)} ${quote(`${L.slots}/live`)} || true`,
    );
  }
  lines.push(
    `  if [ -f ${quote(`${L.releases}/.previous`)} ]; then`,
    `    ln -sfn "$(cat ${quote(`${L.releases}/.previous`)})" ${quote(`${L.current}.new`)} && mv -T ${quote(`${L.current}.new`)} ${quote(L.current)}`,
    `    echo "switched ${app.name} back to $(basename "$(cat ${quote(`${L.releases}/.previous`)})" | cut -c1-12)" >&2`,
    `  else`,
    `    echo "${app.name} had no previous release to switch back to" >&2`,
    `  fi;;`,
    `esac`,
  );
  return lines;
}

/** Node program run on the server: the smoke steps through the public port. */
const SMOKE_PROGRAM = `
const steps = JSON.parse(process.argv[1]); const base = process.argv[2];
const get = (o, p) => p.split(".").reduce((v, k) => (v == null ? undefined : v[k]), o);
(async () => {
  let token;
  for (const s of steps) {
    const headers = { "content-type": "application/json" };
    if (s.auth) headers.authorization = "Bearer " + token;
    const res = await fetch(base + s.path, { method: s.method, headers, body: s.body === undefined ? undefined : JSON.stringify(s.body), signal: AbortSignal.timeout(10000) });
    const text = await res.text(); let json; try { json = JSON.parse(text); } catch {}
    const fail = (why) => { console.error("smoke test failed: " + s.name + ": " + s.method + " " + base + s.path + ": " + why + "; got HTTP " + res.status + ": " + text.slice(0, 300)); process.exit(1); };
    if (res.status !== s.expectStatus) fail("expected HTTP " + s.expectStatus);
    for (const f of s.expectFields) if (get(json, f) === undefined) fail("expected field " + f);
    for (const [f, v] of Object.entries(s.expectValues)) if (String(get(json, f)) !== v) fail("expected " + f + " = " + v);
    if (s.expectEvery) { const arr = get(json, s.expectEvery.array); if (!Array.isArray(arr) || arr.length === 0) fail("expected a non-empty list " + s.expectEvery.array); for (const it of arr) if (String(it[s.expectEvery.field]) !== s.expectEvery.value) fail("expected every " + s.expectEvery.array + "[]." + s.expectEvery.field + " = " + s.expectEvery.value); }
    if (s.captureToken) token = get(json, s.captureToken);
    console.log("smoke ok: " + s.name);
  }
})().catch((e) => { console.error("smoke test failed: " + e.message); process.exit(1); });
`;

/**
 * The cutover: every app switched to its checked release, then the smoke steps through the
 * public port; if one fails, every app switched here goes back to what served before and the
 * step fails. One step, so a failed cutover leaves no switch recorded: the next `up` retries it.
 */
export function cutoverScript(cfg: DeployConfig, targets: CutoverTarget[], steps: SmokeStep[]): string {
  return script(
    prelude(cfg.server),
    lockGuard(cfg),
    `mkdir -p ${quote(`${cfg.server.root}/current`)}`,
    `switched=""`,
    ...targets.flatMap((t) => switchLines(cfg, t)),
    steps.length === 0
      ? `echo "no smoke steps configured"`
      : [
          `if ! node -e ${quote(SMOKE_PROGRAM)} ${quote(JSON.stringify(steps))} ${quote(`http://127.0.0.1:${cfg.nginx.port}`)}; then`,
          ...[...targets].reverse().flatMap((t) => switchBackLines(cfg, t.app).map((l) => `  ${l}`)),
          `  echo "smoke tests failed: traffic was switched back to the previous release of:\${switched:- (nothing had been switched)}" >&2`,
          `  exit 1`,
          `fi`,
        ].join("\n"),
  );
}

/**
 * For steps run under the server lock: if the step fails, the lock of this stack is released
 * (a deploy that stopped must not block the next one), and the step's error stands.
 */
export function lockGuard(cfg: DeployConfig): string {
  const lock = layout(cfg.server.root).lock;
  return [
    // A step with its own clean-up redefines nostromo_cleanup rather than setting another trap.
    `nostromo_cleanup() { :; }`,
    `nostromo_on_exit() {`,
    `  rc=$?`,
    `  nostromo_cleanup`,
    `  if [ "$rc" -ne 0 ] && [ "$(cat ${quote(`${lock}/stack`)} 2>/dev/null)" = ${quote(cfg.stack)} ]; then rm -rf ${quote(lock)}; echo "deploy lock released after the failure" >&2; fi`,
    `  exit "$rc"`,
    `}`,
    `trap nostromo_on_exit EXIT`,
  ].join("\n");
}

/**
 * Appends the deploy's line to deploys.jsonl, prunes old releases (never the serving one, the
 * previous one, nor any slot's), then releases the lock.
 */
export function recordScript(cfg: DeployConfig, entry: Record<string, unknown>, keepReleases: number): string {
  const root = cfg.server.root;
  const lock = layout(root).lock;
  const prune = cfg.apps.map((app) => {
    const L = layout(root, app.name);
    return [
      `keep=" $(basename "$(readlink ${quote(L.current)})" 2>/dev/null) $(basename "$(cat ${quote(`${L.releases}/.previous`)} 2>/dev/null)" 2>/dev/null) $(for s in blue green; do basename "$(readlink ${quote(L.slots)}/$s 2>/dev/null)" 2>/dev/null; done | tr '\\n' ' ') "`,
      `ls -1t ${quote(L.releases)} 2>/dev/null | tail -n +${keepReleases + 1} | while IFS= read -r r; do case "$keep" in *" $r "*) ;; *) rm -rf ${quote(L.releases)}/"$r"; echo "pruned release ${app.name}/$r";; esac; done`,
    ].join("\n");
  });
  return script(
    prelude(cfg.server),
    `started=$(cat ${quote(`${lock}/started`)} 2>/dev/null || date +%s)`,
    `finished=$(date +%s)`,
    `line=${quote(JSON.stringify(entry))}`,
    `printf '%s,"durationSeconds":%s,"finishedAt":"%s"}\\n' "\${line%\\}}" "$((finished - started))" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> ${quote(layout(root).journal)}`,
    ...prune,
    `echo "deploy recorded in ${layout(root).journal}"`,
    `echo "duration=$((finished - started))"`,
    `if [ "$(cat ${quote(`${lock}/stack`)} 2>/dev/null)" = ${quote(cfg.stack)} ]; then rm -rf ${quote(lock)}; echo "lock released"; fi`,
  );
}

/** The app's .env: config values and secrets, each shell-quoted (the file is sourced by bash). */
export function renderEnvFile(app: AppConfig, values: Record<string, string>): string {
  const all: Record<string, string> = { ...app.env, ...values };
  if (app.version) all.APP_VERSION = app.version;
  return Object.keys(all)
    .sort()
    .map((k) => `${k}=${quote(all[k])}\n`)
    .join("");
}
