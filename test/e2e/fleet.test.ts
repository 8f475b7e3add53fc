import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { REPO_ROOT, RunResult, TempBackend, requirePulumi } from "../../local/backend";
import { addCommit, makeExampleRepos } from "../../local/exampleRepos";
import { Fleet, startFleet } from "../../local/fleet";
import { fleetConfig, FleetStackOptions, prepareLoadBalancerHost } from "../../local/fleetStack";
import { readJournal } from "../../local/harness";
import { get } from "../../local/http";
import { PostgresInstance, startPostgres } from "../../local/postgres";
import { localSecrets, outputOf, removeStackFile, setPlainConfig, writeStack } from "../../local/stack";
import { runTool } from "../support/tool";
import { trafficLoop } from "../support/traffic";

const WEB = ["app1", "app2", "app3"];

/** A worker-only app (`roles: [worker]`): one PM2 process that says which version started. */
async function makeQueueRepo(dir: string): Promise<string> {
  const repo = path.join(dir, "queue");
  fs.mkdirSync(repo, { recursive: true });
  execFileSync("git", ["init", "-q", repo]);
  const worker = [
    `const { version } = require("./package.json");`,
    "console.log(`queue ${version} started`);",
    `const timer = setInterval(() => {}, 60000);`,
    `process.on("SIGTERM", () => { clearInterval(timer); process.exit(0); });`,
    ``,
  ].join("\n");
  for (const version of ["1.0.0", "2.0.0"])
    await addCommit(
      repo,
      `queue ${version}`,
      { "worker.js": worker, "package.json": JSON.stringify({ name: "queue", version, private: true }) },
      `v${version}`,
    );
  return repo;
}

/**
 * Issue 12: three web hosts (app1 the primary) behind a load balancer host, a worker host (jobs:
 * a worker-only app, `roles: [worker]`) and a database host,
 * each a host of its own (local/fleet.ts: network namespace, address, sshd, nginx, PM2, deploy
 * root; PostgreSQL in the database host's namespace). Deploys, a rolling upgrade and a rollback under a steady stream through the
 * load balancer; a host cut off the network mid-deploy; `rolling.maxFailPercent` letting the
 * fleet go on without it, and the next `up` bringing it back.
 */
/** A short bake per web host (the local stack's; production's is minutes). */
const FLEET_BAKE = { seconds: 2, maxErrorPercent: 1, minRequests: 5 };

