// Workers (issue 10) under PM2: the workers step, as the deploy builds it, run with bash against a
// temp deploy root and a PM2 daemon of its own (PM2_HOME in the temp dir), for release 1 then
// release 2. The worker traps PM2's stop signal (SIGINT; TERM too), works 2 s more, then writes
// that it stopped: that line must be there, before the new worker's start, once the step for
// release 2 has returned. A worker that keeps crashing fails the step with its log lines; when an
// old one ran, it is started again on its release (its pid and folder read back from PM2) and the
// step says so, or says that it could not be. A worker gone from the config is deleted gracefully
// by the next deploy (the workers step, or the record step once the app has no worker left).
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DeployConfig, parseDeployConfig } from "../../lib/config";
import { recordScript, workersCheckScript, workersScript } from "../../lib/scripts";
import { validRaw } from "../support/validConfig";

const SHA1 = "1111111111111111111111111111111111111111";
const SHA2 = "2222222222222222222222222222222222222222";
// A release whose worker cannot start (its broker is down), and one made good then broken.
const BROKEN = "3333333333333333333333333333333333333333";
const SHA4 = "4444444444444444444444444444444444444444";

const WORKER = `#!/bin/bash
log="$LOG_DIR/\${WORKER_NAME:-worker}.log"
trap 'sleep 2; echo "stopped $(cat REVISION)" >> "$log"; exit 0' INT TERM
echo "started $(cat REVISION) $GREETING" >> "$log"
while :; do sleep 0.2; done
`;
const CRASHING = `#!/bin/bash
echo "cannot reach the broker of $(cat REVISION)" >&2
exit 3
`;

