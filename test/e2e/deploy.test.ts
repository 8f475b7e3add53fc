import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import { REPO_ROOT, TempBackend, requirePulumi } from "../support/engine";
import { makeExampleRepos } from "../support/exampleRepos";
import { localConfig, outputOf, removeStackFile, setPlainConfig, writeStack, LocalStackOptions } from "../support/localStack";
import { PostgresInstance, startPostgres } from "../support/postgres";
import { LocalTarget, freePort, startLocalTarget } from "../support/target";

/**
 * GET through nginx on a new connection, as a new visitor would; resolves with status and body
 * (status 0 and the socket error on a network failure).
 */
function get(port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: p, agent: false, timeout: 5000 }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", (err) => resolve({ status: 0, body: String(err) }));
    });
    req.on("timeout", () => req.destroy(new Error("timed out after 5 s")));
    req.on("error", (err) => resolve({ status: 0, body: String(err) }));
  });
}

/** A steady, bounded stream of requests to the public port until stopped. */
function trafficLoop(port: number, maxRequests = 50_000, maxMs = 15 * 60_000) {
  let stop = false;
  const failures: string[] = [];
  let sent = 0;
  const started = Date.now();
  const done = (async () => {
    while (!stop && sent < maxRequests && Date.now() - started < maxMs) {
      const p = sent % 2 === 0 ? "/health" : "/api/common/indicadores";
      sent++;
      const r = await get(port, p);
      if (r.status !== 200) failures.push(`${p}: ${r.status} ${r.body.slice(0, 120)}`);
    }
  })();
  return {
    async finish() {
      stop = true;
      await done;
      return { sent, failures };
    },
  };
}

function journal(target: LocalTarget): any[] {
  const file = path.join(target.root, "deploys.jsonl");
  return fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];
}

