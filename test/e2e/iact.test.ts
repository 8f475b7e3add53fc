// IACT as runbook 003 deploys it (issue 10): Django under gunicorn on blue/green systemd slots, a
// Celery worker (iact-celery-worker.service), nginx at /, /api/ and /static/ (collectstatic's
// hashed files in a folder shared by the releases), PostgreSQL and Redis; with the real engine, on
// a real systemd host (test/support/systemdHost.ts, host network) reached over SSH. PostgreSQL and
// redis-server run on this machine's loopback, made by this test; all traffic goes to addresses
// the test made. The stack config is local/iactStack.ts; SECRET_KEY, SMOKE_PASSWORD and REDIS_URL
// reach the .env through the stack secret appSecrets.
import * as assert from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import { REPO_ROOT, RunResult, TempBackend, requirePulumi } from "../../local/backend";
import { HttpAnswer, get, request } from "../../local/http";
import { IACT_BROKEN, IACT_V1, IACT_V2, addBrokenIactReleases, makeIactRepo } from "../../local/iactRepo";
import { IactStackOptions, iactConfig, iactSecrets } from "../../local/iactStack";
import { PostgresInstance, startPostgres } from "../../local/postgres";
import { freeSlotPort } from "../../local/target";
import { RedisInstance, startRedis } from "../../local/redis";
import { outputOf, removeStackFile, setPlainConfig, writeStack } from "../../local/stack";
import { SystemdHost, startSystemdHost } from "../support/systemdHost";
import { runTool } from "../support/tool";
import { trafficLoop } from "../support/traffic";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";

