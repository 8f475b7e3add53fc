import * as assert from "assert";
import { execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Client } from "pg";
import { REPO_ROOT } from "../../local/backend";
import { DeployHarness } from "../../local/harness";
import { trafficLoop } from "../support/traffic";
import { addVersion } from "../../local/exampleRepos";
import { localConfig, outputOf, setPlainConfig } from "../../local/stack";

/** The release dir the `current` symlink of an app points at. */
function currentSha(h: DeployHarness, app: string): string {
  return path.basename(fs.readlinkSync(path.join(h.target.root, "current", app)));
}

function shaOf(h: DeployHarness, tag: string): string {
  return execFileSync("git", ["-C", h.opts.repos.orchestrator, "rev-parse", `${tag}^{commit}`], { encoding: "utf8" }).trim();
}

/** PM2's view of the target's processes: name → status. */
function pm2Status(h: DeployHarness): Record<string, string> {
  const out = execFileSync("pm2", ["jlist"], { encoding: "utf8", env: { ...process.env, ...h.target.env } });
  return Object.fromEntries((JSON.parse(out) as { name: string; pm2_env: { status: string } }[]).map((p) => [p.name, p.pm2_env.status]));
}

describe("e2e: a failed deploy never takes traffic or loses data", function () {
  const h = new DeployHarness(`t-fail${process.pid}`);

  /** A failed step leaves the server lock with its update (siblings may still run), and says so. */
  function assertLockKeptForNextUp(out: string): void {
    assert.match(
      out,
      /the server lock stays with this update \(lease [^)]+\): other steps of it may still run; the next `pulumi up` of stack /,
    );
    assert.strictEqual(fs.readFileSync(path.join(h.target.root, ".lock", "stack"), "utf8").trim(), h.stack);
  }
  let goodSha: string;

  before(async () => {
    // Short health deadline and few kept backups, so failures and rotation show quickly.
    await h.start({ orchestrator: "v1.2.3", sevastopol: "v1.2.3" }, { backup: { keep: 2 } });
    const cfg = localConfig(h.opts) as any;
    cfg.apps.orchestrator.health.timeoutSeconds = 8;
    setPlainConfig(h.stack, cfg);
    const r = await h.up("baseline deploy");
    assert.strictEqual(r.code, 0, outputOf(r));
    goodSha = shaOf(h, "v1.2.3");
  });
  after(() => h.stop());

  /** Runs `up` with the orchestrator at `ref` while a request stream runs; returns both. */
  async function upWithTraffic(ref: string, label: string) {
    const cfg = localConfig({ ...h.opts, refs: { orchestrator: ref, sevastopol: "v1.2.3" } }) as any;
    cfg.apps.orchestrator.health.timeoutSeconds = 8;
    setPlainConfig(h.stack, cfg);
    const traffic = trafficLoop(h.target.nginx.port);
    const r = await h.up(label);
    const t = await traffic.finish();
    console.log(
      `      ${label}: exit ${r.code}; ${t.sent} requests, ${t.failures.length} failed; /health answered ${JSON.stringify(t.versions)}`,
    );
    return { r, t };
  }

  it("a release whose health check fails (HTTP 500) is stopped and never switched; the old release serves throughout", async () => {
    const tag = await addVersion(h.opts.repos.orchestrator, "1.2.4", "Broken health", {
      "src/server.js": (s) =>
        s
          .replace(
            `"GET /health": async () => [200, { status: "ok", version: VERSION }]`,
            `"GET /health": async () => [500, { status: "broken", version: VERSION }]`,
          )
          // What it logs shows in the failure, with the secret it prints redacted.
          .replace("server.listen(PORT,", `console.error("FATAL started with JWT_SECRET=" + JWT_SECRET);\nserver.listen(PORT,`),
    });
    const { r, t } = await upWithTraffic(tag, "failed health check");
    assert.notStrictEqual(r.code, 0);
    const out = outputOf(r);
    // Issue 11's failure bundle: this start's log lines, nginx's errors, no secret value anywhere.
    assert.match(out, /^\s*last log lines of orchestrator-(blue|green) \(pm2\):$/m);
    assert.match(out, /^\s*err: .*FATAL started with JWT_SECRET=\[secret\]$/m);
    assert.match(out, /^\s*last warnings and errors in nginx's error log \(.*error\.log\):$/m);
    const jwt = /^JWT_SECRET='?([^'\n]+)'?$/m.exec(fs.readFileSync(path.join(h.target.root, "shared", "orchestrator", ".env"), "utf8"))![1];
    assert.ok(jwt.length >= 16 && !out.includes(jwt), "the JWT secret shows in the output");
    assert.match(
      out,
      /health check failed for orchestrator: http:\/\/127\.0\.0\.1:\d+\/health expected HTTP 200 with \{"status":"ok","version":"1\.2\.4"\}, got HTTP 500: \{"status":"broken","version":"1\.2\.4"\}/,
    );
    assert.match(out, /the new slot was stopped; nothing was switched/);
    assert.deepStrictEqual(t.failures.slice(0, 5), []);
    assert.deepStrictEqual(Object.keys(t.versions), ["1.2.3"]);
    assert.strictEqual(currentSha(h, "orchestrator"), goodSha);
    const live = fs.readFileSync(path.join(h.target.root, "slots", "orchestrator", "live"), "utf8").trim();
    const other = live === "blue" ? "green" : "blue";
    assert.strictEqual(pm2Status(h)[`orchestrator-${other}`], undefined, "the failed slot is still registered in PM2");
    assert.strictEqual(pm2Status(h)[`orchestrator-${live}`], "online");
    assertLockKeptForNextUp(out);
  });

  it("a smoke test that fails after the switch sends traffic back to the previous release, and up says so", async () => {
    const tag = await addVersion(h.opts.repos.orchestrator, "1.2.5", "Broken indicadores", {
      "src/server.js": (s) =>
        s.replace(
          `return [200, { UF: Number(rows[0].uf), UTM: Number(rows[0].utm), fecha: rows[0].fecha }];`,
          `return [200, { fecha: rows[0].fecha }];`,
        ),
    });
    const { r } = await upWithTraffic(tag, "failed smoke test");
    assert.notStrictEqual(r.code, 0);
    const out = outputOf(r);
    assert.match(
      out,
      /smoke test failed: indicadores has UF and UTM: GET http:\/\/127\.0\.0\.1:\d+\/api\/common\/indicadores: expected field UF/,
    );
    // The failure bundle: the log lines of the slot that took the traffic, and nginx's errors.
    assert.match(out, /^\s*last log lines of orchestrator-(blue|green) \(pm2\):$/m);
    assert.match(out, /^\s*last warnings and errors in nginx's error log \(/m);
    assert.match(out, /cutover failed; switched back: orchestrator\. Serving now: orchestrator=\w{12}\/(blue|green) sevastopol=\w{12}/);
    assert.strictEqual(await h.servedVersion(), "1.2.3");
    assert.strictEqual(currentSha(h, "orchestrator"), goodSha);
    assertLockKeptForNextUp(out);
    // Running up again does not believe the switch happened: it switches, tests and reverts again.
    const again = await h.up("failed smoke test, again");
    assert.notStrictEqual(again.code, 0);
    assert.match(outputOf(again), /switched back: orchestrator/);
    assert.strictEqual(await h.servedVersion(), "1.2.3");
  });

  it("a migration that fails halfway stops the deploy: old release serves, database as before, backup named, lock kept for the next up", async () => {
    const db = new Client({ connectionString: h.pg.url });
    await db.connect();
    try {
      const tablesBefore = (await db.query("select tablename from pg_tables where schemaname = 'public' order by 1")).rows;
      const migrationsBefore = (await db.query("select name from schema_migrations order by name")).rows;
      const tag = await addVersion(
        h.opts.repos.orchestrator,
        "1.2.6",
        "Broken migration",
        {},
        {
          "migrations/003_half_done.sql":
            "create table half_done (id int);\ninsert into half_done values (1);\ninsert into no_such_table values (1);\n",
        },
      );
      const { r, t } = await upWithTraffic(tag, "failed migration");
      assert.notStrictEqual(r.code, 0);
      const out = outputOf(r);
      assert.match(out, /003_half_done\.sql/);
      assert.match(out, /relation "no_such_table" does not exist/);
      const backup = /Database backup taken just before it: (\S+\.dump)/.exec(out);
      assert.ok(backup, out);
      assert.ok(fs.existsSync(backup[1]), `${backup[1]} is missing`);
      assert.deepStrictEqual(t.failures.slice(0, 5), []);
      assert.deepStrictEqual(Object.keys(t.versions), ["1.2.3"]);
      assert.deepStrictEqual((await db.query("select tablename from pg_tables where schemaname = 'public' order by 1")).rows, tablesBefore);
      assert.deepStrictEqual((await db.query("select name from schema_migrations order by name")).rows, migrationsBefore);
      assertLockKeptForNextUp(out);
    } finally {
      await db.end();
    }
  });

  it("after that run of failures, cleanup kept the serving release and the last good deploy's backup", () => {
    const lastGood = h
      .journal()
      .filter((l) => l.result === "succeeded")
      .pop();
    assert.ok(lastGood.backup && fs.existsSync(lastGood.backup), `backup of the last good deploy is gone: ${lastGood.backup}`);
    const backups = fs.readdirSync(path.join(h.target.root, "backups")).filter((f) => f.endsWith(".dump"));
    assert.ok(backups.length <= 3, `backups were not rotated: ${backups.join(", ")}`);
    assert.ok(fs.existsSync(path.join(h.target.root, "releases", "orchestrator", goodSha, ".nostromo-built")));
  });

  it("a second deploy of the same stack at once is refused by the backend lock; the first finishes", async () => {
    const tag = await addVersion(h.opts.repos.orchestrator, "1.2.7", "A good release");
    const cfg = localConfig({ ...h.opts, refs: { orchestrator: tag, sevastopol: "v1.2.3" } }) as any;
    setPlainConfig(h.stack, cfg);
    const first = h.up("concurrent: first");
    // Start the second once the first holds the backend's lock (bounded wait).
    const locks = path.join(h.backend.stateDir, ".pulumi", "locks");
    const held = () => fs.existsSync(locks) && fs.readdirSync(locks, { recursive: true }).some((f) => String(f).endsWith(".json"));
    const deadline = Date.now() + 30_000;
    while (!held() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(held(), "the first up never took the backend lock");
    const second = await h.backend.pulumiAsync(REPO_ROOT, ["up", "--yes", "--skip-preview", "--stack", h.stack]);
    const r1 = await first;
    assert.notStrictEqual(second.code, 0);
    assert.match(outputOf(second), /locked/i);
    assert.strictEqual(r1.code, 0, outputOf(r1));
    assert.strictEqual(await h.servedVersion(), "1.2.7");
  });

  it("a deploy of another stack to the same server root is refused by the server lock, naming the holder", async () => {
    const lock = path.join(h.target.root, ".lock");
    fs.mkdirSync(lock);
    fs.writeFileSync(path.join(lock, "stack"), "staging\n");
    fs.writeFileSync(path.join(lock, "lease"), "staging/2026-11-22T10:00:00Z-0a1b\n");
    fs.writeFileSync(path.join(lock, "owner"), "ops@elsewhere\n");
    fs.writeFileSync(path.join(lock, "since"), "2026-11-22T10:00:00Z\n");
    try {
      h.configure({ refs: { orchestrator: "v1.2.3", sevastopol: "v1.2.3" } });
      const r = await h.up("refused by server lock");
      assert.notStrictEqual(r.code, 0);
      assert.match(
        outputOf(r),
        /deploy lock held by stack 'staging' \(update staging\/2026-11-22T10:00:00Z-0a1b, ops@elsewhere, since 2026-11-22T10:00:00Z\); nothing was changed\. That stack's next `pulumi up` takes it back; if no deploy is running there: rm -rf \S+\/\.lock/,
      );
      assert.strictEqual(await h.servedVersion(), "1.2.7");
      assert.strictEqual(fs.readFileSync(path.join(lock, "stack"), "utf8"), "staging\n", "the other stack's lock was touched");
    } finally {
      fs.rmSync(lock, { recursive: true, force: true });
    }
  });

  it("a deploy killed mid-way leaves the old release serving; the next up converges", async () => {
    h.configure({ refs: { orchestrator: "v1.2.3", sevastopol: "v1.2.3" } });
    const tag = await addVersion(h.opts.repos.orchestrator, "1.2.8", "Another good release");
    h.configure({ refs: { orchestrator: tag, sevastopol: "v1.2.3" } });
    const child = spawn("pulumi", ["up", "--yes", "--skip-preview", "--non-interactive", "--stack", h.stack], {
      cwd: REPO_ROOT,
      env: h.backend.env,
      stdio: "ignore",
    });
    // Kill it while the new release is being built (bounded wait).
    const partial = path.join(h.target.root, "releases", "orchestrator", `.${shaOf(h, tag)}.partial`);
    const deadline = Date.now() + 120_000;
    while (!fs.existsSync(partial) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(fs.existsSync(partial), "the build never started");
    const hosts = providerHostPids();
    assert.ok(hosts.length > 0, "no dynamic providers' host (provider/host.js) runs during the deploy");
    child.kill("SIGKILL");
    await new Promise((r) => child.on("exit", r));
    assert.strictEqual(await h.servedVersion(), "1.2.7");
    // The engine's plugins run in their own process group: the host must notice the engine is gone.
    const until = Date.now() + 15_000;
    while (hosts.some(alive) && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    assert.deepStrictEqual(hosts.filter(alive), [], "the providers' host outlived the killed engine by 15 s");

    const refused = await h.up("after kill, without cancel");
    assert.notStrictEqual(refused.code, 0);
    assert.match(outputOf(refused), /locked/i);
    h.backend.pulumiOk(REPO_ROOT, ["cancel", "--yes", "--stack", h.stack]);
    const r = await h.up("after kill and cancel");
    assert.strictEqual(r.code, 0, outputOf(r));
    assert.strictEqual(await h.servedVersion(), "1.2.8");
    assert.ok(!fs.existsSync(path.join(h.target.root, ".lock")));
  });
});

/** Processes running this project's dynamic providers' host. */
function providerHostPids(): number[] {
  return fs
    .readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return fs.readFileSync(`/proc/${d}/cmdline`, "utf8").includes(path.join("provider", "host.js"));
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Whether process `pid` still runs (a zombie counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}
