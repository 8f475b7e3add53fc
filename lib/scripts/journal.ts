/** The deploy journal (deploys.jsonl), release pruning and the lock release. */
import { DeployConfig } from "../config";
import { quote } from "../shell";
import { layout } from "./layout";
import { stepScript } from "./lock";
import { workersRetireLines } from "./workers";

/**
 * Node program appending one event line to the journal named by its first argument: event name,
 * then `key=value` (a string), `key:=json` (a JSON value), `a.b=value` (nested). With the server's
 * time and the update's lease. Deploy lines have no `event`: readers tell them apart by that.
 */
const EVENT_JS = [
  `const fs=require("fs");const [file,event,...kv]=process.argv.slice(1);`,
  `const o={event,time:new Date().toISOString(),lease:process.env.NOSTROMO_LEASE||""};`,
  `for(const a of kv){const i=a.indexOf("=");const raw=a[i-1]===":";const path=a.slice(0,raw?i-1:i).split(".");const v=a.slice(i+1);`,
  `let t=o;for(const k of path.slice(0,-1))t=t[k]=t[k]||{};t[path[path.length-1]]=raw?JSON.parse(v):v}`,
  `fs.appendFileSync(file,JSON.stringify(o)+"\\n")`,
].join("");

/**
 * Defines `nostromo_event NAME key=value …`: one event line in the journal (backups, migrations,
 * restores). Strings only, it is bash (nostromo_json_string, the prelude's): a node start costs
 * 0.05 s on the server. A `key:=json` or `a.b=value` argument goes through node (EVENT_JS), which
 * checks the JSON before it reaches the journal.
 */
export function eventFunction(root: string): string {
  const journal = quote(layout(root).journal);
  return [
    `nostromo_event() {`,
    `  local a k out`,
    `  for a in "$@"; do case "\${a%%=*}" in *:|*.*) node -e ${quote(EVENT_JS)} ${journal} "$@"; return;; esac; done`,
    `  nostromo_json_string "$1"; out="{\\"event\\":$nostromo_json"; shift`,
    `  nostromo_json_string "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)"; out="$out,\\"time\\":$nostromo_json"`,
    `  nostromo_json_string "\${NOSTROMO_LEASE:-}"; out="$out,\\"lease\\":$nostromo_json"`,
    `  for a in "$@"; do nostromo_json_string "\${a%%=*}"; k=$nostromo_json; nostromo_json_string "\${a#*=}"; out="$out,$k:$nostromo_json"; done`,
    `  printf '%s}\\n' "$out" >> ${journal}`,
    `}`,
  ].join("\n");
}

/**
 * Appends the deploy's line to deploys.jsonl (with the update's lease, and its duration counted
 * from when this update took the lock), prunes old releases (never the serving one, the previous one, nor any slot's), then
 * releases the lock this update holds. Result: durationSeconds. First it retires the recorded
 * workers of the apps whose config names none any more (they have no workers step to do it).
 */
export function recordScript(cfg: DeployConfig, entry: Record<string, unknown>, keepReleases: number): string {
  const root = cfg.server.root;
  const retiring = cfg.apps.filter((a) => a.kind !== "static" && a.workers.length === 0);
  const prune = cfg.apps.map((app) => {
    const L = layout(root, app.name);
    return [
      `keep=" $(basename "$(readlink ${quote(L.current)})" 2>/dev/null) $(basename "$(cat ${quote(`${L.releases}/.previous`)} 2>/dev/null)" 2>/dev/null) $(for s in blue green; do basename "$(readlink ${quote(L.slots)}/$s 2>/dev/null)" 2>/dev/null; done | tr '\\n' ' ') "`,
      `ls -1t ${quote(L.releases)} 2>/dev/null | tail -n +${keepReleases + 1} | while IFS= read -r r; do case "$keep" in *" $r "*) ;; *) rm -rf ${quote(L.releases)}/"$r"; echo "pruned release ${app.name}/$r";; esac; done`,
    ].join("\n");
  });
  return stepScript(
    cfg,
    ...(retiring.length > 0 ? [eventFunction(root), ...retiring.flatMap((app) => workersRetireLines(cfg, app))] : []),
    `started=$(cat "$lock/started")`,
    `finished=$(date +%s)`,
    `line=${quote(JSON.stringify(entry))}`,
    `printf '%s,"lease":"%s","durationSeconds":%s,"finishedAt":"%s"}\\n' "\${line%\\}}" "$NOSTROMO_LEASE" "$((finished - started))" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> ${quote(layout(root).journal)}`,
    ...prune,
    `echo "deploy recorded in ${layout(root).journal}"`,
    `rm -rf "$lock"`,
    `nostromo_held=""`,
    `echo "lock released"`,
    `nostromo_result durationSeconds="$((finished - started))"`,
  );
}
