/**
 * The bake window: after the switch and the smoke steps, inside the cutover (so a failure takes
 * the cutover's own switch-back), the new slots are watched for `bake.seconds`: nginx's access
 * log (our format, lib/scripts/nginx.ts) for the answers they gave, against the old slots' over
 * an equal window just before the switch, and their own log lines since their start for the
 * configured patterns. Too few requests: the health and smoke GETs are sent as probes, then
 * `bake.tooFew` decides.
 */
import { AppConfig, DeployConfig } from "../config";
import { quote } from "../shell";
import { eventFunction } from "./journal";
import { layout } from "./layout";
import { slotUnit } from "./slot";

/** What the bake program is told of one app switched to a new slot. */
export interface BakeApp {
  name: string;
  manager: "pm2" | "systemd";
  /** PM2 process or systemd unit of the new slot. */
  unit: string;
  newPort: number;
  oldPort: number;
  /** `<slots>/<slot>.start`: epoch of the start, PM2 out/err offsets (startSlotScript). */
  startFile: string;
}

/**
 * Node program run on the server. argv[1]: the bake's JSON (config, apps, access log, probe
 * URLs); argv[2]: the time of the switch (epoch ms). Prints a line per app with its figures, `bake-json {…}` (the verdict
 * and figures, for the result line) and exits 1 on a failed bake (the reason on stderr).
 */
