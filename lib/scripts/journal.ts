/** The deploy journal (deploys.jsonl), release pruning and the lock release. */
import { DeployConfig } from "../config";
import { quote } from "../shell";
import { layout } from "./layout";
import { stepScript } from "./lock";

/**
 * Appends the deploy's line to deploys.jsonl (with the update's lease, and its duration counted
 * from when this update took the lock), prunes old releases (never the serving one, the previous one, nor any slot's), then
 * releases the lock this update holds. Result: durationSeconds.
 */
export function recordScript(cfg: DeployConfig, entry: Record<string, unknown>, keepReleases: number): string {
  const root = cfg.server.root;
  const prune = cfg.apps.map((app) => {
    const L = layout(root, app.name);
    return [
      `keep=" $(basename "$(readlink ${quote(L.current)})" 2>/dev/null) $(basename "$(cat ${quote(`${L.releases}/.previous`)} 2>/dev/null)" 2>/dev/null) $(for s in blue green; do basename "$(readlink ${quote(L.slots)}/$s 2>/dev/null)" 2>/dev/null; done | tr '\\n' ' ') "`,
      `ls -1t ${quote(L.releases)} 2>/dev/null | tail -n +${keepReleases + 1} | while IFS= read -r r; do case "$keep" in *" $r "*) ;; *) rm -rf ${quote(L.releases)}/"$r"; echo "pruned release ${app.name}/$r";; esac; done`,
    ].join("\n");
  });
  return stepScript(
    cfg,
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
