/**
 * `npm run metrics -- --stack X [--out chart.svg] [--json]`: deployment frequency, lead time,
 * change failure rate and MTTR from the stack's history, and an SVG chart of deploy durations.
 * Lead time needs commit times: read with `git log` when an app's repo is a local path.
 * The whole history is read (every page); a deploy is an update that failed or changed something
 * on a server: a `pulumi up` that left every resource `same` is not counted.
 */
import "../lib/compileCache"; // first: every module after it loads from the compile cache
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { commitKey, DeployRow, deployMetrics, durationChartSvg, formatMetrics } from "../lib/history";
import { loadHistory, openStack, parseToolArgs, requireStackName, runMain, ToolError } from "./common";

const USAGE = "npm run metrics -- --stack <name> [--out chart.svg] [--json]";

/** The repo of an app in an update's config, when it is a local path git can read. */
function localRepo(row: DeployRow, app: string): string | undefined {
  const repo = (row.appsConfig?.[app] as { repo?: unknown } | undefined)?.repo;
  if (typeof repo !== "string") return undefined;
  const p = repo.startsWith("file://") ? repo.slice("file://".length) : repo;
  return path.isAbsolute(p) && fs.existsSync(p) ? p : undefined;
}

/** Commit time (epoch seconds) of every app ref/SHA in the rows whose repo is local. */
function commitTimes(rows: DeployRow[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const row of rows) {
    for (const [app, state] of Object.entries(row.apps)) {
      const repo = localRepo(row, app);
      if (!repo) continue;
      const rev = state.sha ?? state.ref;
      const key = commitKey(app, rev);
      if (key in out) continue;
      try {
        const t = execFileSync("git", ["-C", repo, "log", "-1", "--format=%ct", `${rev}^{commit}`, "--"], {
          encoding: "utf8",
          timeout: 30_000,
          stdio: ["ignore", "pipe", "ignore"],
        }).trim();
        if (/^\d+$/.test(t)) out[key] = Number(t);
      } catch {
        // ref gone or repo unreadable: no lead time for this one
      }
    }
  }
  return out;
}

runMain("metrics", async () => {
  const args = parseToolArgs(
    process.argv.slice(2),
    { stack: { type: "string" }, out: { type: "string" }, json: { type: "boolean" } },
    USAGE,
  );
  const name = requireStackName(args.stack, USAGE);
  if (args.out !== undefined && (!args.out || !args.out.endsWith(".svg")))
    throw new ToolError(`--out must name an .svg file, got '${args.out}'`);
  if (args.out && !fs.existsSync(path.dirname(path.resolve(args.out))))
    throw new ToolError(`--out: folder ${path.dirname(path.resolve(args.out))} does not exist`);
  const stack = await openStack(name);
  const { rows } = await loadHistory(stack);
  const times = commitTimes(rows);
  const metrics = deployMetrics(rows, Object.keys(times).length ? times : undefined);
  if (args.json) process.stdout.write(JSON.stringify(metrics, null, 2) + "\n");
  else process.stdout.write(`stack ${name}\n${formatMetrics(metrics)}`);
  if (args.out) {
    fs.writeFileSync(args.out, durationChartSvg(rows));
    process.stderr.write(`chart of ${rows.length} update durations written to ${args.out}\n`);
  }
});