describe("integration: workers under PM2 (a daemon of the test's own)", function () {
  let dir: string;
  let root: string;
  let pm2Home: string;
  let env: NodeJS.ProcessEnv;

  before(function () {
    if (spawnSync("bash", ["-c", "command -v pm2"]).status !== 0) {
      if (process.env.CI === "true") throw new Error("no pm2 on PATH (scripts/install-target-deps.sh)");
      console.log('    pm2 workers: skipped: no pm2 on PATH (eval "$(scripts/install-target-deps.sh)")');
      this.skip();
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-pm2-workers-"));
    root = path.join(dir, "root");
    pm2Home = path.join(dir, "pm2");
    fs.mkdirSync(pm2Home, { recursive: true });
    env = { ...process.env, PM2_HOME: pm2Home, NOSTROMO_LEASE: "unit/lease-1", LOG_DIR: dir };
    for (const sha of [SHA1, SHA2, SHA4]) release(sha, WORKER);
    release(BROKEN, CRASHING);
  });

  /** A built release of app jobs (REVISION, .env, worker.sh, .nostromo-built). */
  function release(sha: string, worker: string): void {
    const rel = path.join(root, "releases", "jobs", sha);
    fs.mkdirSync(rel, { recursive: true });
    fs.writeFileSync(path.join(rel, "REVISION"), `${sha.slice(0, 4)}\n`);
    fs.writeFileSync(path.join(rel, ".env"), "GREETING='hello'\n");
    fs.writeFileSync(path.join(rel, "worker.sh"), worker, { mode: 0o755 });
    fs.writeFileSync(path.join(rel, ".nostromo-built"), "");
  }
  after(() => {
    if (!dir) return;
    if (fs.existsSync(path.join(pm2Home, "pm2.pid"))) spawnSync("pm2", ["kill"], { env, timeout: 30_000, stdio: "ignore" });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function config(workers: Record<string, unknown>): DeployConfig {
    const raw = validRaw();
    raw.server.root = root;
    raw.apps = {
      jobs: {
        repo: "/srv/repos/jobs",
        ref: "v1.0.0",
        kind: "node",
        start: "node server.js",
        ports: { blue: 8401, green: 8402 },
        health: { path: "/health" },
        workers,
      },
    };
    delete raw.nginx.site;
    return parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: false });
  }

  function step(text: string): { code: number | null; out: string; seconds: number } {
    const started = Date.now();
    const r = spawnSync("bash", ["-c", text], { encoding: "utf8", env, timeout: 120_000 });
    return { code: r.status, out: `${r.stdout}${r.stderr}`, seconds: (Date.now() - started) / 1000 };
  }

  const log = (name = "worker") =>
    fs.existsSync(path.join(dir, `${name}.log`))
      ? fs
          .readFileSync(path.join(dir, `${name}.log`), "utf8")
          .trim()
          .split("\n")
      : [];
  const pm2 = (...args: string[]) => spawnSync("pm2", args, { encoding: "utf8", env, timeout: 30_000 });
  const events = (name: string) =>
    (fs.existsSync(path.join(root, "deploys.jsonl")) ? fs.readFileSync(path.join(root, "deploys.jsonl"), "utf8") : "")
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .filter((e) => e.event === name)
      .map(({ event: _e, time: _t, lease: _l, ...rest }) => rest);

  it("starts <app>-<worker> on the release, and on the next release deletes it gracefully (its work in flight finished) before starting the new one", () => {
    const cfg = config({ "celery-worker": { command: "./worker.sh", stopTimeoutSeconds: 10 } });
    const app = cfg.apps[0];
    const first = step(workersScript(cfg, app, SHA1));
    assert.strictEqual(first.code, 0, first.out);
    assert.match(first.out, /worker jobs-celery-worker runs jobs@111111111111/);
    assert.deepStrictEqual(log(), ["started 1111 hello"]);
    assert.strictEqual(step(workersCheckScript(cfg, app, SHA1)).code, 0);
    assert.strictEqual(step(workersCheckScript(cfg, app, SHA2)).code, 3);

    const second = step(workersScript(cfg, app, SHA2));
    assert.strictEqual(second.code, 0, second.out);
    assert.match(second.out, /stopping jobs-celery-worker \(up to 10 s for the work in flight\)/);
    assert.deepStrictEqual(log(), ["started 1111 hello", "stopped 1111", "started 2222 hello"]);
    assert.ok(second.seconds >= 2, `the step took ${second.seconds} s`);
    assert.strictEqual(step(workersCheckScript(cfg, app, SHA2)).code, 0);
  });

  it("a worker that keeps crashing fails the step with its state and last log lines", () => {
    const cfg = config({ broken: { command: "bash -c 'echo cannot reach the broker >&2; exit 3'" } });
    const r = step(workersScript(cfg, cfg.apps[0], SHA1));
    assert.strictEqual(r.code, 1, r.out);
    assert.match(r.out, /worker jobs-broken of jobs is not running after its start on 111111111111: \S+ \d+/);
    assert.match(r.out, /last log lines of jobs-broken:[\s\S]*cannot reach the broker/);
    assert.match(
      r.out,
      /workers of jobs: the new worker jobs-broken of jobs failed on 111111111111; no earlier jobs-broken was running, there is none to bring back\n/,
    );
    spawnSync("pm2", ["delete", "jobs-broken"], { env, timeout: 30_000, stdio: "ignore" });
  });

  it("a new worker that does not stay up: the old one is started again on its release, with its command and kill timeout, seen online by PM2, and the step says so", () => {
    const cfg = config({ back: { command: "env WORKER_NAME=back ./worker.sh", stopTimeoutSeconds: 10 } });
    const app = cfg.apps[0];
    assert.strictEqual(step(workersScript(cfg, app, SHA1)).code, 0);
    const r = step(workersScript(cfg, app, BROKEN));
    assert.strictEqual(r.code, 1, r.out);
    assert.match(r.out, /worker jobs-back of jobs is not running after its start on 333333333333: \S+ \d+/);
    assert.match(r.out, /last log lines of jobs-back:[\s\S]*cannot reach the broker of 3333/);
    assert.match(r.out, /bringing back the old worker jobs-back on release 111111111111\n/);
    const pid = pm2("pid", "jobs-back").stdout.trim();
    assert.match(pid, /^[1-9]\d*$/);
    assert.ok(
      r.out.includes(
        `workers of jobs: the new worker jobs-back of jobs failed on 333333333333; the old one runs again on release 111111111111 (pm2 pid ${pid}, online)\n`,
      ),
      r.out,
    );
    const p = JSON.parse(pm2("jlist").stdout).find((x: any) => x.name === "jobs-back");
    assert.strictEqual(p.pm2_env.status, "online");
    assert.strictEqual(p.pm2_env.pm_cwd, path.join(root, "releases", "jobs", SHA1));
    assert.strictEqual(p.pm2_env.kill_timeout, 10000);
    // The old one stopped gracefully for the new one, then started again on its own release.
    assert.deepStrictEqual(log("back"), ["started 1111 hello", "stopped 1111", "started 1111 hello"]);
    assert.strictEqual(step(workersCheckScript(cfg, app, SHA1)).code, 0);
    assert.deepStrictEqual(events("worker-failed").pop(), { app: "jobs", worker: "jobs-back", sha: BROKEN, back: SHA1 });
    // Saved as it runs now (what PM2 resurrects after a reboot).
    const dump = JSON.parse(fs.readFileSync(path.join(pm2Home, "dump.pm2"), "utf8")).find((x: any) => x.name === "jobs-back");
    assert.strictEqual(dump.pm_cwd, path.join(root, "releases", "jobs", SHA1));
  });

  it("when the old worker cannot be brought back either, the step says so plainly", () => {
    const cfg = config({ gone: { command: "env WORKER_NAME=gone ./worker.sh", stopTimeoutSeconds: 10 } });
    const app = cfg.apps[0];
    assert.strictEqual(step(workersScript(cfg, app, SHA4)).code, 0);
    release(SHA4, CRASHING); // what it needs is gone for the old release too
    const r = step(workersScript(cfg, app, BROKEN));
    assert.strictEqual(r.code, 1, r.out);
    assert.match(r.out, /bringing back the old worker jobs-gone on release 444444444444\n/);
    assert.match(r.out, /old worker jobs-gone on release 444444444444: \S+ \d+/);
    assert.match(r.out, /cannot reach the broker of 4444/);
    assert.match(
      r.out,
      /workers of jobs: the new worker jobs-gone of jobs failed on 333333333333, and the old one could not be brought back either on release 444444444444: jobs-gone is not running\n/,
    );
    assert.deepStrictEqual(events("worker-failed").pop(), { app: "jobs", worker: "jobs-gone", sha: BROKEN, back: "" });
    release(SHA4, WORKER);
  });

  it("a worker removed from the config: the next deploy deletes it gracefully, saying so; with none left, the record step does", () => {
    const workers = {
      a: { command: "env WORKER_NAME=a ./worker.sh", stopTimeoutSeconds: 10 },
      b: { command: "env WORKER_NAME=b ./worker.sh", stopTimeoutSeconds: 10 },
    };
    const both = config(workers);
    const first = step(workersScript(both, both.apps[0], SHA1));
    assert.strictEqual(first.code, 0, first.out);
    assert.match(first.out, /retired worker jobs-gone of jobs\n/);
    assert.strictEqual(fs.readFileSync(path.join(root, "slots", "jobs", "workers"), "utf8"), "jobs-a\njobs-b\n");

    const one = config({ a: workers.a });
    const second = step(workersScript(one, one.apps[0], SHA2));
    assert.strictEqual(second.code, 0, second.out);
    assert.match(
      second.out,
      /retiring worker jobs-b of jobs \(not in the config any more\): stopping it \(up to its kill timeout for the work in flight\)\nretired worker jobs-b of jobs\n/,
    );
    // Its work in flight finished, and PM2 has no such process any more (nor its saved list).
    assert.deepStrictEqual(log("b"), ["started 1111 hello", "stopped 1111"]);
    assert.notStrictEqual(pm2("describe", "jobs-b").status, 0);
    const names = () => JSON.parse(fs.readFileSync(path.join(pm2Home, "dump.pm2"), "utf8")).map((x: any) => x.name);
    assert.ok(!names().includes("jobs-b"), names().join(" "));
    assert.strictEqual(fs.readFileSync(path.join(root, "slots", "jobs", "workers"), "utf8"), "jobs-a\n");

    // No worker left: the app has no workers step; the record step retires the last one.
    const none = config({});
    const record = step(recordScript(none, { stack: "unit", result: "succeeded" }, 5));
    assert.strictEqual(record.code, 0, record.out);
    assert.match(record.out, /retired worker jobs-a of jobs\n/);
    assert.deepStrictEqual(log("a"), ["started 1111 hello", "stopped 1111", "started 2222 hello", "stopped 2222"]);
    assert.notStrictEqual(pm2("describe", "jobs-a").status, 0);
    assert.ok(!names().includes("jobs-a"), names().join(" "));
    assert.ok(!fs.existsSync(path.join(root, "slots", "jobs", "workers")));
    assert.deepStrictEqual(
      events("worker-retired").map((e) => e.worker),
      // Each earlier test's config named other workers than the one before it.
      ["jobs-celery-worker", "jobs-broken", "jobs-back", "jobs-gone", "jobs-b", "jobs-a"],
    );
  });
});
