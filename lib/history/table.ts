/** The `history` table: one aligned line per update. */
import { DeployRow } from "./rows";

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
  const message = row.message.split("\n")[0].slice(0, 60);
  if (row.rolledBackBy !== undefined) return `rolled back by update ${row.rolledBackBy}${message ? `: ${message}` : ""}`;
  return message;
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
