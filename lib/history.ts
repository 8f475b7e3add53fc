/**
 * Stack history as deploy rows: what each update deployed (app refs from its config, SHAs where
 * its outputs are known), how it ended, how long it took, and whether it was a rollback; and what
 * the operator tools compute from them (rollback target, table, DORA-style metrics, a chart).
 * Pure: UpdateSummary-like plain objects in, plain values out (no @pulumi runtime import).
 */

export const PROJECT = "nostromo-deploy";
export const APPS_KEY = `${PROJECT}:apps`;
/** The message the rollback tool gives its update; `history` recognises rollbacks by it. */
export const ROLLBACK_MESSAGE = /^rollback to update (\d+)\b/;

export function rollbackMessage(target: number): string {
  return `rollback to update ${target}`;
}

/** A config value as `pulumi stack history --json` / the Automation API report it. */
export interface HistoryConfigValue {
  value?: string;
  secret?: boolean;
  /** Structured values, as newer CLIs report them beside the JSON text. */
  objectValue?: unknown;
}

/** The fields of the Automation API's UpdateSummary this module reads. */
export interface HistoryEntry {
  version: number;
  kind?: string;
  result: string;
  startTime: Date | string | number;
  endTime?: Date | string | number | null;
  message?: string;
  config?: Record<string, HistoryConfigValue>;
  resourceChanges?: Record<string, number>;
}

export interface AppState {
  ref: string;
  /** Commit SHA, when the update's stack outputs are known. */
  sha?: string;
  /** App version the update's outputs report. */
  version?: string;
}

export interface DeployRow {
  version: number;
  kind: string;
  result: string;
  start: Date;
  end?: Date;
  durationSeconds?: number;
  message: string;
  /** app → ref (and SHA when known). */
  apps: Record<string, AppState>;
  /** The update's whole `apps` config object, as the rollback tool re-applies it. */
  appsConfig?: Record<string, unknown>;
  /** Set when this update was made by the rollback tool: the update it rolled back to. */
  rollbackTo?: number;
  changes: Record<string, number>;
}

function toDate(v: Date | string | number | null | undefined): Date | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  const d = v instanceof Date ? v : new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** The parsed value of a config entry holding JSON (objects are stored as JSON text). */
export function configObject(entry: HistoryConfigValue | undefined): unknown {
  if (!entry) return undefined;
  if (entry.objectValue !== undefined && entry.objectValue !== null) return entry.objectValue;
  if (entry.secret || typeof entry.value !== "string") return undefined;
  try {
    return JSON.parse(entry.value);
  } catch {
    return undefined;
  }
}

/** app → ref from an `apps` config object (apps without a string ref are skipped). */
export function refsOf(appsConfig: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!appsConfig || typeof appsConfig !== "object" || Array.isArray(appsConfig)) return out;
  for (const [name, app] of Object.entries(appsConfig as Record<string, unknown>)) {
    const ref = (app as { ref?: unknown } | null)?.ref;
    if (typeof ref === "string") out[name] = ref;
  }
  return out;
}

/** Reads apps.<name>.{sha,version} out of stack outputs (the Deployment's `apps` output). */
function outputApps(outputs: unknown): Record<string, { sha?: string; version?: string }> {
  const apps = (outputs as { apps?: unknown } | undefined)?.apps;
  const value = apps && typeof apps === "object" && "value" in (apps as object) ? (apps as { value: unknown }).value : apps;
  if (!value || typeof value !== "object") return {};
  const out: Record<string, { sha?: string; version?: string }> = {};
  for (const [name, a] of Object.entries(value as Record<string, unknown>)) {
    const o = (a ?? {}) as { sha?: unknown; version?: unknown };
    out[name] = {
      sha: typeof o.sha === "string" ? o.sha : undefined,
      version: typeof o.version === "string" ? o.version : undefined,
    };
  }
  return out;
}

/**
 * The updates oldest first, each with its number. A file (diy) backend records no update
 * numbers (every entry has version 0, newest first): then updates are numbered 1..n by start
 * time, oldest first, which is what a managed backend's numbers are.
 */
function numbered(history: readonly HistoryEntry[]): HistoryEntry[] {
  const versions = history.map((h) => h.version);
  const known = versions.every((v) => Number.isInteger(v) && v > 0) && new Set(versions).size === versions.length;
  if (known) return [...history].sort((a, b) => a.version - b.version);
  const time = (h: HistoryEntry) => toDate(h.startTime)?.getTime() ?? 0;
  return history
    .map((h, i) => ({ h, i }))
    .sort((a, b) => time(a.h) - time(b.h) || b.i - a.i) // same start: listed newest first
    .map(({ h }, n) => ({ ...h, version: n + 1 }));
}

