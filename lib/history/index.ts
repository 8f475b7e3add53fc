/**
 * Stack history as deploy rows: what each update deployed (app refs from its config, SHAs where
 * its outputs are known), how it ended, how long it took, and whether it was a rollback; and what
 * the operator tools compute from them (rollback target, table, DORA-style metrics, a chart).
 * Pure: UpdateSummary-like plain objects in, plain values out (no @pulumi runtime import).
 *
 * rows.ts: paging, numbering, rows; rollback.ts: the target; table.ts, metrics.ts, chart.ts.
 */

export * from "./rows";
export * from "./rollback";
export * from "./table";
export * from "./metrics";
export * from "./chart";
