import * as assert from "assert";
import { execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { Client } from "pg";
import { REPO_ROOT } from "../../local/backend";
import { DeployHarness, readJournal } from "../../local/harness";
import { get } from "../../local/http";
import { runTool } from "../support/tool";
import { trafficLoop } from "../support/traffic";
import { localConfig, outputOf, setPlainConfig } from "../../local/stack";

/** A local Slack-compatible webhook receiver: keeps every JSON body posted to it. */
async function webhookReceiver(): Promise<{ url: string; received: any[]; close(): void }> {
  const received: any[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      received.push({ method: req.method, type: req.headers["content-type"], payload: JSON.parse(body) });
      res.end("ok");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/hooks/T000/B000/secret-token`, received, close: () => server.close() };
}

/** The files a config archive holds, as absolute paths. */
function archived(archive: string): string[] {
  return execFileSync("tar", ["-tzf", archive], { encoding: "utf8" })
    .split("\n")
    .filter(Boolean)
    .map((f) => `/${f}`);
}

describe("e2e: pulumi up deploys the Nostromo system with no downtime", function () {
  const h = new DeployHarness(`t-e2e${process.pid}`);
  const siteFile = () => path.join(h.target.nginx.sitesDir, "nostromo.conf");
  const envFile = (app: string) => path.join(h.target.root, "shared", app, ".env");
  let firstConfigBackup: string;
  let hook: Awaited<ReturnType<typeof webhookReceiver>>;
  before(async () => {
    hook = await webhookReceiver();
    await h.start(undefined, undefined, { notifyWebhookUrl: hook.url });
  });
  after(async () => {
    hook?.close();
    await h.stop();
  });

  it("a bad config fails preview naming its path, and touches nothing", () => {
    const before = fs.readdirSync(h.target.root);
    const good = localConfig(h.opts);
    setPlainConfig(h.stack, { ...good, nginx: { ...(good.nginx as object), port: "eighty" } });
    const r = h.backend.pulumi(REPO_ROOT, ["preview", "--stack", h.stack]);
    setPlainConfig(h.stack, good);
    assert.notStrictEqual(r.code, 0);
    assert.match(outputOf(r), /nginx\.port: must be a whole number from 1 to 65535/);
    assert.deepStrictEqual(fs.readdirSync(h.target.root), before);
  });

  it("1. fresh deploy of v1.2.2: served through nginx, smoke tests pass, outputs hold SHAs and backup", async () => {
    const r = await h.up("fresh deploy");
    assert.strictEqual(r.code, 0, outputOf(r));
    const outputs = h.outputs();
    const sha = execFileSync("git", ["-C", h.opts.repos.orchestrator, "rev-parse", "v1.2.2^{commit}"], { encoding: "utf8" }).trim();
    assert.strictEqual(outputs.apps.orchestrator.sha, sha);
    assert.strictEqual(outputs.apps.orchestrator.version, "1.2.2");
    assert.match(outputs.backup.path, new RegExp(`^${h.target.root}/backups/${h.stack}-\\d{8}T\\d{6}Z-${sha.slice(0, 12)}\\.dump$`));
    assert.ok(outputs.backup.size > 0);
    // The config as it was before the deploy's first change: the target's placeholder site, no .env yet.
    firstConfigBackup = outputs.configBackup.path;
    assert.match(firstConfigBackup, new RegExp(`^${h.target.root}/backups/${h.stack}-config-\\d{8}T\\d{6}Z\\.tar\\.gz$`));
    assert.strictEqual(fs.statSync(firstConfigBackup).mode & 0o777, 0o600);
    assert.ok(archived(firstConfigBackup).includes(siteFile()), archived(firstConfigBackup).join(" "));
    assert.strictEqual(outputs.configBackup.files, archived(firstConfigBackup).length);
    assert.deepStrictEqual(outputs.smokeTests, [
      "login returns a JWT",
      "protected endpoint with the JWT",
      "protected endpoint refuses no JWT",
      "indicadores has UF and UTM",
      "tenant query returns only that tenant",
    ]);
    assert.strictEqual(outputs.url, `http://127.0.0.1:${h.target.nginx.port}/`);
    const lines = h.journal();
    assert.strictEqual(lines.length, 1);
    assert.strictEqual(lines[0].result, "succeeded");
    assert.strictEqual(lines[0].apps.orchestrator.sha, sha);
    assert.ok(!fs.existsSync(path.join(h.target.root, ".lock")), "the server lock was not released");
  });

  it("   …and the public port answers the new version", async () => {
    const health = await get(h.target.nginx.port, "/health");
    assert.strictEqual(health.status, 200, health.body);
    assert.deepStrictEqual(JSON.parse(health.body), { status: "ok", version: "1.2.2" });
    const page = await get(h.target.nginx.port, "/");
    assert.strictEqual(page.status, 200);
    assert.match(page.body, /1\.2\.2/);
  });

  it("2. upgrade to v1.2.3 with a migration: no failed request, rows kept, the backup restores the old schema", async () => {
    const db = new Client({ connectionString: h.pg.url });
    await db.connect();
    try {
      await db.query("insert into items (tenant, name) select 'weyland', 'cargo-' || g from generate_series(1, 500) g");
      const before = (await db.query("select id, tenant, name from items order by id")).rows;

      h.configure({ refs: { orchestrator: "v1.2.3", sevastopol: "v1.2.3" } });
      const traffic = trafficLoop(h.target.nginx.port);
      const r = await h.up("upgrade");
      const { sent, failures, versions } = await traffic.finish();
      console.log(
        `      requests during the upgrade: ${sent} sent, ${failures.length} failed; /health answered ${JSON.stringify(versions)}`,
      );
      assert.strictEqual(r.code, 0, outputOf(r));
      assert.ok(sent > 50, `only ${sent} requests were sent`);
      assert.deepStrictEqual(failures.slice(0, 5), [], `${failures.length} of ${sent} requests failed`);

      assert.strictEqual(await h.servedVersion(), "1.2.3");
      // The plan names the migration files the new commit adds (apps.orchestrator.migrationFiles).
      assert.deepStrictEqual(h.outputs().plan.apps.orchestrator.migrations, ["migrations/002_add_admin_indexes.sql"]);
      const page = await get(h.target.nginx.port, "/");
      assert.match(page.body, /1\.2\.3/);

      const after = (await db.query("select id, tenant, name from items order by id")).rows;
      assert.deepStrictEqual(after, before, "rows written before the deploy changed");
      const applied = (await db.query("select name from schema_migrations order by name")).rows.map((x: { name: string }) => x.name);
      assert.deepStrictEqual(applied, ["001_init.sql", "002_add_admin_indexes.sql"]);

      const outputs = h.outputs();
      assert.ok(
        outputs.apps.orchestrator.changelog.some((l: string) => /Feature: admin indexes/.test(l)),
        JSON.stringify(outputs.apps.orchestrator),
      );
      // The upgrade archived the config before changing it: the site file and both apps' .env, 0600.
      const config = outputs.configBackup;
      assert.notStrictEqual(config.path, firstConfigBackup);
      assert.match(config.path, new RegExp(`^${h.target.root}/backups/${h.stack}-config-\\d{8}T\\d{6}Z\\.tar\\.gz$`));
      assert.strictEqual(fs.statSync(config.path).mode & 0o777, 0o600);
      assert.strictEqual(fs.statSync(path.dirname(config.path)).mode & 0o777, 0o700);
      const files = archived(config.path);
      for (const f of [siteFile(), envFile("orchestrator"), envFile("sevastopol")])
        assert.ok(files.includes(f), `${f} is not in ${files.join(" ")}`);
      assert.strictEqual(config.files, files.length);
      assert.ok(fs.existsSync(firstConfigBackup), "the first config archive was rotated out (backup.keep)");
      // The backup taken just before the migration holds the old schema and every row.
      await db.query("create database scratch");
      const scratch = h.pg.url.replace(/\/nostromo$/, "/scratch");
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
      assert.strictEqual(h.journal().length, 2);
      // The team was told: start and success of both deploys, the upgrade's with its changelog.
      assert.deepStrictEqual(
        hook.received.map((m) => m.payload.text.split(":")[0]),
        ["Deploy started", "Deploy succeeded", "Deploy started", "Deploy succeeded"],
      );
      const success = hook.received[3];
      assert.strictEqual(success.method, "POST");
      assert.strictEqual(success.type, "application/json");
      assert.match(success.payload.text, /orchestrator 1\.2\.3/);
      assert.match(JSON.stringify(success.payload.blocks), /Feature: admin indexes/);
      assert.ok(!h.backend.stateText().includes("secret-token"), "the webhook URL is in the state in clear");
      // A failed `pulumi up` is reported by CI with the notify tool.
      // Spawned asynchronously: the receiver lives in this process and must answer meanwhile.
      const notify = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(
          "npx",
          ["--no-install", "ts-node", "tools/notify.ts", "--stack", h.stack, "--failure", "--message", "pulumi up failed: run 42"],
          {
            cwd: REPO_ROOT,
            env: h.backend.env,
          },
        );
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => (stderr += d));
        child.on("close", (status) => resolve({ status, stdout, stderr }));
      });
      assert.strictEqual(notify.status, 0, notify.stderr);
      assert.match(hook.received[4].payload.text, /^Deploy FAILED.*pulumi up failed: run 42/);
      assert.ok(!`${notify.stdout}${notify.stderr}`.includes("secret-token"), "the notify tool printed the webhook URL");
    } finally {
      await db.end();
    }
  });

  it("3. up again with nothing changed runs no command", async () => {
    const lines = h.journal().length;
    const r = await h.up("no-change up");
    assert.strictEqual(r.code, 0, outputOf(r));
    assert.match(r.stdout, /\d+ unchanged/);
    assert.doesNotMatch(r.stdout, /(created|updated|replaced|deleted)\b/, r.stdout);
    assert.strictEqual(h.journal().length, lines, "a no-change up wrote a journal line");
  });

  it("4. preview of a change lists the steps that would run, and runs none", () => {
    const current = fs.readlinkSync(path.join(h.target.root, "current", "orchestrator"));
    const lines = h.journal().length;
    setPlainConfig(h.stack, localConfig({ ...h.opts, refs: { orchestrator: "v1.2.2", sevastopol: "v1.2.3" } }));
    const r = h.backend.pulumiOk(REPO_ROOT, ["preview", "--stack", h.stack]);
    setPlainConfig(h.stack, localConfig(h.opts));
    for (const step of [
      "nostromo-orchestrator-release-build",
      "nostromo-orchestrator-migration-run",
      "nostromo-orchestrator-service-start",
      "nostromo-cutover-switch-and-smoke",
      "nostromo-backup-dump",
      "nostromo-server-lock",
    ]) {
      assert.match(
        r.stdout,
        new RegExp(`~ +pulumi-nodejs:dynamic/nostromo:Command +${step} +update`),
        `preview does not list ${step}:\n${r.stdout}`,
      );
    }
    assert.doesNotMatch(r.stdout, /nostromo-sevastopol-release-build +update/);
    // The `plan` output tells a reviewer the versions on both sides and the steps, per app.
    assert.match(
      r.stdout,
      /orchestrator: 1\.2\.3 \([0-9a-f]{12}\) → 1\.2\.2 \([0-9a-f]{12}\): build, backup, migrate, start \+ health check, switch; restarts orchestrator web \(idle slot\); migrations none new/,
      r.stdout,
    );
    assert.match(r.stdout, /sevastopol: 1\.2\.3 \([0-9a-f]{12}\), unchanged/, r.stdout);
    assert.strictEqual(fs.readlinkSync(path.join(h.target.root, "current", "orchestrator")), current);
    assert.strictEqual(h.journal().length, lines);
  });

  it("5. restore-config puts back the config the upgrade archived: a hand-broken site file; the live slot stays the health-gated one", async () => {
    const archive = h.outputs().configBackup.path;
    const liveLink = path.join(h.target.root, "nginx-upstreams", "orchestrator");
    const linked = fs.readlinkSync(liveLink);
    const site = fs.readFileSync(siteFile(), "utf8");
    fs.writeFileSync(siteFile(), `${site}# edited by hand\n`);
    const refused = await runTool(h.backend, "restoreConfig", ["--stack", h.stack]);
    assert.strictEqual(refused.code, 2, `${refused.stdout}${refused.stderr}`);
    assert.match(refused.stderr, /refused: no terminal to confirm on; pass --yes/);
    assert.match(refused.stdout, new RegExp(`${siteFile().replace(/[.]/g, "\\.")} \\(644\\): DIFFERS from the server now`));
    assert.ok(fs.readFileSync(siteFile(), "utf8").endsWith("# edited by hand\n"), "a refused restore changed the site file");

    const r = await runTool(h.backend, "restoreConfig", ["--stack", h.stack, "--yes"]);
    assert.strictEqual(r.code, 0, `${r.stdout}${r.stderr}`);
    console.log(`      restore-config took ${r.seconds.toFixed(1)} s`);
    assert.match(r.stdout, new RegExp(`config archive: ${archive.replace(/[.]/g, "\\.")}`));
    assert.match(r.stdout, /nginx reloaded/);
    assert.strictEqual(fs.readFileSync(siteFile(), "utf8"), site);
    assert.strictEqual(fs.statSync(envFile("orchestrator")).mode & 0o777, 0o600);
    // Not the live link (no config: not in the archive): the live slot stays the one the upgrade's health gate passed.
    assert.strictEqual(await h.servedVersion(), "1.2.3");
    assert.strictEqual(fs.readlinkSync(liveLink), linked);
    assert.ok(!fs.existsSync(path.join(h.target.root, ".lock")), "the restore kept the deploy lock");
    const safety = /the files as they were before this restore: (\S+)/.exec(r.stdout)?.[1];
    assert.ok(safety && archived(safety).includes(siteFile()), r.stdout);
    assert.ok(readJournal(h.target.root, true).some((e) => e.event === "config-restore" && e.archive === archive));
  });
});
