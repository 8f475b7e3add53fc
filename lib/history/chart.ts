/** An SVG chart of deploy durations (no dependencies). */
import { DeployRow } from "./rows";
import { formatDuration } from "./table";

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