const BAKE_PROGRAM = `
const fs = require("fs"); const { execFileSync } = require("child_process");
const c = JSON.parse(process.argv[1]); c.switchAt = Number(process.argv[2]);
const windowMs = c.seconds * 1000; const end = c.switchAt + windowMs;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function accessLines() {
  let fd; try { fd = fs.openSync(c.accessLog, "r"); } catch { return []; }
  const size = fs.fstatSync(fd).size; const from = Math.max(0, size - 16 * 1024 * 1024);
  const buf = Buffer.alloc(size - from); fs.readSync(fd, buf, 0, buf.length, from); fs.closeSync(fd);
  const out = [];
  for (const line of buf.toString("utf8").split("\\n")) {
    const m = /^(\\d+(?:\\.\\d+)?) (\\d{3}) (.+) (\\d+(?:\\.\\d+)?|-)$/.exec(line);
    if (!m) continue;
    const port = Number((/:(\\d+)$/.exec(m[3].split(", ").pop()) || [])[1]);
    out.push({ t: Number(m[1]) * 1000, status: Number(m[2]), port, rt: m[4] === "-" ? 0 : Number(m[4]) * 1000 });
  }
  return out;
}
const p95 = (xs) => { if (!xs.length) return null; const s = [...xs].sort((a, b) => a - b); return Math.round(s[Math.ceil(0.95 * s.length) - 1]); };
function figures(lines, a) {
  const after = lines.filter((l) => l.port === a.newPort && l.t >= c.switchAt && l.t <= end);
  const before = lines.filter((l) => l.port === a.oldPort && l.t < c.switchAt && l.t >= c.switchAt - windowMs);
  const errors = after.filter((l) => l.status >= 500).length;
  return { requests: after.length, errors, errorPercent: after.length ? Math.round((1000 * errors) / after.length) / 10 : 0,
    p95Ms: p95(after.map((l) => l.rt)), requestsBefore: before.length, p95BeforeMs: p95(before.map((l) => l.rt)) };
}
function logLines(a) {
  let start = ["0", "0", "0"]; try { start = fs.readFileSync(a.startFile, "utf8").trim().split(" "); } catch {}
  if (a.manager === "systemd") {
    try { return execFileSync("journalctl", ["_SYSTEMD_UNIT=" + a.unit, "--since", "@" + start[0], "-o", "cat", "--no-pager"], { encoding: "utf8" }).split("\\n"); } catch { return []; }
  }
  const dir = (process.env.PM2_HOME || require("os").homedir() + "/.pm2") + "/logs/";
  return ["out", "error"].flatMap((s, i) => { try { return fs.readFileSync(dir + a.unit + "-" + s + ".log").subarray(Number(start[i + 1]) || 0).toString("utf8").split("\\n"); } catch { return []; } });
}
function judge(final) {
  const lines = accessLines(); const apps = {}; let why = "";
  for (const a of c.apps) {
    const f = (apps[a.name] = figures(lines, a));
    const hit = c.logPatterns.length ? logLines(a).find((l) => c.logPatterns.some((p) => l.includes(p))) : undefined;
    if (!why && hit !== undefined) why = a.name + ": its log has " + JSON.stringify(c.logPatterns.find((p) => hit.includes(p))) + ": " + hit.slice(0, 300);
    const enough = f.requests >= c.minRequests;
    if (!why && (enough || final) && f.requests > 0 && f.errorPercent > c.maxErrorPercent)
      why = a.name + ": " + f.errorPercent + "% of " + f.requests + " requests to the new slot answered 5xx (max " + c.maxErrorPercent + "%)";
    if (!why && (enough || final) && f.p95Ms !== null && f.p95BeforeMs !== null && f.p95Ms > c.p95Factor * f.p95BeforeMs && f.p95Ms - f.p95BeforeMs > c.p95FloorMs)
      why = a.name + ": p95 " + f.p95Ms + " ms is more than " + c.p95Factor + "x the old slot's " + f.p95BeforeMs + " ms";
  }
  return { apps, why };
}
async function probe() {
  let failed = 0;
  for (let i = 0; i < c.minRequests; i++) {
    for (const u of c.probes) {
      try { const r = await fetch(u, { signal: AbortSignal.timeout(5000) }); await r.arrayBuffer(); if (r.status >= 500) failed++; } catch { failed++; }
    }
  }
  return failed;
}
const say = (apps) => { for (const [n, f] of Object.entries(apps)) console.log("bake " + n + ": " + f.requests + " requests to the new slot, " + f.errors + " 5xx (" + f.errorPercent + "%), p95 " + (f.p95Ms ?? "-") + " ms; before the switch: " + f.requestsBefore + " requests, p95 " + (f.p95BeforeMs ?? "-") + " ms"); };
const done = (verdict, why, apps, note) => {
  say(apps);
  console.log("bake-json " + JSON.stringify({ verdict, seconds: c.seconds, ...(why ? { reason: why } : {}), ...(note ? { note } : {}), apps }));
  if (verdict === "failed") { console.error("bake failed after " + ((Date.now() - c.switchAt) / 1000).toFixed(1) + " s: " + why); process.exit(1); }
  console.log("bake passed: " + c.seconds + " s" + (note ? " (" + note + ")" : ""));
};
(async () => {
  console.log("bake: watching the new slots for " + c.seconds + " s");
  while (Date.now() < end) {
    await sleep(Math.min(1000, Math.max(0, end - Date.now())));
    const j = judge(false); if (j.why) return done("failed", j.why, j.apps);
  }
  // Rates are judged on enough requests only: too few, and the probes come first.
  let j = judge(false);
  if (j.why) return done("failed", j.why, j.apps);
  const few = Object.entries(j.apps).filter(([, f]) => f.requests < c.minRequests).map(([n, f]) => n + " (" + f.requests + ")");
  if (!few.length) return done("passed", "", j.apps);
  console.log("bake: too few requests to judge: " + few.join(", ") + " under " + c.minRequests + "; probing with the health and smoke GETs");
  const failed = await probe();
  await sleep(300);
  j = judge(true);
  if (failed) return done("failed", failed + " probe request(s) failed" + (j.why ? "; " + j.why : ""), j.apps);
  if (j.why) return done("failed", j.why, j.apps);
  const note = "too few requests to judge (" + few.join(", ") + "); probes passed; bake.tooFew is " + c.tooFew;
  return done(c.tooFew === "pass" ? "passed" : "failed", c.tooFew === "pass" ? "" : note, j.apps, note);
})().catch((e) => { console.error("bake failed: " + e.message); process.exit(1); });
`;

/** The apps of a cutover that the bake watches: web apps with a slot. */
export function bakeApps(cfg: DeployConfig, targets: { app: AppConfig; slot?: string; port?: number }[]): BakeApp[] {
  return targets
    .filter((t) => t.app.kind !== "static" && t.slot && t.port)
    .map(({ app, slot, port }) => {
      const s = slot as "blue" | "green";
      const other = s === "blue" ? "green" : "blue";
      return {
        name: app.name,
        manager: app.manager,
        unit: slotUnit(app.name, s, app.manager),
        newPort: port!,
        oldPort: app.ports![other],
        startFile: `${layout(cfg.server.root, app.name).slots}/${s}.start`,
      };
    });
}

/**
 * The cutover's bake lines (none without `bake`): run when this cutover switched an app ($switched),
 * from the time of the switch ($switch_at, ms). Sets $bake to the verdict's JSON; a failed bake
 * prints the figures, the slots' log lines and nginx's errors, journals them (event `bake`) and
 * exits 1 (the switch-back).
 */
