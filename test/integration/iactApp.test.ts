// The IACT example (examples/iact: Django on PostgreSQL, Redis cache, Celery worker, gunicorn)
// run the way runbook 003 runs it: a virtualenv with the hash-pinned requirements, the release's
// .env, migrate, collectstatic, gunicorn on a loopback port and a Celery worker; then v1.1.0's
// migration and its health answer. Real PostgreSQL and redis-server; traffic to 127.0.0.1 only.
import * as assert from "assert";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { IACT_DIR, IACT_V1, IACT_V2, makeIactRepo } from "../../local/iactRepo";
import { PostgresInstance, freePort, startPostgres } from "../../local/postgres";
import { RedisInstance, redisServerPath, startRedis } from "../../local/redis";

const CACHE = process.env.NOSTROMO_CACHE || path.join(os.homedir(), ".cache", "nostromo");
const IN_CI = process.env.CI === "true";
const VISIBILITY_TIMEOUT = 5; // seconds; longer than any task of this test
const PYTHON = process.env.IACT_PYTHON || (fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");

/** The runner's environment minus what the app or pip reads, so only the release's .env counts. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" };
  for (const k of Object.keys(env)) {
    if (
      /^(DATABASE_URL|REDIS_URL|SECRET_KEY|DJANGO_.*|APP_VERSION|STATIC_ROOT|STATIC_URL|ALLOWED_HOSTS|DEBUG|SMOKE_.*|CELERY_.*|PORT|PIP_FIND_LINKS|PIP_NO_INDEX|VIRTUAL_ENV|PYTHONPATH|PYTHONHOME)$/.test(
        k,
      )
    ) {
      delete env[k];
    }
  }
  return { ...env, ...extra };
}

function run(cmd: string, args: string[], cwd: string, timeout = 300_000): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd, env: cleanEnv(), encoding: "utf8", timeout, killSignal: "SIGKILL" });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function runOk(cmd: string, args: string[], cwd: string, timeout?: number): string {
  const r = run(cmd, args, cwd, timeout);
  assert.strictEqual(r.code, 0, `${path.basename(cmd)} ${args.join(" ")} in ${cwd} exited ${r.code}:\n${r.out.slice(-4000)}`);
  return r.out;
}

/** A missing prerequisite: a failure under CI (it must be installed there), a skip elsewhere. */
function missing(ctx: Mocha.Context, what: string): never {
  const msg = `${what} (scripts/install-target-deps.sh installs it)`;
  if (IN_CI) throw new Error(msg);
  console.log(`    iact: skipped: ${msg}`);
  ctx.skip();
}

// --- child processes ---------------------------------------------------------------------

interface Proc {
  name: string;
  proc: ChildProcess;
  output: () => string;
}

const running = new Set<Proc>();
// A crashed or interrupted run must not leave servers behind.
const killAll = () => running.forEach((p) => killGroup(p));

/** SIGKILL to the process and its children (each started in its own process group). */
function killGroup(p: Proc): void {
  if (p.proc.exitCode !== null || p.proc.signalCode !== null || !p.proc.pid) return;
  try {
    process.kill(-p.proc.pid, "SIGKILL");
  } catch {
    p.proc.kill("SIGKILL");
  }
}
process.on("exit", killAll);

function start(name: string, cmd: string, args: string[], cwd: string): Proc {
  const proc = spawn(cmd, args, { cwd, env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"], detached: true });
  let output = "";
  const keep = (d: Buffer) => (output = (output + d.toString()).slice(-200_000));
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  const p = { name, proc, output: () => output };
  running.add(p);
  proc.on("exit", () => running.delete(p));
  return p;
}

/** TERM (gunicorn and Celery shut down warmly on it), then KILL if it is not gone in time. */
async function stop(p: Proc | undefined, graceMs = 20_000): Promise<void> {
  if (!p || p.proc.exitCode !== null || p.proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => p.proc.once("exit", () => resolve()));
  p.proc.kill("SIGTERM");
  const timer = setTimeout(() => killGroup(p), graceMs);
  await exited;
  clearTimeout(timer);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `ready` every 100 ms until it holds, the process exits, or `ms` pass. */
async function waitFor(p: Proc, what: string, ready: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await ready()) return;
    if (p.proc.exitCode !== null || p.proc.signalCode !== null) {
      throw new Error(`${p.name} exited (${p.proc.exitCode ?? p.proc.signalCode}) before ${what}:\n${p.output().slice(-4000)}`);
    }
    if (Date.now() > deadline) throw new Error(`${p.name}: no ${what} within ${ms / 1000} s:\n${p.output().slice(-4000)}`);
    await sleep(100);
  }
}

// --- the virtualenv --------------------------------------------------------------------------

/**
 * A virtualenv with examples/iact/requirements.txt installed, shared between test runs: kept in
 * $NOSTROMO_CACHE/iact/venv-<digest of requirements.txt and the Python>. Its wheels are kept in
 * $NOSTROMO_CACHE/iact/wheels, so a new virtualenv (new requirements) installs offline when they
 * are there; only missing ones are downloaded (hash-checked by pip at install time either way).
 */
function ensureVenv(): { venv: string; how: string; seconds: number } {
  const started = Date.now();
  const requirements = path.join(IACT_DIR, "requirements.txt");
  const python = runOk(PYTHON, ["-c", "import sys; print(sys.executable, sys.version)"], IACT_DIR).trim();
  const digest = crypto.createHash("sha256").update(fs.readFileSync(requirements)).update(`\0${python}`).digest("hex").slice(0, 16);
  const root = path.join(CACHE, "iact");
  const venv = path.join(root, `venv-${digest}`);
  const stamp = path.join(venv, ".nostromo-installed");
  const seconds = () => Math.round((Date.now() - started) / 100) / 10;
  if (fs.existsSync(stamp)) return { venv, how: "cached virtualenv", seconds: seconds() };

  fs.mkdirSync(root, { recursive: true });
  for (const old of fs.readdirSync(root).filter((d) => d.startsWith("venv-"))) {
    fs.rmSync(path.join(root, old), { recursive: true, force: true }); // older requirements, or a half-made one
  }
  const wheels = path.join(root, "wheels");
  runOk(PYTHON, ["-m", "venv", venv], root, 120_000);
  const pip = path.join(venv, "bin", "pip");
  const offline = ["install", "--quiet", "--require-hashes", "--no-index", "--find-links", wheels, "-r", requirements];
  let how = "offline from cached wheels";
  if (run(pip, offline, root).code !== 0) {
    how = "downloaded wheels";
    runOk(
      pip,
      [
        "download",
        "--quiet",
        "--require-hashes",
        "--only-binary=:all:",
        "--cache-dir",
        path.join(root, "pip-cache"),
        "-d",
        wheels,
        "-r",
        requirements,
      ],
      root,
    );
    runOk(pip, offline, root);
  }
  fs.writeFileSync(stamp, `${new Date().toISOString()}\n`);
  return { venv, how, seconds: seconds() };
}

// --- HTTP ----------------------------------------------------------------------------------

async function call(port: number, method: string, urlPath: string, opts: { token?: string; body?: unknown } = {}) {
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, {
    method,
    headers: {
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      ...(opts.body !== undefined ? { "content-type": "application/json" } : {}),
    },
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${method} ${urlPath}: ${res.status}, not JSON: ${text.slice(0, 500)}`);
  }
  return { status: res.status, body };
}

/** The shell quoting the deploy's .env uses (lib/shell.ts quote). */
const shq = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;

// --- the test ------------------------------------------------------------------------------

describe("integration: IACT example (Django, Celery, gunicorn)", function () {
  this.timeout(600_000);

  let pg: PostgresInstance | undefined;
  let redis: RedisInstance | undefined;
  let work: string | undefined;
  let venv: string;
  let repo: string;
  let shared: string;
  let staticRoot: string;
  const smokePassword = `smoke '${crypto.randomBytes(8).toString("hex")}' #1`; // quotes and a # exercise the .env parsing
  const procs: Proc[] = [];

  const bin = (name: string) => path.join(venv, "bin", name);
  const manage = (release: string, ...args: string[]) => runOk(bin("python"), ["manage.py", ...args], release);

  /** `git archive <tag>` into releases/<tag> with the shared .env linked, as a deploy lays a release out. */
  function release(tag: string): string {
    const dir = path.join(work!, "releases", tag);
    fs.mkdirSync(dir, { recursive: true });
    const archive = spawnSync("git", ["-C", repo, "archive", "--format=tar", tag], { maxBuffer: 64 << 20 });
    assert.strictEqual(archive.status, 0, `git archive ${tag}: ${archive.stderr}`);
    const untar = spawnSync("tar", ["-x", "-C", dir], { input: archive.stdout });
    assert.strictEqual(untar.status, 0, `tar -x: ${untar.stderr}`);
    fs.symlinkSync(path.join(shared, ".env"), path.join(dir, ".env"));
    return dir;
  }

  async function startGunicorn(dir: string): Promise<{ port: number; proc: Proc }> {
    const port = await freePort();
    const proc = start(
      `gunicorn (${path.basename(dir)})`,
      bin("gunicorn"),
      ["iact.wsgi", "--bind", `127.0.0.1:${port}`, "--workers", "2", "--timeout", "30"],
      dir,
    );
    procs.push(proc);
    const answers = async () => {
      try {
        return (await fetch(`http://127.0.0.1:${port}/api/health`, { signal: AbortSignal.timeout(2_000) })).status === 200;
      } catch {
        return false;
      }
    };
    await waitFor(proc, "health answer", answers, 30_000);
    return { port, proc };
  }

  async function startWorker(dir: string): Promise<Proc> {
    const args = [
      "-A",
      "iact",
      "worker",
      "--loglevel=INFO",
      "--concurrency=1",
      "--hostname",
      `iact-test-${path.basename(dir)}@%h`,
      "--without-gossip",
      "--without-mingle",
    ];
    const proc = start(`celery worker (${path.basename(dir)})`, bin("celery"), args, dir);
    procs.push(proc);
    await waitFor(proc, "'ready.'", () => /\bready\./.test(proc.output()), 60_000);
    return proc;
  }

  async function login(port: number, username = "smoke", password = smokePassword) {
    return call(port, "POST", "/api/auth/login", { body: { username, password } });
  }

  /** Polls /api/tasks/<id> until the worker recorded it (bounded). */
  async function waitRecorded(port: number, id: string, ms = 30_000): Promise<{ done: boolean; count: number }> {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = await call(port, "GET", `/api/tasks/${id}`);
      assert.strictEqual(r.status, 200);
      if (r.body.done || Date.now() > deadline) return r.body;
      await sleep(100);
    }
  }

  let v1: string;
  let v1Web: { port: number; proc: Proc };
  let worker: Proc;

  /**
   * Queues a task that works `seconds` and waits until it runs in the worker's pool (its "started"
   * log line): a task only received, not yet handed to the pool, is put back by a warm shutdown.
   */
  async function enqueueSlow(token: string, id: string, seconds: number): Promise<void> {
    assert.strictEqual((await call(v1Web.port, "POST", "/api/tasks", { token, body: { id, seconds } })).status, 202);
    await waitFor(worker, "task started", () => worker.output().includes(`started ${id}`), 15_000);
  }

  before(async function () {
    if (!redisServerPath()) missing(this, "redis-server is not installed");
    const canVenv = spawnSync(PYTHON, ["-c", "import ensurepip, venv"], { encoding: "utf8", timeout: 30_000 });
    if (canVenv.error || canVenv.status !== 0) missing(this, `${PYTHON} cannot make virtualenvs (python3-venv)`);

    work = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-iact-"));
    const installed = ensureVenv();
    venv = installed.venv;
    console.log(`    iact: virtualenv ready in ${installed.seconds} s (${installed.how})`);

    [pg, redis] = await Promise.all([startPostgres(), startRedis(work)]);
    repo = await makeIactRepo(work);

    shared = path.join(work, "shared");
    staticRoot = path.join(shared, "static");
    fs.mkdirSync(shared, { recursive: true });
    const env: Record<string, string> = {
      DATABASE_URL: pg.url,
      REDIS_URL: redis.url,
      SECRET_KEY: crypto.randomBytes(32).toString("base64"),
      STATIC_ROOT: staticRoot,
      SMOKE_PASSWORD: smokePassword,
      // Short, so the test of a killed worker sees its task redelivered soon.
      CELERY_VISIBILITY_TIMEOUT: String(VISIBILITY_TIMEOUT),
    };
    const text = Object.keys(env)
      .sort()
      .map((k) => `${k}=${shq(env[k])}\n`)
      .join("");
    fs.writeFileSync(path.join(shared, ".env"), text, { mode: 0o600 });

    v1 = release(IACT_V1.tag);
    const migrated = manage(v1, "migrate", "--noinput");
    assert.match(migrated, /Applying core\.0001_initial\.\.\. OK/);
    assert.match(migrated, /smoke account 'smoke' created/);
    manage(v1, "collectstatic", "--noinput");
    v1Web = await startGunicorn(v1);
    worker = await startWorker(v1);
  });

  after(async () => {
    // Web servers and workers first (warm shutdown), then what they use.
    await Promise.all(procs.map((p) => stop(p)));
    await redis?.stop();
    await pg?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("answers the three health paths", async () => {
    assert.deepStrictEqual(await call(v1Web.port, "GET", "/api/health"), {
      status: 200,
      body: { status: "healthy", version: IACT_V1.version },
    });
    assert.deepStrictEqual(await call(v1Web.port, "GET", "/api/db-check"), { status: 200, body: { database: "connected" } });
    assert.deepStrictEqual(await call(v1Web.port, "GET", "/api/cache-check"), { status: 200, body: { cache: "connected" } });
  });

  it("logs in with the smoke account's password from the .env, and /api/users/me needs the token", async () => {
    const ok = await login(v1Web.port);
    assert.strictEqual(ok.status, 200, JSON.stringify(ok.body));
    const token = ok.body.token as string;
    assert.ok(typeof token === "string" && token.length > 20);
    assert.deepStrictEqual(await call(v1Web.port, "GET", "/api/users/me", { token }), { status: 200, body: { username: "smoke" } });

    assert.strictEqual((await call(v1Web.port, "GET", "/api/users/me")).status, 401);
    assert.strictEqual((await call(v1Web.port, "GET", "/api/users/me", { token: token.slice(0, -2) + "xx" })).status, 401);
    assert.strictEqual((await login(v1Web.port, "smoke", "wrong")).status, 401);
    assert.strictEqual((await call(v1Web.port, "POST", "/api/auth/login", { body: ["not", "an", "object"] })).status, 400);
  });

  it("runs an enqueued Celery task exactly once, and again-enqueued ids are not recorded twice", async () => {
    const token = (await login(v1Web.port)).body.token as string;
    assert.strictEqual((await call(v1Web.port, "POST", "/api/tasks", { body: { id: "no-token" } })).status, 401);
    const before = (await call(v1Web.port, "GET", "/api/tasks/count")).body.count as number;

    const id = `t-${crypto.randomBytes(6).toString("hex")}`;
    const queued = await call(v1Web.port, "POST", "/api/tasks", { token, body: { id } });
    assert.deepStrictEqual(queued, { status: 202, body: { id, queued: true } });
    assert.deepStrictEqual(await waitRecorded(v1Web.port, id), { id, done: true, count: 1 });

    // The same id again (a redelivery looks like this): the worker runs it, no second row.
    await call(v1Web.port, "POST", "/api/tasks", { token, body: { id } });
    const marker = `m-${crypto.randomBytes(6).toString("hex")}`; // queued after it: once it is done, so is the repeat
    await call(v1Web.port, "POST", "/api/tasks", { token, body: { id: marker } });
    assert.strictEqual((await waitRecorded(v1Web.port, marker)).count, 1);
    assert.deepStrictEqual((await call(v1Web.port, "GET", `/api/tasks/${id}`)).body, { id, done: true, count: 1 });
    assert.strictEqual((await call(v1Web.port, "GET", "/api/tasks/count")).body.count, before + 2);
  });

  it("a task in flight when the worker gets TERM is finished before the worker exits (warm shutdown)", async () => {
    const token = (await login(v1Web.port)).body.token as string;
    const id = `term-${crypto.randomBytes(6).toString("hex")}`;
    await enqueueSlow(token, id, 2);
    await stop(worker);
    assert.match(worker.output(), /[Ww]arm shutdown/);
    assert.strictEqual(worker.proc.exitCode, 0, worker.output().slice(-3000));
    assert.deepStrictEqual((await call(v1Web.port, "GET", `/api/tasks/${id}`)).body, { id, done: true, count: 1 });
    worker = await startWorker(v1);
  });

  it("a task whose worker is killed mid-task (KILL to all its processes) is redelivered and recorded once", async () => {
    const token = (await login(v1Web.port)).body.token as string;
    const id = `kill-${crypto.randomBytes(6).toString("hex")}`;
    await enqueueSlow(token, id, 2);
    const exited = new Promise((resolve) => worker.proc.once("exit", resolve));
    killGroup(worker);
    await exited;
    const killedAt = Date.now();
    await sleep(2_500); // longer than the task: nothing is left to finish it
    assert.deepStrictEqual((await call(v1Web.port, "GET", `/api/tasks/${id}`)).body, { id, done: false, count: 0 });
    // A worker gives unacknowledged messages older than the visibility timeout back to the queue
    // when it starts (and in a periodic sweep), so the next worker runs it.
    await sleep(Math.max(0, killedAt + (VISIBILITY_TIMEOUT + 1) * 1000 - Date.now()));
    worker = await startWorker(v1);
    assert.deepStrictEqual(await waitRecorded(v1Web.port, id, 60_000), { id, done: true, count: 1 });
  });

  it("collects static files under hashed names, and the page links the hashed one", async () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(staticRoot, "staticfiles.json"), "utf8"));
    const hashed = manifest.paths["core/site.css"] as string;
    assert.match(hashed, /^core\/site\.[0-9a-f]{12}\.css$/);
    assert.strictEqual(
      fs.readFileSync(path.join(staticRoot, hashed), "utf8"),
      fs.readFileSync(path.join(IACT_DIR, "core", "static", "core", "site.css"), "utf8"),
    );
    const page = await fetch(`http://127.0.0.1:${v1Web.port}/`, { signal: AbortSignal.timeout(10_000) });
    assert.strictEqual(page.status, 200);
    assert.ok((await page.text()).includes(`href="/static/${hashed}"`), "the page links the hashed stylesheet");
  });

  it(`${IACT_V2.tag}: its migration applies beside the serving ${IACT_V1.tag}, and its health reports ${IACT_V2.version}`, async () => {
    const v2 = release(IACT_V2.tag);
    const migrated = manage(v2, "migrate", "--noinput");
    assert.match(migrated, new RegExp(`Applying core\\.${IACT_V2.migration}\\.\\.\\. OK`));
    assert.match(migrated, /smoke account 'smoke' up to date/);
    assert.match(manage(v2, "showmigrations", "core"), new RegExp(`\\[X\\] ${IACT_V2.migration}`));
    manage(v2, "collectstatic", "--noinput");

    const v2Web = await startGunicorn(v2);
    assert.deepStrictEqual(await call(v2Web.port, "GET", "/api/health"), {
      status: 200,
      body: { status: "healthy", version: IACT_V2.version },
    });
    assert.deepStrictEqual((await call(v2Web.port, "GET", "/api/db-check")).body, { database: "connected" });

    // The old release keeps working on the new schema (the column has a database default):
    // v1's worker still records tasks, and v1 still answers its own version.
    assert.deepStrictEqual((await call(v1Web.port, "GET", "/api/health")).body, { status: "healthy", version: IACT_V1.version });
    const token = (await login(v2Web.port)).body.token as string;
    const id = `after-migration-${crypto.randomBytes(4).toString("hex")}`;
    assert.strictEqual((await call(v1Web.port, "POST", "/api/tasks", { token, body: { id } })).status, 202);
    assert.deepStrictEqual(await waitRecorded(v2Web.port, id), { id, done: true, count: 1 });
  });
});
