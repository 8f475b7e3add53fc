// Workers (issue 10) under PM2: the workers step, as the deploy builds it, run with bash against a
// temp deploy root and a PM2 daemon of its own (PM2_HOME in the temp dir), for release 1 then
// release 2. The worker traps PM2's stop signal (SIGINT; TERM too), works 2 s more, then writes
// that it stopped: that line must be there, before the new worker's start, once the step for
// release 2 has returned. A worker that keeps crashing fails the step with its log lines.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DeployConfig, parseDeployConfig } from "../../lib/config";
import { workersCheckScript, workersScript } from "../../lib/scripts";
import { validRaw } from "../support/validConfig";

const SHA1 = "1111111111111111111111111111111111111111";
const SHA2 = "2222222222222222222222222222222222222222";

const WORKER = `#!/bin/bash
log="$LOG_DIR/worker.log"
trap 'sleep 2; echo "stopped $(cat REVISION)" >> "$log"; exit 0' INT TERM
echo "started $(cat REVISION) $GREETING" >> "$log"
while :; do sleep 0.2; done
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
    for (const sha of [SHA1, SHA2]) {
      const rel = path.join(root, "releases", "jobs", sha);
      fs.mkdirSync(rel, { recursive: true });
      fs.writeFileSync(path.join(rel, "REVISION"), `${sha.slice(0, 4)}\n`);
      fs.writeFileSync(path.join(rel, ".env"), "GREETING='hello'\n");
      fs.writeFileSync(path.join(rel, "worker.sh"), WORKER, { mode: 0o755 });
      fs.writeFileSync(path.join(rel, ".nostromo-built"), "");
    }
  });
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

  const log = () =>
    fs.existsSync(path.join(dir, "worker.log")) ? fs.readFileSync(path.join(dir, "worker.log"), "utf8").trim().split("\n") : [];

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
    spawnSync("pm2", ["delete", "jobs-broken"], { env, timeout: 30_000, stdio: "ignore" });
  });
});