export function bakeLines(cfg: DeployConfig, apps: BakeApp[], failureBundle: string[]): string[] {
  const b = cfg.bake;
  if (!b || apps.length === 0) return [`bake=""`];
  const probes = [
    ...new Set(
      [
        ...cfg.apps.filter((a) => apps.some((x) => x.name === a.name)).flatMap((a) => a.health!.checks.map((c) => c.path)),
        ...cfg.smoke.filter((s) => s.method === "GET" && !s.auth).map((s) => s.path),
      ].map((p) => `http://127.0.0.1:${cfg.nginx.port}${p}`),
    ),
  ];
  const input = quote(JSON.stringify({ ...b, apps, accessLog: layout(cfg.server.root).accessLog, probes }));
  return [
    `bake=""`,
    eventFunction(cfg.server.root),
    `if [ -n "$switched" ]; then`,
    `  if ! node -e ${quote(BAKE_PROGRAM)} ${input} "$switch_at" > "$nostromo_tmp/bake"; then`,
    `    cat "$nostromo_tmp/bake"`,
    // A failed bake leaves no deploy line: its verdict and figures go to the journal as an event.
    `    figures=$(sed -n 's/^bake-json //p' "$nostromo_tmp/bake")`,
    `    [ -z "$figures" ] || nostromo_event bake "bake:=$figures" || true`,
    ...failureBundle.map((l) => `    ${l}`),
    `    exit 1`,
    `  fi`,
    `  cat "$nostromo_tmp/bake"`,
    `  bake=$(sed -n 's/^bake-json //p' "$nostromo_tmp/bake")`,
    `fi`,
  ];
}

/** The bake's figures for one app, as the program prints them. */
export interface BakeFigures {
  requests: number;
  errors: number;
  errorPercent: number;
  p95Ms: number | null;
  requestsBefore: number;
  p95BeforeMs: number | null;
}

/** The bake's verdict (the cutover's `bake` result field, JSON). */
export interface BakeVerdict {
  verdict: "passed" | "failed";
  seconds: number;
  reason?: string;
  note?: string;
  apps: Record<string, BakeFigures>;
}

/** The cutover's `bake` field: its verdict, or undefined when no bake ran (or it cannot be read). */
export function parseBakeVerdict(field: unknown): BakeVerdict | undefined {
  if (typeof field !== "string" || !field) return undefined;
  try {
    const v = JSON.parse(field) as BakeVerdict;
    return v && (v.verdict === "passed" || v.verdict === "failed") ? v : undefined;
  } catch {
    return undefined;
  }
}

/** One line for people (the notification): `passed (30 s): orchestrator 412 requests, 0% 5xx, p95 4 ms (before 3 ms)`. */
export function bakeSummary(v: BakeVerdict): string {
  const apps = Object.entries(v.apps)
    .map(([n, f]) => `${n} ${f.requests} requests, ${f.errorPercent}% 5xx, p95 ${f.p95Ms ?? "-"} ms (before ${f.p95BeforeMs ?? "-"} ms)`)
    .join("; ");
  return `${v.verdict} (${v.seconds} s): ${apps}${v.note ? `; ${v.note}` : ""}${v.reason ? `; ${v.reason}` : ""}`;
}

/**
 * A fleet's bake: each web host's cutover bakes its own new slots; the fleet's verdict is one
 * verdict of them all (failed when any host's failed), its figures per `<host>/<app>`, so the
 * notification and the stack output read it as a single server's. Undefined when no host baked.
 */
export function fleetBakeVerdict(byHost: Record<string, BakeVerdict | undefined>): BakeVerdict | undefined {
  const baked = Object.entries(byHost).filter((e): e is [string, BakeVerdict] => e[1] !== undefined);
  if (baked.length === 0) return undefined;
  const said = (key: "reason" | "note") =>
    baked
      .filter(([, v]) => v[key])
      .map(([h, v]) => `${h}: ${v[key]}`)
      .join("; ");
  const [reason, note] = [said("reason"), said("note")];
  return {
    verdict: baked.some(([, v]) => v.verdict === "failed") ? "failed" : "passed",
    seconds: Math.max(...baked.map(([, v]) => v.seconds)),
    ...(reason ? { reason } : {}),
    ...(note ? { note } : {}),
    apps: Object.fromEntries(baked.flatMap(([h, v]) => Object.entries(v.apps).map(([app, f]) => [`${h}/${app}`, f]))),
  };
}
