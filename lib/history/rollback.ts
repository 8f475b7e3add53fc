/** The rollback target: which earlier update `rollback` redeploys, or why it refuses. */
import { DeployRow } from "./rows";

/** A rollback the tool will not do, with the reason an operator reads. */
export class RollbackRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RollbackRefusal";
  }
}

export function sameRefs(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

export function refsText(refs: Record<string, string>): string {
  const names = Object.keys(refs).sort();
  return names.length ? names.map((n) => `${n}@${refs[n]}`).join(", ") : "(no apps)";
}

export function rowRefs(row: DeployRow): Record<string, string> {
  return Object.fromEntries(Object.entries(row.apps).map(([n, a]) => [n, a.ref]));
}

/**
 * The update to roll back to: `to` when given (exactly update `to`), else the newest successful
 * deploy whose app refs differ from `currentRefs` (the refs the stack's config names now) and
 * that no rollback rolled back from (so a second rollback in a row goes further back instead of
 * redeploying the release just rolled back from). Throws RollbackRefusal naming why when there
 * is none, the update is unknown, failed, or deployed the same refs.
 */
export function pickRollbackTarget(rows: readonly DeployRow[], currentRefs: Record<string, string>, to?: number): DeployRow {
  const deploys = rows.filter((r) => r.kind === "update");
  if (to !== undefined) {
    const row = rows.find((r) => r.version === to);
    if (!row) {
      const versions = rows.map((r) => r.version);
      const range = versions.length ? `versions ${Math.min(...versions)} to ${Math.max(...versions)}` : "no updates";
      throw new RollbackRefusal(`update ${to} not found in the stack's history (${range})`);
    }
    if (row.kind !== "update") throw new RollbackRefusal(`update ${to} was a ${row.kind}, not a deploy: nothing to roll back to`);
    if (row.result !== "succeeded") {
      throw new RollbackRefusal(
        `update ${to} ${row.result === "failed" ? "failed" : `did not succeed (${row.result})`}: only a successful update can be rolled back to`,
      );
    }
    if (!row.appsConfig || Object.keys(row.apps).length === 0)
      throw new RollbackRefusal(`update ${to} has no apps config in its history entry`);
    if (sameRefs(rowRefs(row), currentRefs)) {
      throw new RollbackRefusal(
        `update ${to} deployed the same app refs as the current config (${refsText(currentRefs)}): nothing to roll back`,
      );
    }
    return row;
  }
  const skipped: DeployRow[] = [];
  for (let i = deploys.length - 1; i >= 0; i--) {
    const row = deploys[i];
    if (row.result !== "succeeded" || !row.appsConfig || Object.keys(row.apps).length === 0) continue;
    if (sameRefs(rowRefs(row), currentRefs)) continue;
    if (row.rolledBackBy !== undefined) {
      skipped.push(row);
      continue;
    }
    return row;
  }
  const base = `nothing to roll back to: no successful update in the stack's history (${deploys.length} deploy${deploys.length === 1 ? "" : "s"}) deployed app refs other than the current ones (${refsText(currentRefs)})`;
  if (skipped.length === 0) throw new RollbackRefusal(base);
  const list = skipped.map((r) => `${r.version} (rolled back by ${r.rolledBackBy})`).join(", ");
  throw new RollbackRefusal(
    `${base} without having been rolled back from already: update${skipped.length === 1 ? "" : "s"} ${list}; name one with --to N to go back to it anyway`,
  );
}

/** The newest successful deploy: what the servers run now, i.e. what a rollback undoes. */
export function lastSuccessful(rows: readonly DeployRow[]): DeployRow | undefined {
  for (let i = rows.length - 1; i >= 0; i--) if (rows[i].kind === "update" && rows[i].result === "succeeded") return rows[i];
  return undefined;
}