describe("e2e: a fleet of three web hosts behind a load balancer", function () {
  let fleet: Fleet;
  let backend: TempBackend;
  let pg: PostgresInstance;
  let opts: FleetStackOptions;
  let work: string;
  const stack = `t-fleet3-${process.pid}`;
  const timings: Record<string, number> = {};

  const lb = () => fleet.host("lb");
  let queueRepo: string;
  const queueApp = (ref: string) => ({
    queue: { repo: queueRepo, ref, install: "true", roles: ["worker"], workers: { run: { command: "node worker.js" } } },
  });
  /** A host's PM2 processes: name, status, folder, start time. */
  const pm2List = (host: string) =>
    (
      JSON.parse(execFileSync("pm2", ["jlist"], { encoding: "utf8", env: { ...process.env, ...fleet.host(host).target.env } })) as {
        name: string;
        pm2_env: { status: string; pm_cwd: string; pm_uptime: number };
      }[]
    ).map((p) => ({ name: p.name, status: p.pm2_env.status, cwd: p.pm2_env.pm_cwd, started: p.pm2_env.pm_uptime }));
  const tagSha = (repo: string, tag: string) =>
    execFileSync("git", ["-C", repo, "rev-parse", `${tag}^{commit}`], { encoding: "utf8" }).trim();
  /** The jobs host runs the queue worker of `tag`, and nothing else; no web host holds the queue app. */
  const assertQueueOnJobs = (tag: string) => {
    const jobs = pm2List("jobs");
    assert.deepStrictEqual(
      jobs.map((p) => [p.name, p.status, p.cwd]),
      [["queue-run", "online", path.join(fleet.host("jobs").target.root, "releases", "queue", tagSha(queueRepo, tag))]],
    );
    for (const name of WEB) {
      assert.ok(!fs.existsSync(path.join(fleet.host(name).target.root, "releases", "queue")), `${name} holds a release of the queue app`);
      assert.ok(!pm2List(name).some((p) => p.name.startsWith("queue")), `${name} runs a queue process`);
    }
    for (const app of ["orchestrator", "sevastopol"])
      assert.ok(!fs.existsSync(path.join(fleet.host("jobs").target.root, "releases", app)), `jobs holds a release of ${app}`);
    return jobs[0];
  };
  const configure = (change: Partial<FleetStackOptions>) => {
    opts = { ...opts, ...change };
    setPlainConfig(stack, fleetConfig(opts));
  };
  const up = async (label: string): Promise<RunResult> => {
    const start = Date.now();
    const r = await backend.pulumiAsync(REPO_ROOT, ["up", "--yes", "--skip-preview", "--stack", stack]);
    timings[label] = (Date.now() - start) / 1000;
    return r;
  };
  const outputs = () => JSON.parse(backend.pulumiOk(REPO_ROOT, ["stack", "output", "--json", "--stack", stack]).stdout);
  const versionAt = async (host: string) => {
    const r = await get(80, "/health", { host });
    return r.status === 200 ? JSON.parse(r.body).version : `HTTP ${r.status}`;
  };
  /** What each web host's orchestrator serves, read from its deploy root (reachable with its link down). */
  const servedSha = (name: string) => path.basename(fs.readlinkSync(path.join(fleet.host(name).target.root, "current", "orchestrator")));
  /** Every host's nginx errors (the first and last few): what a failed request through the load balancer met. */
  const errorLogs = () =>
    [...WEB, "lb"]
      .map((n) => {
        const file = fleet.host(n).target.nginx.errorLog;
        const errors = fs.existsSync(file)
          ? fs
              .readFileSync(file, "utf8")
              .split("\n")
              .filter((l) => /\[(warn|error|crit|alert)\]/.test(l))
          : [];
        return `--- ${n}: ${errors.length} errors ---\n${[...errors.slice(0, 6), "…", ...errors.slice(-3)].join("\n")}`;
      })
      .join("\n");
  /**
   * Starts an `up` and cuts app2 once app1's batch is under way (its drain file there: out of the
   * load balancer), when app2's batch has not started; the `up`'s result, app2 still cut.
   */
  const upCuttingApp2 = async (label: string): Promise<RunResult> => {
    const drain = path.join(fleet.host("app1").target.root, ".drain");
    assert.ok(!fs.existsSync(drain), "app1 is out of the load balancer before the deploy");
    let settled = false;
    const running = up(label).finally(() => (settled = true));
    const deadline = Date.now() + 300_000;
    while (!fs.existsSync(drain) && !settled && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    if (settled) assert.fail(`the deploy ended before app1's batch started:\n${outputOf(await running)}`);
    fleet.cut("app2");
    return running;
  };
  const underLoad = async (label: string, run: () => Promise<RunResult> = () => up(label)) => {
    const fresh = trafficLoop(80, 50_000, 10 * 60_000, ["/health", "/api/common/indicadores"], { host: lb().address });
    const kept = trafficLoop(80, 50_000, 10 * 60_000, ["/health", "/api/common/indicadores"], { host: lb().address, keepAlive: true });
    const r = await run();
    const [a, b] = [await fresh.finish(), await kept.finish()];
    return { r, sent: a.sent + b.sent, failures: [...a.failures, ...b.failures], versions: { ...a.versions, ...b.versions } };
  };

  before(async () => {
    if (process.getuid?.() !== 0) throw new Error("fleet hosts: `ip netns` needs root");
    requirePulumi();
    fleet = await startFleet([...WEB, "jobs", "lb", "db"]);
    prepareLoadBalancerHost(fleet, "lb");
    work = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-fleet3-"));
    fs.chmodSync(work, 0o755);
    backend = new TempBackend(stack);
    const db = fleet.host("db");
    pg = await startPostgres({ address: db.address, subnet: fleet.subnet, netns: db.netns });
    const databaseUrl = pg.url.replace("@127.0.0.1:", `@${db.address}:`);
    queueRepo = await makeQueueRepo(path.join(work, "repos"));
    opts = {
      fleet,
      web: WEB,
      loadBalancer: "lb",
      databaseUrl,
      repos: await makeExampleRepos(path.join(work, "repos")),
      workerHosts: ["jobs"],
      refs: { orchestrator: "v1.2.2", sevastopol: "v1.2.2" },
      slotPorts: { blue: 8101, green: 8102 },
      apps: queueApp("v1.0.0"),
    };
    writeStack(backend, stack, fleetConfig(opts), localSecrets(fleet.host("app1").target.ssh.privateKey, databaseUrl));
  });
  after(async () => {
    console.log(`      timings (s): ${JSON.stringify(timings)}`);
    if (backend) backend.pulumi(REPO_ROOT, ["stack", "rm", "--yes", "--force", "--stack", stack]);
    removeStackFile(stack);
    await fleet?.stop();
    await pg?.stop();
    backend?.remove();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("deploys v1.2.2 to every web host and the load balancer serves it; backup and migration only on the primary", async () => {
    const r = await up("fresh deploy, 3 hosts");
    assert.strictEqual(r.code, 0, outputOf(r));
    assert.strictEqual(await versionAt(lb().address), "1.2.2");
    for (const name of WEB) assert.strictEqual(await versionAt(fleet.host(name).address), "1.2.2", name);
    const hosts = outputs().hosts;
    assert.deepStrictEqual(Object.keys(hosts).sort(), [...WEB, "jobs"].sort());
    assert.deepStrictEqual(
      WEB.map((n) => hosts[n].cutover.batch),
      [1, 2, 3],
      JSON.stringify(hosts),
    );
    assert.deepStrictEqual(
      [...WEB, "jobs"].map((n) => readJournal(fleet.host(n).target.root).length),
      [1, 1, 1, 1],
    );
    assertQueueOnJobs("v1.0.0");
  });

  it("refresh reads every web host: a live link turned by hand on app3 is drift named by its host; the next up puts app3 back", async () => {
    const link = path.join(fleet.host("app3").target.root, "nginx-upstreams", "orchestrator");
    const expected = fs.readlinkSync(link);
    fs.unlinkSync(link);
    fs.symlinkSync(expected.endsWith(".blue") ? "orchestrator.green" : "orchestrator.blue", link);
    assert.strictEqual(await versionAt(fleet.host("app3").address), "HTTP 502", "app3 still answers through its live slot");

    const refresh = await backend.pulumiAsync(REPO_ROOT, ["refresh", "--yes", "--skip-preview", "--stack", stack]);
    assert.strictEqual(refresh.code, 0, outputOf(refresh));
    const preview = outputOf(await backend.pulumiAsync(REPO_ROOT, ["preview", "--diff", "--stack", stack]));
    assert.match(preview, /app3: [^\n]*traffic drifted for: orchestrator/, preview);
    assert.doesNotMatch(preview, /app[12]: [^\n]*drifted/, preview);

    const r = await up("up after app3's live link was turned");
    assert.strictEqual(r.code, 0, outputOf(r));
    assert.strictEqual(fs.readlinkSync(link), expected);
    for (const name of WEB) assert.strictEqual(await versionAt(fleet.host(name).address), "1.2.2", name);
  });

  it("rolls v1.2.3 out host by host under a steady stream through the load balancer: 0 failed, the migration once, on the primary; the worker host's queue after every web host", async () => {
    // From here on, a bake window on each web host after its switch (and after each switch back
    // of the tests below): the traffic through the load balancer is what it judges.
    configure({ refs: { orchestrator: "v1.2.3", sevastopol: "v1.2.3" }, apps: queueApp("v2.0.0"), extra: { bake: FLEET_BAKE } });
    const { r, sent, failures, versions } = await underLoad("rolling upgrade, 3 hosts");
    timings["rolling upgrade: requests sent"] = sent;
    assert.strictEqual(r.code, 0, outputOf(r));
    assert.deepStrictEqual(failures.slice(0, 3), [], `${failures.length} of ${sent} requests failed\n${errorLogs()}`);
    assert.ok(sent > 100, `only ${sent} requests sent`);
    assert.ok(versions["1.2.3"] > 0, JSON.stringify(versions));
    for (const name of WEB) assert.strictEqual(await versionAt(fleet.host(name).address), "1.2.3", name);
    const exported = path.join(work, "state.json");
    backend.pulumiOk(REPO_ROOT, ["stack", "export", "--stack", stack, "--file", exported]);
    const state = JSON.parse(fs.readFileSync(exported, "utf8"));
    timings["state: resources"] = state.deployment.resources.length;
    timings["state: KB"] = Math.round(fs.statSync(exported).size / 1024);
    const steps = (kind: string) =>
      state.deployment.resources.filter((x: any) => x.inputs?.step === kind).map((x: any) => x.urn.split("::").pop());
    assert.deepStrictEqual(steps("migration"), ["nostromo@app1/orchestrator-migration-run"]);
    assert.deepStrictEqual(steps("backup"), ["nostromo@app1/backup-dump"]);
    const backups = WEB.map((n) => readJournal(fleet.host(n).target.root, true).filter((e) => e.event === "backup").length);
    assert.deepStrictEqual(backups, [2, 0, 0]);
    // Workers move once every web host serves the new release: the queue's start is after the last host's switch.
    const queue = assertQueueOnJobs("v2.0.0");
    const switched = Math.max(...WEB.map((n) => fs.lstatSync(path.join(fleet.host(n).target.root, "current", "orchestrator")).mtimeMs));
    assert.ok(queue.started >= switched, `the queue worker started ${switched - queue.started} ms before the last web host switched`);
    // Each web host baked its new slot on the traffic it took; the fleet's verdict names them all.
    const out = outputs();
    assert.strictEqual(out.bake?.verdict, "passed", JSON.stringify(out.bake));
    for (const name of WEB) assert.ok(`${name}/orchestrator` in out.bake.apps, JSON.stringify(out.bake));
    for (const name of WEB) {
      assert.ok(out.hosts[name].bake.apps.orchestrator.requests >= FLEET_BAKE.minRequests, JSON.stringify(out.hosts[name].bake));
      const line = readJournal(fleet.host(name).target.root).pop();
      assert.deepStrictEqual(line?.bake, out.hosts[name].bake, name);
    }
    assert.strictEqual(out.hosts.jobs.bake, undefined);
  });

  it("a host cut off the network mid-deploy fails the deploy; every host serves the previous release; the next up takes over its lock", async () => {
    const before = servedSha("app1");
    configure({ refs: { orchestrator: "v1.2.2", sevastopol: "v1.2.2" } });
    const r = await upCuttingApp2("deploy with app2 cut");
    try {
      assert.notStrictEqual(r.code, 0, "the deploy succeeded with app2 cut off");
      const out = outputOf(r);
      assert.match(out, /fleet cutover failed on 1 of 3 web hosts/, out);
      assert.match(out, /app2: batch 2/, out);
      assert.match(out, /app1: switched back \(orchestrator/, out);
      for (const name of WEB) assert.strictEqual(servedSha(name), before, `${name} serves ${servedSha(name)}, not the previous ${before}`);
    } finally {
      fleet.restore("app2");
    }
    // The load balancer's own passive checks see app2 again (a request on a connection it kept to app2 waited out the cut).
    for (const name of [...WEB, "lb"]) assert.strictEqual(await versionAt(fleet.host(name).address), "1.2.3", name);
    const again = await up("same deploy, app2 back");
    assert.strictEqual(again.code, 0, outputOf(again));
    for (const name of WEB) assert.strictEqual(await versionAt(fleet.host(name).address), "1.2.2", name);
  });

  it("rolling.maxFailPercent lets the fleet go on without a cut host, says it lags, and the next up brings it to the fleet's release", async () => {
    configure({ refs: { orchestrator: "v1.2.3", sevastopol: "v1.2.3" }, rolling: { maxFailPercent: 34 } });
    const r = await upCuttingApp2("deploy with app2 cut, 34% may fail");
    try {
      assert.strictEqual(r.code, 0, outputOf(r));
      const hosts = outputs().hosts;
      assert.match(hosts.app2.lagging ?? "", /batch 2/, JSON.stringify(hosts.app2));
      for (const name of ["app1", "app3"]) assert.strictEqual(await versionAt(fleet.host(name).address), "1.2.3", name);
    } finally {
      fleet.restore("app2");
    }
    const again = await up("next up, app2 back");
    assert.strictEqual(again.code, 0, outputOf(again));
    for (const name of WEB) assert.strictEqual(await versionAt(fleet.host(name).address), "1.2.3", name);
    assert.strictEqual(outputs().hosts.app2.lagging, undefined);
  });

  for (const [n, version] of [
    [1, "1.2.2"],
    [2, "1.2.3"],
  ] as const)
    it(`rollback ${n} of 2 in a row (the rollback tool): every host back on ${version}, host by host through the load balancer, 0 failed, one update`, async () => {
      const history = () => JSON.parse(backend.pulumiOk(REPO_ROOT, ["stack", "history", "--json", "--stack", stack]).stdout).length;
      const before = history();
      const { r, sent, failures } = await underLoad(`rollback ${n}`, async () => {
        const t = await runTool(backend, "rollback", ["--stack", stack, "--yes"]);
        timings[`rollback ${n}`] = t.seconds;
        return t;
      });
      timings[`rollback ${n}: requests sent`] = sent;
      assert.strictEqual(r.code, 0, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /no switch at once \(a fleet \(hosts\) goes back through its rolling switch/);
      assert.deepStrictEqual(failures.slice(0, 3), [], `${failures.length} of ${sent} requests failed\n${errorLogs()}`);
      for (const name of WEB) assert.strictEqual(await versionAt(fleet.host(name).address), version, name);
      assert.strictEqual(await versionAt(lb().address), version);
      assert.strictEqual(history(), before + 1, "the rollback is one update of the stack");
    });

  it("restore-config on a fleet needs --host and puts back that host's own nginx site from its own archive, nothing on the others", async () => {
    const site = (n: string) => path.join(fleet.host(n).target.nginx.sitesDir, "nostromo.conf");
    const others = ["app1", "app3"].map((n) => fs.readFileSync(site(n), "utf8"));
    const good = fs.readFileSync(site("app2"), "utf8");
    fs.writeFileSync(site("app2"), `${good}\n# edited by hand\n`);
    const events = (n: string) => readJournal(fleet.host(n).target.root, true).filter((e) => e.event === "config-restore");

    const refused = await runTool(backend, "restoreConfig", ["--stack", stack, "--yes"]);
    assert.strictEqual(refused.code, 2, `${refused.stdout}\n${refused.stderr}`);
    assert.match(refused.stderr, /deploys to 4 hosts \(app1, app2, app3, jobs\): name one with --host; nothing was changed/);
    const unknown = await runTool(backend, "restoreConfig", ["--stack", stack, "--host", "app9", "--yes"]);
    assert.match(unknown.stderr, /--host app9: stack \S+ has no such host/, unknown.stderr);
    assert.match(fs.readFileSync(site("app2"), "utf8"), /edited by hand/, "a refused restore changed app2's site");

    const r = await runTool(backend, "restoreConfig", ["--stack", stack, "--host", "app2", "--yes"]);
    assert.strictEqual(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const archive = outputs().hosts.app2.configBackup;
    assert.ok(archive.startsWith(fleet.host("app2").target.root), archive);
    assert.ok(r.stdout.includes(`config archive of host app2 (${fleet.host("app2").address}): ${archive}`), r.stdout);
    assert.match(r.stdout, /nostromo\.conf \(\d+\): DIFFERS from the server now/, r.stdout);
    assert.strictEqual(fs.readFileSync(site("app2"), "utf8"), good);
    assert.deepStrictEqual(
      ["app1", "app3"].map((n) => fs.readFileSync(site(n), "utf8")),
      others,
    );
    assert.deepStrictEqual(
      [...WEB, "jobs"].map((n) => events(n).length),
      [0, 1, 0, 0],
    );
    assert.strictEqual(events("app2")[0].archive, archive);
    for (const name of [...WEB, "lb"]) assert.strictEqual(await versionAt(fleet.host(name).address), "1.2.3", name);
  });
});