/**
 * One row per update, oldest first. `outputsByVersion` gives the stack outputs of the updates
 * whose outputs are known (the tools know the current ones): their SHAs and versions are added
 * where the output's ref matches the update's.
 */
export function deployRows(history: readonly HistoryEntry[], outputsByVersion: Record<number, unknown> = {}): DeployRow[] {
  return numbered(history).map((h) => {
    const start = toDate(h.startTime) ?? new Date(0);
    const end = toDate(h.endTime);
    const appsConfig = configObject(h.config?.[APPS_KEY]);
    const apps: Record<string, AppState> = {};
    for (const [name, ref] of Object.entries(refsOf(appsConfig))) apps[name] = { ref };
    const known = outputApps(outputsByVersion[h.version]);
    for (const [name, o] of Object.entries(known)) {
      if (!apps[name]) continue;
      if (o.sha) apps[name].sha = o.sha;
      if (o.version) apps[name].version = o.version;
    }
    const message = h.message ?? "";
    const m = ROLLBACK_MESSAGE.exec(message);
    const row: DeployRow = {
      version: h.version,
      kind: h.kind ?? "update",
      result: h.result,
      start,
      message,
      apps,
      changes: { ...(h.resourceChanges ?? {}) },
    };
    if (end) {
      row.end = end;
      row.durationSeconds = Math.max(0, Math.round((end.getTime() - start.getTime()) / 1000));
    }
    if (appsConfig && typeof appsConfig === "object") row.appsConfig = appsConfig as Record<string, unknown>;
    if (m) row.rollbackTo = Number(m[1]);
    return row;
  });
}

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
 * The update to roll back to: `to` when given, else the newest successful deploy whose app refs
 * differ from `currentRefs` (the refs the stack's config names now). Throws RollbackRefusal
 * naming why when there is none, the update is unknown, failed, or deployed the same refs.
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
  for (let i = deploys.length - 1; i >= 0; i--) {
    const row = deploys[i];
    if (row.result !== "succeeded" || !row.appsConfig || Object.keys(row.apps).length === 0) continue;
    if (!sameRefs(rowRefs(row), currentRefs)) return row;
  }
  throw new RollbackRefusal(
    `nothing to roll back to: no successful update in the stack's history (${deploys.length} deploy${deploys.length === 1 ? "" : "s"}) deployed app refs other than the current ones (${refsText(currentRefs)})`,
  );
}

/** The newest successful deploy: what the servers run now, i.e. what a rollback undoes. */
export function lastSuccessful(rows: readonly DeployRow[]): DeployRow | undefined {
  for (let i = rows.length - 1; i >= 0; i--) if (rows[i].kind === "update" && rows[i].result === "succeeded") return rows[i];
  return undefined;
}