describe("e2e: pulumi up deploys the Nostromo system with no downtime", function () {
  const stack = `e2e${process.pid}`;
  let backend: TempBackend;
  let target: LocalTarget;
  let pg: PostgresInstance;
  let opts: LocalStackOptions;
  let work: string;
  const timings: Record<string, number> = {};

  const up = (label: string) => {
    const start = Date.now();
    const r = backend.pulumi(REPO_ROOT, ["up", "--yes", "--skip-preview", "--stack", stack]);
    timings[label] = (Date.now() - start) / 1000;
    return r;
  };

  before(async () => {
    requirePulumi();
    work = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-e2e-"));
    fs.chmodSync(work, 0o755);
    backend = new TempBackend("deploy");
    target = await startLocalTarget();
    pg = await startPostgres();
    const repos = await makeExampleRepos(path.join(work, "repos"));
    opts = {
      target,
      databaseUrl: pg.url,
      repos,
      refs: { orchestrator: "v1.2.2", sevastopol: "v1.2.2" },
      slotPorts: { blue: await freePort(), green: await freePort() },
    };
    writeStack(backend, stack, localConfig(opts), { sshPrivateKey: target.ssh.privateKey, databaseUrl: pg.url });
  });

  after(async () => {
    console.log(`      timings (s): ${JSON.stringify(timings)}`);
    if (backend) backend.pulumi(REPO_ROOT, ["stack", "rm", "--yes", "--force", "--stack", stack]);
    removeStackFile(stack);
    await target?.stop();
    await pg?.stop();
    backend?.remove();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("a bad config fails preview naming its path, and touches nothing", () => {
    const before = fs.readdirSync(target.root);
    setPlainConfig(stack, { ...localConfig(opts), nginx: { ...(localConfig(opts).nginx as object), port: "eighty" } });
    const r = backend.pulumi(REPO_ROOT, ["preview", "--stack", stack]);
    setPlainConfig(stack, localConfig(opts));
    assert.notStrictEqual(r.code, 0);
    assert.match(outputOf(r), /nginx\.port: must be a whole number from 1 to 65535/);
    assert.deepStrictEqual(fs.readdirSync(target.root), before);
  });

  it("1. fresh deploy of v1.2.2: served through nginx, smoke tests pass, outputs hold SHAs and backup", () => {
    const r = up("fresh deploy");
    assert.strictEqual(r.code, 0, outputOf(r));
    const outputs = JSON.parse(backend.pulumiOk(REPO_ROOT, ["stack", "output", "--json", "--stack", stack]).stdout);
    const sha = execFileSync("git", ["-C", opts.repos.orchestrator, "rev-parse", "v1.2.2^{commit}"], { encoding: "utf8" }).trim();
    assert.strictEqual(outputs.apps.orchestrator.sha, sha);
    assert.strictEqual(outputs.apps.orchestrator.version, "1.2.2");
    assert.match(outputs.backup.path, new RegExp(`^${target.root}/backups/${stack}-\\d{8}T\\d{6}Z-${sha.slice(0, 12)}\\.dump$`));
    assert.ok(outputs.backup.size > 0);
    assert.deepStrictEqual(outputs.smokeTests, [
      "login returns a JWT",
      "protected endpoint with the JWT",
      "protected endpoint refuses no JWT",
      "indicadores has UF and UTM",
      "tenant query returns only that tenant",
    ]);
    assert.strictEqual(outputs.url, `http://127.0.0.1:${target.nginx.port}/`);
    const lines = journal(target);
    assert.strictEqual(lines.length, 1);
    assert.strictEqual(lines[0].result, "succeeded");
    assert.strictEqual(lines[0].apps.orchestrator.sha, sha);
    assert.ok(!fs.existsSync(path.join(target.root, ".lock")), "the server lock was not released");
  });

  it("   …and the public port answers the new version", async () => {
    const health = await get(target.nginx.port, "/health");
    assert.strictEqual(health.status, 200, health.body);
    assert.deepStrictEqual(JSON.parse(health.body), { status: "ok", version: "1.2.2" });
    const page = await get(target.nginx.port, "/");
    assert.strictEqual(page.status, 200);
    assert.match(page.body, /1\.2\.2/);
  });

  it("2. upgrade to v1.2.3 with a migration: no failed request, rows kept, the backup restores the old schema", async () => {
    const db = new Client({ connectionString: pg.url });
    await db.connect();
    try {
      await db.query("insert into items (tenant, name) select 'weyland', 'cargo-' || g from generate_series(1, 500) g");
      const before = (await db.query("select id, tenant, name from items order by id")).rows;

      setPlainConfig(stack, localConfig({ ...opts, refs: { orchestrator: "v1.2.3", sevastopol: "v1.2.3" } }));
      const traffic = trafficLoop(target.nginx.port);
      const start = Date.now();
      const r = await backend.pulumiAsync(REPO_ROOT, ["up", "--yes", "--skip-preview", "--stack", stack]);
      timings["upgrade"] = (Date.now() - start) / 1000;
      const { sent, failures } = await traffic.finish();
      console.log(`      requests during the upgrade: ${sent} sent, ${failures.length} failed`);
      assert.strictEqual(r.code, 0, outputOf(r));
      assert.ok(sent > 50, `only ${sent} requests were sent`);
      assert.deepStrictEqual(failures.slice(0, 5), [], `${failures.length} of ${sent} requests failed`);

      const health = await get(target.nginx.port, "/health");
      assert.deepStrictEqual(JSON.parse(health.body), { status: "ok", version: "1.2.3" });
      const page = await get(target.nginx.port, "/");
      assert.match(page.body, /1\.2\.3/);

      const after = (await db.query("select id, tenant, name from items order by id")).rows;
      assert.deepStrictEqual(after, before, "rows written before the deploy changed");
      const applied = (await db.query("select name from schema_migrations order by name")).rows.map((x: { name: string }) => x.name);
      assert.deepStrictEqual(applied, ["001_init.sql", "002_add_admin_indexes.sql"]);

      const outputs = JSON.parse(backend.pulumiOk(REPO_ROOT, ["stack", "output", "--json", "--stack", stack]).stdout);
      assert.ok(outputs.apps.orchestrator.changelog.some((l: string) => /Feature: admin indexes/.test(l)), JSON.stringify(outputs.apps.orchestrator));
      // The backup taken just before the migration holds the old schema and every row.
      await db.query("create database scratch");
      const scratch = pg.url.replace(/\/nostromo$/, "/scratch");
      execFileSync("pg_restore", ["--no-owner", "--dbname", scratch, outputs.backup.path]);
      const old = new Client({ connectionString: scratch });
      await old.connect();
      try {
        const oldApplied = (await old.query("select name from schema_migrations order by name")).rows.map((x: { name: string }) => x.name);
        assert.deepStrictEqual(oldApplied, ["001_init.sql"]);
        assert.deepStrictEqual((await old.query("select id, tenant, name from items order by id")).rows, before);
      } finally {
        await old.end();
      }
      assert.strictEqual(journal(target).length, 2);
    } finally {
      await db.end();
    }
  });

  it("3. up again with nothing changed runs no command", () => {
    const lines = journal(target).length;
    const r = up("no-change up");
    assert.strictEqual(r.code, 0, outputOf(r));
    assert.match(r.stdout, /\d+ unchanged/);
    assert.doesNotMatch(r.stdout, /(created|updated|replaced|deleted)\b/, r.stdout);
    assert.strictEqual(journal(target).length, lines, "a no-change up wrote a journal line");
  });

  it("4. preview of a change lists the steps that would run, and runs none", () => {
    const current = fs.readlinkSync(path.join(target.root, "current", "orchestrator"));
    const lines = journal(target).length;
    setPlainConfig(stack, localConfig({ ...opts, refs: { orchestrator: "v1.2.2", sevastopol: "v1.2.3" } }));
    const r = backend.pulumiOk(REPO_ROOT, ["preview", "--stack", stack]);
    setPlainConfig(stack, localConfig({ ...opts, refs: { orchestrator: "v1.2.3", sevastopol: "v1.2.3" } }));
    for (const step of ["nostromo-orchestrator-release-build", "nostromo-orchestrator-migration-run", "nostromo-orchestrator-service-start", "nostromo-orchestrator-switch-switch", "nostromo-backup-dump"]) {
      assert.match(r.stdout, new RegExp(`~ +pulumi-nodejs:dynamic/nostromo:Command +${step} +update`), `preview does not list ${step}:\n${r.stdout}`);
    }
    assert.doesNotMatch(r.stdout, /nostromo-sevastopol-release-build +update/);
    assert.strictEqual(fs.readlinkSync(path.join(target.root, "current", "orchestrator")), current);
    assert.strictEqual(journal(target).length, lines);
  });
});
