/** DORA-style metrics from deploy rows: frequency, lead time, change failure rate, MTTR. */
import { DeployRow, HistoryEntry } from "./rows";
import { rowRefs } from "./rollback";
import { formatDuration } from "./table";

export interface DeployMetrics {
  /**
   * Deploys counted: updates of kind `update` that failed, or succeeded and changed something on
   * a server (a `pulumi up` with every resource `same` is no deploy).
   */
  deploys: number;
  succeeded: number;
  failed: number;
  rollbacks: number;
  /** Successful updates of kind `update` that changed nothing (every resource `same`): not counted. */
  unchanged: number;
  window: { from?: string; to?: string; days: number };
  /** Deploys per day over the window (a window shorter than a day counts as one day). */
  deploysPerDay: number;
  /** failed / deploys; null with no deploys. */
  changeFailureRate: number | null;
  /** Mean seconds from a failure (first of a run of failures) to the next success. */
  mttrSeconds: number | null;
  incidents: number;
  /** Failure runs with no later success. */
  unrecovered: number;
  /** Commit time to deploy end, per app whose ref changed in a successful, non-rollback deploy. */
  leadTime: { meanSeconds: number; medianSeconds: number; samples: number } | null;
}

/** Key of commitTimes entries: `<app>@<sha or ref>`. */
export function commitKey(app: string, refOrSha: string): string {
  return `${app}@${refOrSha}`;
}

const DAY = 86_400_000;

/** Resource operations that change something on a server (`same`, `read`, `refresh` do not). */
export const CHANGE_OPS = [
  "create",
  "update",
  "delete",
  "replace",
  "create-replacement",
  "delete-replaced",
  "import",
  "import-replacement",
];

/**
 * Whether an update changed something: a resource created, updated, deleted or replaced. An
 * entry with no resourceChanges at all (not reported) counts as a change; `{ same: n }` does not.
 */
export function changedSomething(row: DeployRow | HistoryEntry): boolean {
  const changes = "changes" in row ? row.changes : row.resourceChanges;
  const reported = "changes" in row ? row.changesReported : row.resourceChanges !== undefined;
  if (!reported || !changes) return true;
  return CHANGE_OPS.some((op) => (changes[op] ?? 0) > 0);
}

/**
 * Deployment frequency, lead time (when `commitTimes`, epoch seconds keyed by commitKey, are
 * given), change failure rate and MTTR over the rows.
 */
export function deployMetrics(rows: readonly DeployRow[], commitTimes?: Record<string, number>): DeployMetrics {
  const deploys = rows
    .filter((r) => r.kind === "update" && (r.result === "failed" || (r.result === "succeeded" && changedSomething(r))))
    .sort((a, b) => a.version - b.version);
  const succeeded = deploys.filter((r) => r.result === "succeeded").length;
  const failed = deploys.length - succeeded;
  const endOf = (r: DeployRow) => (r.end ?? r.start).getTime();

  let days = 1;
  let from: string | undefined;
  let to: string | undefined;
  if (deploys.length > 0) {
    const first = Math.min(...deploys.map((r) => r.start.getTime()));
    const last = Math.max(...deploys.map(endOf));
    from = new Date(first).toISOString();
    to = new Date(last).toISOString();
    days = Math.max(1, (last - first) / DAY);
  }

  let open: number | undefined;
  const repairs: number[] = [];
  for (const r of deploys) {
    if (r.result === "failed") {
      if (open === undefined) open = endOf(r);
    } else if (open !== undefined) {
      repairs.push((endOf(r) - open) / 1000);
      open = undefined;
    }
  }

  let leadTime: DeployMetrics["leadTime"] = null;
  if (commitTimes) {
    const samples: number[] = [];
    let previous: Record<string, string> = {};
    for (const r of deploys) {
      if (r.result !== "succeeded") continue;
      const refs = rowRefs(r);
      if (r.rollbackTo === undefined) {
        for (const [app, state] of Object.entries(r.apps)) {
          if (previous[app] === state.ref) continue;
          const t =
            (state.sha !== undefined ? commitTimes[commitKey(app, state.sha)] : undefined) ?? commitTimes[commitKey(app, state.ref)];
          if (t === undefined) continue;
          const lead = endOf(r) / 1000 - t;
          if (lead >= 0) samples.push(lead);
        }
      }
      previous = refs;
    }
    if (samples.length > 0) {
      const sorted = [...samples].sort((a, b) => a - b);
      const mid = Math.floor(sorted.length / 2);
      leadTime = {
        meanSeconds: samples.reduce((a, b) => a + b, 0) / samples.length,
        medianSeconds: sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2,
        samples: samples.length,
      };
    }
  }

  return {
    deploys: deploys.length,
    unchanged: rows.filter((r) => r.kind === "update" && r.result === "succeeded" && !changedSomething(r)).length,
    succeeded,
    failed,
    rollbacks: deploys.filter((r) => r.rollbackTo !== undefined).length,
    window: { from, to, days },
    deploysPerDay: deploys.length / days,
    changeFailureRate: deploys.length ? failed / deploys.length : null,
    mttrSeconds: repairs.length ? repairs.reduce((a, b) => a + b, 0) / repairs.length : null,
    incidents: repairs.length + (open !== undefined ? 1 : 0),
    unrecovered: open !== undefined ? 1 : 0,
    leadTime,
  };
}

/** Metrics as the `metrics` tool prints them. */
export function formatMetrics(m: DeployMetrics): string {
  const pct = (x: number | null) => (x === null ? "n/a" : `${(x * 100).toFixed(1)}%`);
  const lines = [
    `window:               ${m.window.from ?? "-"} .. ${m.window.to ?? "-"} (${m.window.days.toFixed(2)} days)`,
    `deploys:              ${m.deploys} (${m.succeeded} succeeded, ${m.failed} failed, ${m.rollbacks} rollbacks)`,
    `not counted:          ${m.unchanged} update${m.unchanged === 1 ? "" : "s"} that changed nothing`,
    `deployment frequency: ${m.deploysPerDay.toFixed(2)} deploys/day`,
    `lead time:            ${m.leadTime ? `mean ${formatDuration(m.leadTime.meanSeconds)}, median ${formatDuration(m.leadTime.medianSeconds)} (${m.leadTime.samples} changes)` : "n/a (no commit times)"}`,
    `change failure rate:  ${pct(m.changeFailureRate)}`,
    `MTTR:                 ${m.mttrSeconds === null ? "n/a" : formatDuration(m.mttrSeconds)} (${m.incidents} incident${m.incidents === 1 ? "" : "s"}${m.unrecovered ? `, ${m.unrecovered} not yet recovered` : ""})`,
  ];
  return lines.join("\n") + "\n";
}