/** `45s`, `2m05s`, `1h02m`. */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return "-";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, "0")}h`;
}

function isoMinute(d: Date | undefined): string {
  return d
    ? d
        .toISOString()
        .replace(/\.\d{3}Z$/, "Z")
        .replace("T", " ")
    : "-";
}

function appsCell(row: DeployRow): string {
  const names = Object.keys(row.apps).sort();
  if (names.length === 0) return "-";
  return names.map((n) => `${n}@${row.apps[n].ref}${row.apps[n].sha ? ` (${row.apps[n].sha!.slice(0, 12)})` : ""}`).join(", ");
}

function noteCell(row: DeployRow): string {
  if (row.rollbackTo !== undefined) return `ROLLBACK to update ${row.rollbackTo}`;
  if (row.kind !== "update") return row.kind;
  return row.message.split("\n")[0].slice(0, 60);
}

/** A fixed-width table, one line per update, oldest first. */
export function formatTable(rows: readonly DeployRow[]): string {
  const header = ["VERSION", "RESULT", "STARTED (UTC)", "DURATION", "APPS", "NOTE"];
  const body = rows.map((r) => [
    String(r.version),
    r.result,
    isoMinute(r.start),
    formatDuration(r.durationSeconds),
    appsCell(r),
    noteCell(r),
  ]);
  const all = [header, ...body];
  const widths = header.map((_, i) => Math.max(...all.map((line) => line[i].length)));
  return (
    all
      .map((line) =>
        line
          .map((cell, i) => (i === line.length - 1 ? cell : cell.padEnd(widths[i])))
          .join("  ")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}

export interface DeployMetrics {
  /** Deploys counted: updates of kind `update` that finished (succeeded or failed). */
  deploys: number;
  succeeded: number;
  failed: number;
  rollbacks: number;
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

/**
 * Deployment frequency, lead time (when `commitTimes`, epoch seconds keyed by commitKey, are
 * given), change failure rate and MTTR over the rows.
 */
export function deployMetrics(rows: readonly DeployRow[], commitTimes?: Record<string, number>): DeployMetrics {
  const deploys = rows
    .filter((r) => r.kind === "update" && (r.result === "succeeded" || r.result === "failed"))
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
    `deployment frequency: ${m.deploysPerDay.toFixed(2)} deploys/day`,
    `lead time:            ${m.leadTime ? `mean ${formatDuration(m.leadTime.meanSeconds)}, median ${formatDuration(m.leadTime.medianSeconds)} (${m.leadTime.samples} changes)` : "n/a (no commit times)"}`,
    `change failure rate:  ${pct(m.changeFailureRate)}`,
    `MTTR:                 ${m.mttrSeconds === null ? "n/a" : formatDuration(m.mttrSeconds)} (${m.incidents} incident${m.incidents === 1 ? "" : "s"}${m.unrecovered ? `, ${m.unrecovered} not yet recovered` : ""})`,
  ];
  return lines.join("\n") + "\n";
}

export const CHART_COLORS = { succeeded: "#2e7d32", failed: "#c62828", rollback: "#1565c0", other: "#9e9e9e" } as const;

function xmlEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Bar colour of a row: red failed, blue a successful rollback, green a successful deploy, grey else. */
export function outcomeColor(row: DeployRow): string {
  if (row.result === "failed") return CHART_COLORS.failed;
  if (row.result === "succeeded") return row.rollbackTo !== undefined ? CHART_COLORS.rollback : CHART_COLORS.succeeded;
  return CHART_COLORS.other;
}

/**
 * An SVG bar chart of deploy durations, one bar per update (oldest left), coloured by outcome,
 * with the update number under each bar, a duration axis and a legend. No dependencies.
 */
export function durationChartSvg(rows: readonly DeployRow[]): string {
  const bar = 24;
  const gap = 8;
  const left = 56;
  const top = 28;
  const plot = 160;
  const bottom = 48;
  const width = left + Math.max(1, rows.length) * (bar + gap) + gap + 16;
  const height = top + plot + bottom;
  const max = Math.max(1, ...rows.map((r) => r.durationSeconds ?? 0));
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<title>Deploy durations</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="16" font-size="13">Deploy duration by update (max ${xmlEscape(formatDuration(max))})</text>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plot}" stroke="#333333"/>`,
    `<line x1="${left}" y1="${top + plot}" x2="${width - 8}" y2="${top + plot}" stroke="#333333"/>`,
    `<text x="${left - 4}" y="${top + 4}" text-anchor="end">${xmlEscape(formatDuration(max))}</text>`,
    `<text x="${left - 4}" y="${top + plot}" text-anchor="end">0s</text>`,
  ];
  rows.forEach((r, i) => {
    const d = r.durationSeconds ?? 0;
    const h = Math.round((d / max) * plot);
    const x = left + gap + i * (bar + gap);
    const y = top + plot - h;
    const label = `update ${r.version}: ${r.result}${r.rollbackTo !== undefined ? ` (rollback to ${r.rollbackTo})` : ""}, ${formatDuration(r.durationSeconds)}`;
    out.push(`<rect x="${x}" y="${y}" width="${bar}" height="${h}" fill="${outcomeColor(r)}"><title>${xmlEscape(label)}</title></rect>`);
    out.push(`<text x="${x + bar / 2}" y="${top + plot + 14}" text-anchor="middle">${r.version}</text>`);
  });
  const legend: [string, string][] = [
    ["succeeded", CHART_COLORS.succeeded],
    ["rollback", CHART_COLORS.rollback],
    ["failed", CHART_COLORS.failed],
    ["other", CHART_COLORS.other],
  ];
  legend.forEach(([name, color], i) => {
    const x = left + i * 90;
    const y = top + plot + 30;
    out.push(`<rect x="${x}" y="${y - 9}" width="10" height="10" fill="${color}"/>`);
    out.push(`<text x="${x + 14}" y="${y}">${name}</text>`);
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