describe("e2e: IACT (Django + Celery, runbook 003) with pulumi up on a real systemd host", function () {
  const stack = `t-iact${process.pid}`;
  let backend: TempBackend;
  let host: SystemdHost;
  let pg: PostgresInstance;
  let redis: RedisInstance;
  let opts: IactStackOptions;
  let work: string;
  let repo: string;
  const secrets = { secretKey: crypto.randomBytes(32).toString("hex"), smokePassword: crypto.randomBytes(12).toString("hex") };
  const figures: Record<string, unknown> = {};

  const port = () => host.nginx.port;
  const outputs = () => JSON.parse(backend.pulumiOk(REPO_ROOT, ["stack", "output", "--json", "--show-secrets", "--stack", stack]).stdout);
  const json = (a: HttpAnswer) => {
    try {
      return JSON.parse(a.body);
    } catch {
      throw new Error(`not JSON (HTTP ${a.status}): ${a.body.slice(0, 300)}`);
    }
  };
  async function up(label: string): Promise<RunResult> {
    const start = Date.now();
    const r = await backend.pulumiAsync(REPO_ROOT, ["up", "--yes", "--skip-preview", "--stack", stack], 15 * 60_000);
    figures[`${label} (s)`] = (Date.now() - start) / 1000;
    return r;
  }
  async function login(): Promise<string> {
    const r = await request(port(), "POST", "/api/auth/login", { json: { username: "smoke", password: secrets.smokePassword } });
    assert.strictEqual(r.status, 200, r.body);
    const token = json(r).token;
    assert.ok(typeof token === "string" && token.length > 20, r.body);
    return token;
  }

  before(async () => {
    requirePulumi();
    work = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-iact-e2e-"));
    fs.chmodSync(work, 0o755);
    backend = new TempBackend("iact");
    repo = await makeIactRepo(path.join(work, "repos"));
    await addBrokenIactReleases(repo);
    const start = Date.now();
    // The deploy clones the repo by its path: the same path inside the host.
    [host, pg, redis] = await Promise.all([startSystemdHost({ shareDirs: [work] }), startPostgres(), startRedis(work)]);
    figures["systemd host + postgres + redis start (s)"] = (Date.now() - start) / 1000;
    opts = {
      target: host,
      repo,
      ref: IACT_V1.tag,
      slotPorts: { blue: await freeSlotPort(), green: await freeSlotPort() },
      // pip in the host trusts this machine's CA bundle (mounted there), as pip here does.
      serverEnv: fs.existsSync(CA_BUNDLE) ? { PIP_CERT: CA_BUNDLE } : {},
    };
    writeStack(backend, stack, iactConfig(opts), iactSecrets(host.ssh.privateKey, pg.url, { ...secrets, redisUrl: redis.url }));
  });

  after(async () => {
    console.log(`      figures: ${JSON.stringify(figures)}`);
    if (backend) backend.pulumi(REPO_ROOT, ["stack", "rm", "--yes", "--force", "--stack", stack]);
    removeStackFile(stack);
    await host?.stop();
    await redis?.stop();
    await pg?.stop();
    backend?.remove();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("1. fresh deploy of v1.0.0: the three health paths, login → token → /api/users/me and a hashed static file, all through nginx", async () => {
    const r = await up("fresh deploy");
    assert.strictEqual(r.code, 0, outputOf(r));
    const out = outputs();
    assert.strictEqual(out.apps.iact.version, IACT_V1.version);
    assert.strictEqual(out.apps.iact.slot, "blue");
    assert.deepStrictEqual(out.smokeTests.length, 3);

    assert.deepStrictEqual(json(await get(port(), "/api/health")), { status: "healthy", version: IACT_V1.version });
    assert.deepStrictEqual(json(await get(port(), "/api/db-check")), { database: "connected" });
    assert.deepStrictEqual(json(await get(port(), "/api/cache-check")), { cache: "connected" });
    const token = await login();
    const me = await request(port(), "GET", "/api/users/me", { headers: { authorization: `Bearer ${token}` } });
    assert.strictEqual(me.status, 200, me.body);
    assert.strictEqual(json(me).username, "smoke");
    assert.strictEqual((await get(port(), "/api/users/me")).status, 401);

    // The page names its stylesheet by its hashed name; nginx serves it from the shared folder.
    const page = await get(port(), "/");
    assert.strictEqual(page.status, 200, page.body);
    const css = /href="(\/static\/core\/site\.[0-9a-f]{12}\.css)"/.exec(page.body)?.[1];
    assert.ok(css, `no hashed stylesheet in ${page.body}`);
    const file = await get(port(), css);
    assert.strictEqual(file.status, 200, file.body);
    assert.strictEqual(file.body, fs.readFileSync(path.join(repo, "core", "static", "core", "site.css"), "utf8"));
    assert.ok(host.exec(`ls ${host.root}/shared/iact/static/core`).includes(path.basename(css)));
    figures.staticFile = css;

    // The app's secrets (appSecrets) are in its .env (0600) on the server, nowhere in clear here.
    const envFile = `${host.root}/shared/iact/.env`;
    assert.strictEqual(host.exec(`stat -c %a ${envFile}`).trim(), "600");
    const env = host.exec(`cat ${envFile}`);
    for (const [k, v] of [
      ["SECRET_KEY", secrets.secretKey],
      ["SMOKE_PASSWORD", secrets.smokePassword],
      ["REDIS_URL", redis.url],
    ])
      assert.ok(env.includes(`${k}='${v}'`), `${k} is not in ${envFile}`);
    const stackFile = fs.readFileSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), "utf8");
    for (const v of [secrets.secretKey, secrets.smokePassword, redis.url])
      assert.ok(
        !backend.stateText().includes(v) && !stackFile.includes(v),
        "a secret of IACT's is in clear in the state or the stack file",
      );

    // Runbook 003's units: the web slot and the Celery worker, both under systemd.
    assert.strictEqual(host.exec("systemctl is-active nostromo-iact-blue.service iact-celery-worker.service").trim(), "active\nactive");
  });

  it("2. upgrade to v1.1.0 with its migration under a steady stream: no failed request; every task enqueued before, during and after is recorded once", async () => {
    const token = await login();
    const ids: string[] = [];
    const enqueueFailures: string[] = [];
    async function enqueue(phase: string, seconds: number): Promise<void> {
      const id = `${phase}-${ids.length + 1}`;
      const r = await request(port(), "POST", "/api/tasks", { json: { id, seconds }, headers: { authorization: `Bearer ${token}` } });
      if (r.status === 202) ids.push(id);
      else enqueueFailures.push(`${id}: ${r.status} ${r.body.slice(0, 200)}`);
    }
    for (let i = 0; i < 10; i++) await enqueue("before", 0.5);

    setPlainConfig(stack, iactConfig({ ...opts, ref: IACT_V2.tag }));
    const traffic = trafficLoop(port(), 100_000, 15 * 60_000, ["/api/health", "/api/db-check", "/api/cache-check", "/"]);
    // Tasks during the deploy: one every 250 ms (up to 2 000), some with work in flight when the worker moves.
    let deploying = true;
    let during = 0;
    const enqueuer = (async () => {
      while (deploying && during < 2000) {
        during++;
        await enqueue("during", during % 4 === 0 ? 2 : 0.2);
        await sleep(250);
      }
    })();
    const r = await up("upgrade");
    deploying = false;
    await enqueuer;
    const { sent, failures } = await traffic.finish();
    for (let i = 0; i < 10; i++) await enqueue("after", 0.1);
    figures.requests = { sent, failed: failures.length };
    assert.strictEqual(r.code, 0, outputOf(r));
    assert.ok(sent > 50, `only ${sent} requests were sent`);
    assert.deepStrictEqual(failures.slice(0, 5), [], `${failures.length} of ${sent} requests failed`);
    assert.deepStrictEqual(enqueueFailures.slice(0, 5), [], `${enqueueFailures.length} tasks could not be enqueued`);

    const out = outputs();
    assert.strictEqual(out.apps.iact.version, IACT_V2.version);
    assert.strictEqual(out.apps.iact.slot, "green");
    assert.deepStrictEqual(out.plan.apps.iact.migrations, [`core/migrations/${IACT_V2.migration}.py`]);
    assert.deepStrictEqual(out.plan.apps.iact.restarts, ["iact web (idle slot)", "iact-celery-worker"]);
    assert.deepStrictEqual(json(await get(port(), "/api/health")), { status: "healthy", version: IACT_V2.version });
    const db = new Client({ connectionString: pg.url });
    await db.connect();
    try {
      const applied = (await db.query("select name from django_migrations where app = 'core' order by name")).rows.map((x) => x.name);
      assert.deepStrictEqual(applied, ["0001_initial", IACT_V2.migration]);
    } finally {
      await db.end();
    }
    const sha = out.apps.iact.sha;
    assert.strictEqual(
      host.exec("systemctl show -p WorkingDirectory --value iact-celery-worker.service").trim(),
      `${host.root}/releases/iact/${sha}`,
    );
    assert.strictEqual(host.exec("systemctl is-active nostromo-iact-blue.service nostromo-iact-green.service").trim(), "active\nactive");
    // The idle slot keeps v1.0.0 for an instant rollback and reports its own version, not the new one.
    assert.deepStrictEqual(json(await get(opts.slotPorts.blue, "/api/health")), { status: "healthy", version: IACT_V1.version });

    // Every task recorded, each exactly once (bounded wait: at most 3 minutes).
    const deadline = Date.now() + 180_000;
    let count = -1;
    while (Date.now() < deadline) {
      count = json(await get(port(), "/api/tasks/count")).count;
      if (count >= ids.length) break;
      await sleep(500);
    }
    figures.tasks = { enqueued: ids.length, during, recorded: count };
    assert.strictEqual(count, ids.length, `${count} of ${ids.length} tasks recorded`);
    const notOnce: string[] = [];
    for (const id of ids) {
      const t = json(await get(port(), `/api/tasks/${encodeURIComponent(id)}`));
      if (t.count !== 1 || t.done !== true) notOnce.push(`${id}: ${JSON.stringify(t)}`);
    }
    assert.deepStrictEqual(notOnce, []);
    const completed = ids.length - notOnce.length;
    figures.tasks = { enqueued: ids.length, during, recorded: count, completedOnce: completed };
    console.log(
      `      upgrade: ${figures["upgrade (s)"]} s; requests ${sent} sent, ${failures.length} failed; tasks ${ids.length} enqueued ` +
        `(${during} during the deploy), ${completed} completed exactly once`,
    );
  });
  // --- releases that must never take traffic (v1.1.0 on green serves throughout) -------------

  /** What a user checks after a refused release: v1.1.0 still answers, on green, its worker untouched. */
  async function assertV2StillServes(label: string, failures: string[]): Promise<void> {
    assert.deepStrictEqual(failures.slice(0, 5), [], `${label}: requests failed while the release was refused`);
    assert.deepStrictEqual(json(await get(port(), "/api/health")), { status: "healthy", version: IACT_V2.version });
    assert.strictEqual(host.exec(`cat ${host.root}/slots/iact/live`).trim(), "green");
    assert.strictEqual(host.exec("systemctl is-active nostromo-iact-green.service iact-celery-worker.service").trim(), "active\nactive");
    assert.strictEqual(
      host.exec("systemctl show -p WorkingDirectory --value iact-celery-worker.service").trim(),
      `${host.root}/releases/iact/${v2Sha}`,
      `${label}: the Celery worker moved to the refused release`,
    );
  }
  /** The rows of django_migrations, the schema's record of what ran. */
  async function appliedMigrations(): Promise<string[]> {
    const db = new Client({ connectionString: pg.url });
    await db.connect();
    try {
      return (await db.query("select app || '.' || name as m from django_migrations order by id")).rows.map((x) => x.m);
    } finally {
      await db.end();
    }
  }
  /** Deploys a broken release under a steady stream of requests; returns the run and the failed requests. */
  async function upRefused(
    ref: string,
    label: string,
    extra: Partial<IactStackOptions> = {},
  ): Promise<{ out: string; failures: string[] }> {
    setPlainConfig(stack, iactConfig({ ...opts, ref, ...extra }));
    const traffic = trafficLoop(port(), 100_000, 15 * 60_000, ["/api/health", "/api/db-check", "/"]);
    const r = await up(label);
    const { sent, failures } = await traffic.finish();
    figures[`${label}: requests`] = { sent, failed: failures.length };
    assert.notStrictEqual(r.code, 0, `${label}: up succeeded:\n${outputOf(r)}`);
    return { out: outputOf(r), failures };
  }
  let v2Sha = "";

  it("3. a failing migrate stops the deploy before any switch: the error and the backup are named, django_migrations and v1.1.0 as they were", async () => {
    v2Sha = outputs().apps.iact.sha;
    const before = await appliedMigrations();
    const { out, failures } = await upRefused(IACT_BROKEN.migrate.tag, "failing migrate");
    assert.match(out, new RegExp(`migration of iact@[0-9a-f]{12} failed; nothing was switched, the old release still serves\\.`));
    assert.ok(out.includes(IACT_BROKEN.migrate.error), `the migration's error is not in the output:\n${out.slice(-3000)}`);
    assert.ok(out.includes(IACT_BROKEN.migrate.migration), out.slice(-3000));
    const backup = /Database backup taken just before it: (\S+\.dump)/.exec(out);
    assert.ok(backup, out.slice(-3000));
    assert.strictEqual(host.exec(`test -s ${backup[1]} && echo present`).trim(), "present");
    assert.deepStrictEqual(await appliedMigrations(), before);
    await assertV2StillServes("failing migrate", failures);
  });

  it("4. a failing collectstatic stops the deploy before the migration and any switch; the served stylesheet is still there", async () => {
    const before = await appliedMigrations();
    const css = /href="(\/static\/core\/site\.[0-9a-f]{12}\.css)"/.exec((await get(port(), "/")).body)?.[1];
    assert.ok(css);
    const { out, failures } = await upRefused(IACT_BROKEN.collectstatic.tag, "failing collectstatic");
    assert.match(out, /collectstatic/);
    assert.ok(out.includes(`The file '${IACT_BROKEN.collectstatic.missing}' could not be found`), out.slice(-3000));
    assert.match(out, /nothing was switched/);
    assert.deepStrictEqual(await appliedMigrations(), before);
    assert.strictEqual((await get(port(), css)).status, 200, `${css} is gone after the refused release`);
    await assertV2StillServes("failing collectstatic", failures);
  });

  it("5. a gunicorn that never answers is stopped at the health gate, never switched, and its slot is stopped", async () => {
    const { out, failures } = await upRefused(IACT_BROKEN.hang.tag, "gunicorn never answers", { healthTimeoutSeconds: 20 });
    assert.match(
      out,
      /health check failed for iact: http:\/\/127\.0\.0\.1:\d+\/api\/health expected HTTP 200 with \{"status":"healthy","version":"1\.1\.3"\}, got HTTP 000/,
    );
    assert.match(out, /the new slot was stopped; nothing was switched/);
    // Stopped: "inactive", or "failed" when the hung worker outlived TimeoutStopSec and was killed.
    assert.match(host.exec("systemctl is-active nostromo-iact-blue.service || true").trim(), /^(inactive|failed)$/);
    assert.strictEqual(host.exec("systemctl show -p MainPID --value nostromo-iact-blue.service").trim(), "0");
    await assertV2StillServes("gunicorn never answers", failures);
  });

  it("6. up of v1.1.0 again after the refused releases: nothing switched, the lock released, v1.1.0's environment back", async () => {
    setPlainConfig(stack, iactConfig({ ...opts, ref: IACT_V2.tag }));
    const r = await up("back to v1.1.0");
    assert.strictEqual(r.code, 0, outputOf(r));
    assert.strictEqual(outputs().apps.iact.sha, v2Sha);
    await assertV2StillServes("back to v1.1.0", []);
    assert.strictEqual(host.exec(`test -e ${host.root}/.lock && echo held || echo free`).trim(), "free");
    assert.strictEqual(host.exec(`cat ${host.root}/releases/iact/${v2Sha}/.release.env`).trim(), `APP_VERSION='${IACT_V2.version}'`);
    assert.ok(!host.exec(`cat ${host.root}/shared/iact/.env`).includes("APP_VERSION"), "APP_VERSION is in the shared .env");
  });

  it("7. restore-config puts back the nginx site and systemd units an operator broke, from the archive a deploy took", async () => {
    // The newest archive: taken by the last deploy before its first change; it holds v1.1.0's files.
    const archive = host.exec(`ls -1 ${host.root}/backups/${stack}-config-*.tar.gz | sort -r | head -n 1`).trim();
    const site = `${host.nginx.sitesDir}/nostromo.conf`;
    const worker = "/etc/systemd/system/iact-celery-worker.service";
    const listed = host.exec(`tar -tzf ${archive}`).split("\n").filter(Boolean);
    for (const f of [site, worker, `${host.root}/shared/iact/.env`])
      assert.ok(listed.includes(f.slice(1)), `${f} is not in ${archive}: ${listed}`);
    const good = { site: host.exec(`cat ${site}`), worker: host.exec(`cat ${worker}`) };

    // An operator's edits: /api/ sent to a port nothing listens on (nginx reloaded), the worker unit rewritten.
    host.exec(`sed -i 's|proxy_pass [^;]*;|proxy_pass http://127.0.0.1:9;|' ${site} && ${host.nginx.reloadCommand}`);
    host.exec(`printf '[Service]\\nExecStart=/bin/false\\n' > ${worker} && systemctl daemon-reload`);
    assert.strictEqual((await get(port(), "/api/health")).status, 502);

    const r = await runTool(backend, "restoreConfig", ["--stack", stack, "--archive", archive, "--yes"]);
    assert.strictEqual(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.strictEqual(host.exec(`cat ${site}`), good.site);
    assert.strictEqual(host.exec(`cat ${worker}`), good.worker);
    assert.strictEqual(host.exec("systemctl show -p NeedDaemonReload --value iact-celery-worker.service").trim(), "no");
    assert.deepStrictEqual(json(await get(port(), "/api/health")), { status: "healthy", version: IACT_V2.version });
    figures["restore-config (s)"] = r.seconds;
  });
});
