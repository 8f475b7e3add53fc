/**
 * The rollback tool's switch: when the release to go back to still runs in a slot and answers
 * its health checks, traffic goes to it at once, before the rollback's `pulumi up` (which then
 * finds the switch done: the slot start keeps that slot, the cutover finds it serving, runs the
 * smoke steps and records the deploy). Anything else (a slot gone, a lock held): the tool says
 * why and takes the normal path.
 */
import { AppConfig, DeployConfig } from "../config";
import { quote, script } from "../shell";
import { CutoverTarget, servingLines, verifyAndSwitchLines } from "./cutover";
import { EXPECT_FIELDS, expectedText } from "./health";
import { eventFunction } from "./journal";
import { layout, prelude } from "./layout";

/** rollbackSwitchScript's exit when a target fails its check before anything is switched. */
export const ROLLBACK_SWITCH_REFUSED = 4;

/** What the probe says of one app: the slot (and port) that runs its release and answers, or why not. */
export type ProbeAnswer = { app: string; slot: string; port: number } | { app: string; why: string };

/**
 * Read-only: for each app, the slot holding release `sha` whose every health path answers with
 * its fields and version (static apps: the release's index.html), one line each:
 * `probe <app> <slot> <port>` or `probe <app> none <why>`.
 */
export function switchProbeScript(cfg: DeployConfig, targets: { app: AppConfig; sha: string }[]): string {
  return script(
    prelude(cfg.server),
    ...targets.flatMap(({ app, sha }) => {
      const L = layout(cfg.server.root, app.name);
      const release = `${L.releases}/${sha}`;
      if (app.kind === "static") {
        return [
          `if [ -s ${quote(`${release}/${app.output}/index.html`)} ]; then echo "probe ${app.name} static 0"; else echo "probe ${app.name} none release ${sha.slice(0, 12)} is not on the server"; fi`,
        ];
      }
      const checks = app.health!.checks.map((c) => {
        const expect = expectedText(c, app.version);
        const probe = `body=$(curl -fsS -m 3 "http://127.0.0.1:$p"${quote(c.path)} 2>/dev/null)`;
        return expect ? `{ ${probe} && node -e ${quote(EXPECT_FIELDS)} ${quote(expect)} "$body" >/dev/null; }` : probe;
      });
      return [
        `found=""`,
        `for s in blue green; do`,
        `  if [ "$s" = blue ]; then p=${app.ports!.blue}; else p=${app.ports!.green}; fi`,
        `  [ "$(readlink ${quote(L.slots)}/"$s" 2>/dev/null)" = ${quote(release)} ] || continue`,
        `  if ${checks.join(" && ")}; then found="$s $p"; break; fi`,
        `done`,
        `if [ -n "$found" ]; then echo "probe ${app.name} $found"; else echo "probe ${app.name} none no slot runs ${sha.slice(0, 12)} and answers its health checks"; fi`,
      ];
    }),
  );
}

/** Parses switchProbeScript's output. */
export function parseProbe(stdout: string): ProbeAnswer[] {
  return stdout
    .split("\n")
    .map((l) => /^probe (\S+) (?:none (.*)|(\S+) (\d+))$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => (m[2] !== undefined ? { app: m[1], why: m[2] } : { app: m[1], slot: m[3], port: Number(m[4]) }));
}

/**
 * The switch itself, under the deploy lock taken for it alone: refused (exit 3, nothing changed)
 * while anyone holds the lock. Every target verified again, then switched (a failure puts every
 * switched app back); a `rollback-switch` event goes to the journal; the lock is released on
 * exit. Result: serving. A target that fails its check exits ROLLBACK_SWITCH_REFUSED, nothing switched.
 */
export function rollbackSwitchScript(cfg: DeployConfig, targets: CutoverTarget[]): string {
  const root = cfg.server.root;
  const lock = layout(root).lock;
  return script(
    prelude(cfg.server),
    `lock=${quote(lock)}`,
    `nostromo_tmp=$(mktemp -d)`,
    `export NOSTROMO_LEASE=${quote(`${cfg.stack}/rollback-switch-`)}"$(date -u +%Y%m%dT%H%M%SZ)-$$"`,
    `exec 9>>${quote(`${root}/.lock-acquire`)}`,
    `flock -w 10 9 || { echo "rollback switch: could not take ${root}/.lock-acquire in 10 s; nothing was switched" >&2; exit 3; }`,
    `if [ -d "$lock" ]; then echo "rollback switch: the deploy lock is held by stack '$(cat "$lock/stack" 2>/dev/null)' (update $(cat "$lock/lease" 2>/dev/null)); nothing was switched" >&2; exit 3; fi`,
    `mkdir "$lock"`,
    `nostromo_cleanup() { :; }`,
    `trap 'rc=$?; nostromo_cleanup; rm -rf "$lock" "$nostromo_tmp"; exit "$rc"' EXIT`,
    `printf '%s\\n' ${quote(cfg.stack)} > "$lock/stack"; printf '%s\\n' "$NOSTROMO_LEASE" > "$lock/lease"; printf '%s@%s\\n' "$(id -un)" "$(hostname)" > "$lock/owner"; date -u +%Y-%m-%dT%H:%M:%SZ > "$lock/since"; date +%s > "$lock/started"`,
    `flock -u 9`,
    `exec 9>&-`,
    ...verifyAndSwitchLines(cfg, targets, "rollback switch", ROLLBACK_SWITCH_REFUSED),
    // Committed: traffic is on the releases gone back to.
    `nostromo_cleanup() { :; }`,
    ...servingLines(
      cfg,
      targets.map((t) => t.app),
    ),
    eventFunction(root),
    `nostromo_event rollback-switch serving="$serving"`,
    `nostromo_result serving="$serving"`,
  );
}
