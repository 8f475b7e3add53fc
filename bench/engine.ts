/**
 * The engine's fixed cost, side by side in one run, one backend, one engine: a no-change
 * `pulumi up` of the example system against an empty TypeScript program's `up` (the floor any
 * Pulumi program pays) and against a program of one no-op dynamic resource (the floor of any
 * program whose steps run through a dynamic provider, as ours do: the engine starts a second
 * Node process for it), each with and without Node's compile cache (NODE_COMPILE_CACHE, which
 * scripts/install-pulumi.sh sets), alternated run by run. Prints min/median/max and the ratio
 * the issue sets (no-change ≤ 1.5× the empty program).
 *
 * Run: eval "$(scripts/install-pulumi.sh)"; eval "$(scripts/install-target-deps.sh)"; npx ts-node bench/engine.ts
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { REPO_ROOT } from "../local/backend";
import { DeployHarness } from "../local/harness";
import { outputOf } from "../local/stack";

const RUNS = 5;

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1] };
};
const text = (xs: number[]) => {
  const s = stats(xs);
  return `${s.min.toFixed(2)} / ${s.median.toFixed(2)} / ${s.max.toFixed(2)} s`;
};

const ONE_DYNAMIC = `import * as pulumi from "@pulumi/pulumi";
const provider: pulumi.dynamic.ResourceProvider = { create: async () => ({ id: "one", outs: {} }) };
new pulumi.dynamic.Resource(provider, "one", {}, {});
`;

/** A TypeScript program beside ours (`source` its index.ts): same SDK (its node_modules), same ts-node settings. */
function project(dir: string, source: string): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: nostromo-floor\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n");
  fs.writeFileSync(path.join(dir, "index.ts"), source);
  fs.copyFileSync(path.join(REPO_ROOT, "tsconfig.json"), path.join(dir, "tsconfig.json"));
  fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(dir, "node_modules"));
  fs.writeFileSync(path.join(dir, "package.json"), '{ "name": "nostromo-floor", "private": true }\n');
  return dir;
}

async function main(): Promise<void> {
  const h = new DeployHarness(`t-engine${process.pid}`);
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-ncc-"));
  try {
    await h.start({ orchestrator: "v1.2.3", sevastopol: "v1.2.3" });
    const first = await h.up("fresh deploy");
    if (first.code !== 0) throw new Error(`the fresh deploy failed:\n${outputOf(first)}`);
    const empty = project(path.join(h.work, "empty"), "export const nothing = 0;\n");
    h.backend.pulumiOk(empty, ["stack", "init", "empty"]);
    const dynamic = project(path.join(h.work, "dynamic"), ONE_DYNAMIC);
    h.backend.pulumiOk(dynamic, ["stack", "init", "dynamic"]);
    const timed = async (cwd: string, stack: string, compileCache: boolean) => {
      if (compileCache) h.backend.env.NODE_COMPILE_CACHE = cache;
      else delete h.backend.env.NODE_COMPILE_CACHE;
      const start = Date.now();
      const r = await h.backend.pulumiAsync(cwd, ["up", "--yes", "--skip-preview", "--stack", stack]);
      const seconds = (Date.now() - start) / 1000;
      if (r.code !== 0) throw new Error(`up of ${stack} failed:\n${outputOf(r)}`);
      if (stack === h.stack && !/\d+ unchanged/.test(r.stdout)) throw new Error(`the no-change up changed something:\n${r.stdout}`);
      return seconds;
    };
    // Warm-up: the floor stacks' first updates, and the caches filled.
    await timed(empty, "empty", true);
    await timed(dynamic, "dynamic", true);
    await timed(REPO_ROOT, h.stack, true);
    const runs = { ours: [] as number[], oursNoCache: [] as number[], empty: [] as number[], emptyNoCache: [] as number[] };
    const dyn = { cache: [] as number[], noCache: [] as number[] };
    for (let i = 0; i < RUNS; i++) {
      runs.ours.push(await timed(REPO_ROOT, h.stack, true));
      runs.empty.push(await timed(empty, "empty", true));
      dyn.cache.push(await timed(dynamic, "dynamic", true));
      runs.oursNoCache.push(await timed(REPO_ROOT, h.stack, false));
      runs.emptyNoCache.push(await timed(empty, "empty", false));
      dyn.noCache.push(await timed(dynamic, "dynamic", false));
    }
    const ratio = (a: number[], b: number[]) => (stats(a).median / stats(b).median).toFixed(2);
    console.log(`\n## Engine floor (${RUNS} runs each, alternated; min / median / max)\n`);
    console.log(`| up                              | with compile cache | without            |`);
    console.log(`| ------------------------------- | ------------------ | ------------------ |`);
    console.log(`| no-change up, example system    | ${text(runs.ours)} | ${text(runs.oursNoCache)} |`);
    console.log(`| empty TypeScript program        | ${text(runs.empty)} | ${text(runs.emptyNoCache)} |`);
    console.log(`| one no-op dynamic resource      | ${text(dyn.cache)} | ${text(dyn.noCache)} |`);
    const row = (label: string, a: [number[], number[]], b: [number[], number[]]) =>
      console.log(`| ${label.padEnd(31)} | ${ratio(a[0], b[0]).padEnd(18)} | ${ratio(a[1], b[1]).padEnd(18)} |`);
    row("ratio no-change / empty (≤ 1.5)", [runs.ours, runs.oursNoCache], [runs.empty, runs.emptyNoCache]);
    row("ratio one dynamic / empty", [dyn.cache, dyn.noCache], [runs.empty, runs.emptyNoCache]);
    row("ratio no-change / one dynamic", [runs.ours, runs.oursNoCache], [dyn.cache, dyn.noCache]);
    h.backend.pulumi(empty, ["stack", "rm", "--yes", "--force", "--stack", "empty"]);
    h.backend.pulumi(dynamic, ["stack", "rm", "--yes", "--force", "--stack", "dynamic"]);
  } finally {
    await h.stop();
    fs.rmSync(cache, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
