/**
 * The engine's fixed cost, side by side in one run, one backend, one engine: a no-change
 * `pulumi up` of the example system against an empty TypeScript program's `up` (the floor any
 * Pulumi program pays) and against a program of one no-op dynamic resource (the floor of any
 * program whose steps run through a dynamic provider, as ours do: the engine starts a second
 * Node process for it) and against a program of one no-op resource of a provider plugin written in
 * Go (bench/noopProvider, built here: the floor a native provider would have in place of the
 * dynamic one, a Go process instead of the second Node process), and against the one no-op dynamic
 * resource run by this project's providers' host (provider/, as Pulumi.yaml names it) in place of
 * the SDK's, each with and without Node's
 * compile cache (NODE_COMPILE_CACHE, which scripts/install-pulumi.sh sets), alternated run by run.
 * Prints min/median/max and the ratio the issue sets (no-change ≤ 1.5× the empty program).
 *
 * Run: eval "$(scripts/install-pulumi.sh)"; eval "$(scripts/install-target-deps.sh)"; npx ts-node bench/engine.ts
 * (needs Go on PATH too, for the provider plugin)
 */
import { spawnSync } from "child_process";
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

const ONE_GO_PROVIDER = `import * as pulumi from "@pulumi/pulumi";
new pulumi.CustomResource("nostromofloor:index:Noop", "one", {});
`;

/**
 * Builds bench/noopProvider into `dir` as pulumi-resource-nostromofloor (a static binary, as
 * provider plugins ship: CGO off). The module has its own go.mod, so it is built from its folder.
 */
function buildGoProvider(dir: string): void {
  if (spawnSync("go", ["version"]).status !== 0) {
    throw new Error("no `go` on PATH: this bench builds its Go provider plugin (bench/noopProvider) with it; install Go >= 1.25");
  }
  const start = Date.now();
  const r = spawnSync("go", ["build", "-o", path.join(dir, "pulumi-resource-nostromofloor"), "."], {
    cwd: path.join(REPO_ROOT, "bench", "noopProvider"),
    env: { ...process.env, CGO_ENABLED: "0" },
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`go build of bench/noopProvider failed:\n${r.stdout}${r.stderr}`);
  console.log(`pulumi-resource-nostromofloor built in ${((Date.now() - start) / 1000).toFixed(1)} s`);
}

/**
 * A TypeScript program beside ours (`source` its index.ts): same SDK (its node_modules), same
 * ts-node settings. `plugin`, when given, is a provider plugin named in Pulumi.yaml as a project
 * plugin (its folder holds pulumi-resource-<name>): the backend's env sets
 * PULUMI_IGNORE_AMBIENT_PLUGINS, so the engine would not take it from PATH, and a project plugin
 * leaves the shared PULUMI_HOME as it is.
 */
function project(dir: string, source: string, plugin?: { name: string; dir: string }): string {
  fs.mkdirSync(dir, { recursive: true });
  const plugins = plugin ? `plugins:\n  providers:\n    - name: ${plugin.name}\n      path: ${JSON.stringify(plugin.dir)}\n` : "";
  fs.writeFileSync(
    path.join(dir, "Pulumi.yaml"),
    `name: nostromo-floor\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n${plugins}`,
  );
  fs.writeFileSync(path.join(dir, "index.ts"), source);
  fs.copyFileSync(path.join(REPO_ROOT, "tsconfig.json"), path.join(dir, "tsconfig.json"));
  fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(dir, "node_modules"));
  fs.writeFileSync(path.join(dir, "package.json"), '{ "name": "nostromo-floor", "private": true }\n');
  return dir;
}

