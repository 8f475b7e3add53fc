/**
 * Stack history as deploy rows: every page of it read, each update numbered stably, what it
 * deployed (app refs from its config, SHAs where its outputs are known), how it ended, how long
 * it took, whether it was a rollback and what it rolled back from.
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
  /**
   * Set on a rollback: the update it rolled back from (what the servers ran when it started:
   * the newest successful deploy before it). Inferred from the history's order.
   */
  rollbackFrom?: number;
  /** Set on a deploy a later rollback rolled back from (directly, or via a rollback to it). */
  rolledBackBy?: number;
  changes: Record<string, number>;
  /** Whether the history entry reported resourceChanges (older entries may not). */
  changesReported: boolean;
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

/** Entries read per page: `stack.history(pageSize, page)`. */
export const HISTORY_PAGE_SIZE = 100;

/**
 * The whole history, every page: `readPage(pageSize, page)` (pages from 1, newest first, as the
 * Automation API's `stack.history(pageSize, page)`) until a short page. A backend that ignores
 * paging (a page longer than asked for, or a page with nothing new) ends the reading there.
 */
export async function readAllHistory<T extends HistoryEntry>(
  readPage: (pageSize: number, page: number) => Promise<readonly T[]>,
  pageSize = HISTORY_PAGE_SIZE,
  maxPages = 100_000,
): Promise<T[]> {
  const all: T[] = [];
  const seen = new Set<string>();
  const key = (h: HistoryEntry) =>
    `${h.version}|${toDate(h.startTime)?.getTime() ?? String(h.startTime)}|${h.kind ?? ""}|${h.result}|${h.message ?? ""}`;
  for (let page = 1; page <= maxPages; page++) {
    const entries = await readPage(pageSize, page);
    let added = 0;
    for (const h of entries) {
      const k = key(h);
      if (seen.has(k)) continue;
      seen.add(k);
      all.push(h);
      added++;
    }
    if (entries.length < pageSize || entries.length > pageSize || added === 0) break;
  }
  return all;
}

/**
 * Marks rollbacks and what they rolled back from, rows oldest first. A rollback rolled back from
 * the newest successful deploy before it; when that deploy was itself a rollback to update N,
 * N's release was rolled back from too (so a third rollback does not go back to it).
 */
function markRollbacks(rows: DeployRow[]): void {
  const byVersion = new Map(rows.map((r) => [r.version, r]));
  let serving: DeployRow | undefined;
  for (const row of rows) {
    if (row.kind !== "update") continue;
    if (row.rollbackTo !== undefined && serving && serving.version !== row.rollbackTo) {
      row.rollbackFrom = serving.version;
      const seen = new Set<number>();
      for (let from: DeployRow | undefined = serving; from && !seen.has(from.version);) {
        seen.add(from.version);
        if (from.version === row.rollbackTo) break;
        from.rolledBackBy = row.version;
        from = from.rollbackTo !== undefined ? byVersion.get(from.rollbackTo) : undefined;
      }
    }
    if (row.result === "succeeded") serving = row;
  }
}

/**
 * One row per update, oldest first. `outputsByVersion` gives the stack outputs of the updates
 * whose outputs are known (the tools know the current ones): their SHAs and versions are added
 * where the output's ref matches the update's.
 */
export function deployRows(history: readonly HistoryEntry[], outputsByVersion: Record<number, unknown> = {}): DeployRow[] {
  const rows = numbered(history).map((h) => {
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
      changesReported: h.resourceChanges !== undefined && h.resourceChanges !== null,
    };
    if (end) {
      row.end = end;
      row.durationSeconds = Math.max(0, Math.round((end.getTime() - start.getTime()) / 1000));
    }
    if (appsConfig && typeof appsConfig === "object") row.appsConfig = appsConfig as Record<string, unknown>;
    if (m) row.rollbackTo = Number(m[1]);
    return row;
  });
  markRollbacks(rows);
  return rows;
}
