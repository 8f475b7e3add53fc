/**
 * Deploy time against fleet size, side by side in one run: for 1, 2 and 3 web hosts behind a load
 * balancer (local/fleet.ts hosts, PostgreSQL on a database host), a fresh deploy of v1.2.2, the
 * rolling upgrade to v1.2.3 (its migration once, on the primary) and the rollback tool back to
 * v1.2.2, each timed, the upgrade and the rollback under a steady stream through the load
 * balancer (new-connection and keep-alive clients; failed requests counted). Also a single-server
 * stack on one fleet host (no load balancer), the same three figures. Prints one table; the
 * README's "Scale" section holds its results.
 *
 * Run (root): eval "$(scripts/install-pulumi.sh)"; eval "$(scripts/install-target-deps.sh)"; npx ts-node bench/fleet.ts [runs, default 1]
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { REPO_ROOT, RunResult, TempBackend, requirePulumi } from "../local/backend";
import { makeExampleRepos } from "../local/exampleRepos";
import { startFleet } from "../local/fleet";
import { fleetConfig, prepareLoadBalancerHost } from "../local/fleetStack";
import { startPostgres } from "../local/postgres";
import { localConfig, localSecrets, outputOf, removeStackFile, setPlainConfig, writeStack } from "../local/stack";
import { runTool } from "../test/support/tool";
import { trafficLoop } from "../test/support/traffic";

interface Row {
  stack: string;
  fresh: number;
  upgrade: number;
  rollback: number;
  sent: number;
  failed: number;
}

async function measure(webHosts: number, loadBalancer: boolean): Promise<Row> {
  const web = Array.from({ length: webHosts }, (_, i) => `app${i + 1}`);
  const fleet = await startFleet([...web, ...(loadBalancer ? ["lb"] : []), "db"]);
  const stack = `t-benchfleet${webHosts}${loadBalancer ? "lb" : ""}-${process.pid}`;
  const backend = new TempBackend(stack);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-bench-fleet-"));
  fs.chmodSync(work, 0o755);
  const db = fleet.host("db");
  const pg = await startPostgres({ address: db.address, subnet: fleet.subnet, netns: db.netns });
  try {
    const databaseUrl = pg.url.replace("@127.0.0.1:", `@${db.address}:`);
    const base = {
      databaseUrl,
      repos: await makeExampleRepos(path.join(work, "repos")),
      refs: { orchestrator: "v1.2.2", sevastopol: "v1.2.2" },
      slotPorts: { blue: 8101, green: 8102 },
    };
    const config = (refs: typeof base.refs) =>
      loadBalancer
        ? fleetConfig({ ...base, refs, fleet, web, loadBalancer: "lb" })
        : localConfig({ ...base, refs, target: fleet.host("app1").target });
    if (loadBalancer) prepareLoadBalancerHost(fleet, "lb");
    const front = fleet.host(loadBalancer ? "lb" : "app1").address;
    writeStack(backend, stack, config(base.refs), localSecrets(fleet.host("app1").target.ssh.privateKey, databaseUrl));
    const timed = async (run: () => Promise<RunResult>, what: string) => {
      const start = Date.now();
      const r = await run();
      if (r.code !== 0) throw new Error(`${what} (${stack}) failed:\n${outputOf(r)}`);
      return (Date.now() - start) / 1000;
    };
    const up = () => backend.pulumiAsync(REPO_ROOT, ["up", "--yes", "--skip-preview", "--stack", stack]);
    let sent = 0;
    let failed = 0;
    const underLoad = async (run: () => Promise<RunResult>, what: string) => {
      const loops = [false, true].map((keepAlive) =>
        trafficLoop(80, 50_000, 10 * 60_000, ["/health", "/api/common/indicadores"], { host: front, keepAlive }),
      );
      const seconds = await timed(run, what);
      for (const l of loops) {
        const r = await l.finish();
        sent += r.sent;
        failed += r.failures.length;
      }
      return seconds;
    };
    const fresh = await timed(up, "fresh deploy");
    setPlainConfig(stack, config({ orchestrator: "v1.2.3", sevastopol: "v1.2.3" }));
    const upgrade = await underLoad(up, "upgrade");
    const rollback = await underLoad(() => runTool(backend, "rollback", ["--stack", stack, "--yes"]), "rollback");
    backend.pulumi(REPO_ROOT, ["stack", "rm", "--yes", "--force", "--stack", stack]);
    return {
      stack: loadBalancer ? `${webHosts} web host${webHosts > 1 ? "s" : ""} + load balancer` : "single server (fleet of one)",
      fresh,
      upgrade,
      rollback,
      sent,
      failed,
    };
  } finally {
    removeStackFile(stack);
    await fleet.stop();
    await pg.stop();
    backend.remove();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  requirePulumi();
  if (process.getuid?.() !== 0) throw new Error("bench/fleet.ts: fleet hosts (`ip netns`) need root");
  const runs = Number(process.argv[2] ?? 1);
  const rows: Row[][] = [];
  for (let run = 0; run < runs; run++)
    rows.push([await measure(1, false), await measure(1, true), await measure(2, true), await measure(3, true)]);
  const fmt = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length === 1
      ? `${s[0].toFixed(1)} s`
      : `${s[0].toFixed(1)} / ${s[Math.floor(s.length / 2)].toFixed(1)} / ${s[s.length - 1].toFixed(1)} s`;
  };
  console.log(`\nfleet size against deploy time (${runs} run${runs > 1 ? "s" : ""}${runs > 1 ? ": min / median / max" : ""}):\n`);
  console.log("| stack | fresh deploy | rolling upgrade | rollback (tool) | requests sent / failed |");
  console.log("|---|---|---|---|---|");
  for (let i = 0; i < rows[0].length; i++) {
    const col = rows.map((r) => r[i]);
    console.log(
      `| ${col[0].stack} | ${fmt(col.map((r) => r.fresh))} | ${fmt(col.map((r) => r.upgrade))} | ${fmt(col.map((r) => r.rollback))} | ${col.reduce((a, r) => a + r.sent, 0)} / ${col.reduce((a, r) => a + r.failed, 0)} |`,
    );
  }
  const single = rows.map((r) => r[1].upgrade);
  const three = rows.map((r) => r[3].upgrade);
  console.log(
    `\nrolling upgrade, 3 web hosts / 1 web host behind the load balancer: ${(three.reduce((a, b) => a + b) / single.reduce((a, b) => a + b)).toFixed(2)}`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