async function main(): Promise<void> {
  const h = new DeployHarness(`t-engine${process.pid}`);
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-ncc-"));
  const plugin = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-floor-plugin-"));
  try {
    buildGoProvider(plugin);
    await h.start({ orchestrator: "v1.2.3", sevastopol: "v1.2.3" });
    const first = await h.up("fresh deploy");
    if (first.code !== 0) throw new Error(`the fresh deploy failed:\n${outputOf(first)}`);
    const empty = project(path.join(h.work, "empty"), "export const nothing = 0;\n");
    h.backend.pulumiOk(empty, ["stack", "init", "empty"]);
    const dynamic = project(path.join(h.work, "dynamic"), ONE_DYNAMIC);
    h.backend.pulumiOk(dynamic, ["stack", "init", "dynamic"]);
    const goProvider = project(path.join(h.work, "go-provider"), ONE_GO_PROVIDER, { name: "nostromofloor", dir: plugin });
    h.backend.pulumiOk(goProvider, ["stack", "init", "go-provider"]);
    const ourHost = project(path.join(h.work, "our-host"), ONE_DYNAMIC, { name: "pulumi-nodejs", dir: path.join(REPO_ROOT, "provider") });
    h.backend.pulumiOk(ourHost, ["stack", "init", "our-host"]);
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
    await timed(goProvider, "go-provider", true);
    await timed(ourHost, "our-host", true);
    await timed(REPO_ROOT, h.stack, true);
    const runs = { ours: [] as number[], oursNoCache: [] as number[], empty: [] as number[], emptyNoCache: [] as number[] };
    const dyn = { cache: [] as number[], noCache: [] as number[] };
    const goProv = { cache: [] as number[], noCache: [] as number[] };
    const host = { cache: [] as number[], noCache: [] as number[] };
    for (let i = 0; i < RUNS; i++) {
      runs.ours.push(await timed(REPO_ROOT, h.stack, true));
      runs.empty.push(await timed(empty, "empty", true));
      dyn.cache.push(await timed(dynamic, "dynamic", true));
      goProv.cache.push(await timed(goProvider, "go-provider", true));
      host.cache.push(await timed(ourHost, "our-host", true));
      runs.oursNoCache.push(await timed(REPO_ROOT, h.stack, false));
      runs.emptyNoCache.push(await timed(empty, "empty", false));
      dyn.noCache.push(await timed(dynamic, "dynamic", false));
      goProv.noCache.push(await timed(goProvider, "go-provider", false));
      host.noCache.push(await timed(ourHost, "our-host", false));
    }
    const ratio = (a: number[], b: number[]) => (stats(a).median / stats(b).median).toFixed(2);
    console.log(`\n## Engine floor (${RUNS} runs each, alternated; min / median / max)\n`);
    console.log(`| up                                  | with compile cache | without            |`);
    console.log(`| ----------------------------------- | ------------------ | ------------------ |`);
    const times = (label: string, a: number[], b: number[]) => console.log(`| ${label.padEnd(35)} | ${text(a)} | ${text(b)} |`);
    times("no-change up, example system", runs.ours, runs.oursNoCache);
    times("empty TypeScript program", runs.empty, runs.emptyNoCache);
    times("one no-op dynamic resource", dyn.cache, dyn.noCache);
    times("one no-op Go-provider resource", goProv.cache, goProv.noCache);
    times("one no-op dynamic, our host", host.cache, host.noCache);
    const row = (label: string, a: [number[], number[]], b: [number[], number[]]) =>
      console.log(`| ${label.padEnd(35)} | ${ratio(a[0], b[0]).padEnd(18)} | ${ratio(a[1], b[1]).padEnd(18)} |`);
    row("ratio no-change / empty (≤ 1.5)", [runs.ours, runs.oursNoCache], [runs.empty, runs.emptyNoCache]);
    row("ratio one dynamic / empty", [dyn.cache, dyn.noCache], [runs.empty, runs.emptyNoCache]);
    row("ratio one Go-provider / empty", [goProv.cache, goProv.noCache], [runs.empty, runs.emptyNoCache]);
    row("ratio one dynamic / one Go-provider", [dyn.cache, dyn.noCache], [goProv.cache, goProv.noCache]);
    row("ratio one dynamic, our host / empty", [host.cache, host.noCache], [runs.empty, runs.emptyNoCache]);
    row("ratio no-change / one dynamic", [runs.ours, runs.oursNoCache], [dyn.cache, dyn.noCache]);
    h.backend.pulumi(empty, ["stack", "rm", "--yes", "--force", "--stack", "empty"]);
    h.backend.pulumi(dynamic, ["stack", "rm", "--yes", "--force", "--stack", "dynamic"]);
    h.backend.pulumi(goProvider, ["stack", "rm", "--yes", "--force", "--stack", "go-provider"]);
    h.backend.pulumi(ourHost, ["stack", "rm", "--yes", "--force", "--stack", "our-host"]);
  } finally {
    await h.stop();
    fs.rmSync(cache, { recursive: true, force: true });
    fs.rmSync(plugin, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
