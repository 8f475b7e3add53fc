// Workers (issue 10) under a real systemd (PID 1 of a Debian container, test/support/systemdHost):
// the workers step, as the deploy builds it, run on the host for release 1 then release 2. The
// worker traps TERM, works 2 s more, then writes that it stopped: that line must be there once the
// step for release 2 has returned (the old worker stopped gracefully before the new one started).
// With a stop timeout shorter than that work, systemd kills it (the line never comes). A worker
// that exits at once fails the step with its journal lines; when an old one ran, it is started
// again on its release (checked by systemd, not assumed) and the step says so, or says that it
// could not be. A worker gone from the config is stopped gracefully and its unit removed by the
// next deploy (the workers step, or the record step once the app has no worker left).
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DeployConfig, parseDeployConfig } from "../../lib/config";
import { recordScript, workersCheckScript, workersScript } from "../../lib/scripts";
import { quote } from "../../lib/shell";
import { SystemdHost, startSystemdHost } from "../support/systemdHost";

const SHA1 = "1111111111111111111111111111111111111111";
const SHA2 = "2222222222222222222222222222222222222222";
// A release whose worker cannot start (its broker is down), and one made good then broken.
const BROKEN = "3333333333333333333333333333333333333333";
const SHA4 = "4444444444444444444444444444444444444444";
const CRASHING = `#!/bin/bash
echo "cannot reach the broker of $(cat REVISION)" >&2
exit 3
`;

// The worker: says it started (with its release), and on TERM finishes 2 s of work, then says so.
const WORKER = `#!/bin/bash
log=/opt/nostromo/worker-$WORKER_NAME.log
trap 'sleep 2; echo "stopped $(cat REVISION)" >> "$log"; exit 0' TERM
echo "started $(cat REVISION) $GREETING" >> "$log"
while :; do sleep 0.2; done
`;

describe("e2e: workers under a real systemd", function () {
  let host: SystemdHost;
  let share: string;

  before(async function () {
    share = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-workers-"));
    fs.chmodSync(share, 0o755);
    host = await startSystemdHost({ shareDirs: [share] });
  });
  after(async () => {
    await host?.stop();
    if (share) fs.rmSync(share, { recursive: true, force: true });
  });

  function config(workers: Record<string, unknown>): DeployConfig {
    return parseDeployConfig(
      "local",
      {
        server: { host: "127.0.0.1", user: "root", root: host.root, hostKey: host.ssh.hostKey, path: host.binPath, env: host.env },
        apps: {
          jobs: {
            repo: "/srv/repos/jobs",
            ref: "v1.0.0",
            kind: "node",
            manager: "systemd",
            start: "node server.js",
            ports: { blue: 8301, green: 8302 },
            health: { path: "/health" },
            workers,
          },
        },
      },
      { sshPrivateKey: true, databaseUrl: false },
    );
  }

  /** A built release of app jobs (REVISION, .env, worker.sh, .nostromo-built), made by hand. */
  function release(sha: string, worker = WORKER): void {
    const dir = `${host.root}/releases/jobs/${sha}`;
    host.exec(
      [
        `mkdir -p ${dir} ${host.root}/shared/jobs`,
        `printf '%s\\n' "GREETING='hello'" > ${host.root}/shared/jobs/.env`,
        `ln -sfn ${host.root}/shared/jobs/.env ${dir}/.env`,
        `printf '%s\\n' ${sha.slice(0, 4)} > ${dir}/REVISION`,
        `printf '%s' ${quote(worker)} > ${dir}/worker.sh && chmod +x ${dir}/worker.sh`,
        `touch ${dir}/.nostromo-built`,
      ].join(" && "),
    );
  }

  /** Runs a built step script on the host under a lease, as the Command resource does; exit code and output. */
  let n = 0;
  function step(text: string): { code: number; out: string; seconds: number } {
    const file = path.join(share, `step-${++n}.sh`);
    fs.writeFileSync(file, text, { mode: 0o644 });
    const started = Date.now();
    const out = host.exec(`NOSTROMO_LEASE=local/lease-1 bash ${file} 2>&1; echo "exit=$?"`);
    const code = Number(/exit=(\d+)\s*$/.exec(out)![1]);
    return { code, out, seconds: (Date.now() - started) / 1000 };
  }

  const log = (name: string) => host.exec(`cat ${host.root}/worker-${name}.log 2>/dev/null || true`).trim().split("\n").filter(Boolean);

  it("starts <app>-<worker>.service on the release, and on the next release stops it with TERM, waiting for its work, before starting the new one", () => {
    const cfg = config({ "celery-worker": { command: "env WORKER_NAME=celery-worker ./worker.sh", stopTimeoutSeconds: 10 } });
    const app = cfg.apps[0];
    release(SHA1);
    release(SHA2);
    const first = step(workersScript(cfg, app, SHA1));
    assert.strictEqual(first.code, 0, first.out);
    assert.match(first.out, /worker jobs-celery-worker\.service runs jobs@111111111111/);
    assert.strictEqual(host.exec("systemctl is-active jobs-celery-worker.service").trim(), "active");
    assert.strictEqual(host.exec("systemctl is-enabled jobs-celery-worker.service").trim(), "enabled");
    assert.deepStrictEqual(
      host.exec("systemctl show -p KillSignal,TimeoutStopUSec,Restart,KillMode jobs-celery-worker.service").trim().split("\n").sort(),
      ["KillMode=mixed", "KillSignal=15", "Restart=on-failure", "TimeoutStopUSec=10s"],
    );
    assert.deepStrictEqual(log("celery-worker"), ["started 1111 hello"]);
    assert.strictEqual(step(workersCheckScript(cfg, app, SHA1)).code, 0);
    assert.strictEqual(step(workersCheckScript(cfg, app, SHA2)).code, 3);

    const second = step(workersScript(cfg, app, SHA2));
    assert.strictEqual(second.code, 0, second.out);
    assert.match(second.out, /stopping jobs-celery-worker\.service \(SIGTERM, up to 10 s for the work in flight\)/);
    // The old worker's work in flight finished (2 s after TERM) before the new one started.
    assert.deepStrictEqual(log("celery-worker"), ["started 1111 hello", "stopped 1111", "started 2222 hello"]);
    assert.ok(second.seconds >= 2, `the step took ${second.seconds} s`);
    assert.strictEqual(
      host.exec("systemctl show -p WorkingDirectory --value jobs-celery-worker.service").trim(),
      `${host.root}/releases/jobs/${SHA2}`,
    );
    assert.strictEqual(step(workersCheckScript(cfg, app, SHA2)).code, 0);
  });

  it("a stop timeout shorter than the work in flight: systemd kills the old worker when it is over", () => {
    const cfg = config({ short: { command: "env WORKER_NAME=short ./worker.sh", stopTimeoutSeconds: 1 } });
    const app = cfg.apps[0];
    assert.strictEqual(step(workersScript(cfg, app, SHA1)).code, 0);
    const second = step(workersScript(cfg, app, SHA2));
    assert.strictEqual(second.code, 0, second.out);
    assert.deepStrictEqual(log("short"), ["started 1111 hello", "started 2222 hello"]);
  });

  it("a worker that does not stay up fails the step with its state and its last log lines", () => {
    const cfg = config({ broken: { command: "bash -c 'echo cannot reach the broker >&2; exit 3'" } });
    const r = step(workersScript(cfg, cfg.apps[0], SHA1));
    assert.strictEqual(r.code, 1, r.out);
    assert.match(r.out, /worker jobs-broken\.service of jobs is not running after its start on 111111111111: .*Result=exit-code/);
    assert.match(r.out, /ExecMainStatus=3 /);
    assert.match(r.out, /last log lines of jobs-broken\.service:\ncannot reach the broker/);
    assert.match(
      r.out,
      /workers of jobs: the new worker jobs-broken\.service of jobs failed on 111111111111; no earlier jobs-broken\.service was running, there is none to bring back\n/,
    );
  });

  const events = (name: string) =>
    host
      .exec(`cat ${host.root}/deploys.jsonl 2>/dev/null || true`)
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .filter((e) => e.event === name)
      .map(({ event: _e, time: _t, lease: _l, ...rest }) => rest);

  it("a new worker that does not stay up: the old one is started again on its release, seen running by systemd, and the step says so", () => {
    const cfg = config({ back: { command: "env WORKER_NAME=back ./worker.sh", stopTimeoutSeconds: 10 } });
    const app = cfg.apps[0];
    release(BROKEN, CRASHING);
    assert.strictEqual(step(workersScript(cfg, app, SHA1)).code, 0);
    const r = step(workersScript(cfg, app, BROKEN));
    assert.strictEqual(r.code, 1, r.out);
    assert.match(r.out, /worker jobs-back\.service of jobs is not running after its start on 333333333333: .*ExecMainStatus=3 /);
    assert.match(r.out, /last log lines of jobs-back\.service:\ncannot reach the broker of 3333/);
    assert.match(r.out, /bringing back the old worker jobs-back\.service on release 111111111111\n/);
    assert.match(
      r.out,
      /workers of jobs: the new worker jobs-back\.service of jobs failed on 333333333333; the old one runs again on release 111111111111 \(systemctl is-active: active\)\n/,
    );
    assert.strictEqual(host.exec("systemctl is-active jobs-back.service").trim(), "active");
    assert.strictEqual(
      host.exec("systemctl show -p WorkingDirectory --value jobs-back.service").trim(),
      `${host.root}/releases/jobs/${SHA1}`,
    );
    assert.strictEqual(host.exec("systemctl is-enabled jobs-back.service").trim(), "enabled");
    // The old one stopped gracefully for the new one, then started again on its own release.
    assert.deepStrictEqual(log("back"), ["started 1111 hello", "stopped 1111", "started 1111 hello"]);
    assert.strictEqual(step(workersCheckScript(cfg, app, SHA1)).code, 0);
    assert.deepStrictEqual(events("worker-failed").pop(), { app: "jobs", worker: "jobs-back", sha: BROKEN, back: SHA1 });
    // The next deploy of a good release moves it on as usual.
    const next = step(workersScript(cfg, app, SHA2));
    assert.strictEqual(next.code, 0, next.out);
    assert.strictEqual(step(workersCheckScript(cfg, app, SHA2)).code, 0);
  });

  it("when the old worker cannot be brought back either, the step says so plainly", () => {
    const cfg = config({ gone: { command: "env WORKER_NAME=gone ./worker.sh", stopTimeoutSeconds: 10 } });
    const app = cfg.apps[0];
    release(SHA4);
    assert.strictEqual(step(workersScript(cfg, app, SHA4)).code, 0);
    release(SHA4, CRASHING); // what it needs is gone for the old release too
    const r = step(workersScript(cfg, app, BROKEN));
    assert.strictEqual(r.code, 1, r.out);
    assert.match(r.out, /bringing back the old worker jobs-gone\.service on release 444444444444\n/);
    assert.match(r.out, /old worker jobs-gone\.service on release 444444444444: .*ExecMainStatus=3 /);
    assert.match(r.out, /cannot reach the broker of 4444/);
    assert.match(
      r.out,
      /workers of jobs: the new worker jobs-gone\.service of jobs failed on 333333333333, and the old one could not be brought back either on release 444444444444: jobs-gone\.service is not running\n/,
    );
    assert.notStrictEqual(host.exec("systemctl is-active jobs-gone.service || true").trim(), "active");
    assert.deepStrictEqual(events("worker-failed").pop(), { app: "jobs", worker: "jobs-gone", sha: BROKEN, back: "" });
  });

  it("a worker removed from the config: the next deploy stops it gracefully and removes its unit, saying so; with none left, the record step does", () => {
    const workers = {
      a: { command: "env WORKER_NAME=a ./worker.sh", stopTimeoutSeconds: 10 },
      b: { command: "env WORKER_NAME=b ./worker.sh", stopTimeoutSeconds: 10 },
    };
    const both = config(workers);
    const first = step(workersScript(both, both.apps[0], SHA1));
    assert.strictEqual(first.code, 0, first.out);
    // The worker before (gone) is not in this config: retired too.
    assert.match(first.out, /retired worker jobs-gone of jobs\n/);
    assert.strictEqual(host.exec(`cat ${host.root}/slots/jobs/workers`), "jobs-a\njobs-b\n");

    const one = config({ a: workers.a });
    const second = step(workersScript(one, one.apps[0], SHA2));
    assert.strictEqual(second.code, 0, second.out);
    assert.match(
      second.out,
      /retiring worker jobs-b of jobs \(not in the config any more\): stopping jobs-b\.service \(SIGTERM, up to 10s for the work in flight\)\nretired worker jobs-b of jobs\n/,
    );
    // Its work in flight finished (TERM, 2 s), and nothing of it is left for systemd.
    assert.deepStrictEqual(log("b"), ["started 1111 hello", "stopped 1111"]);
    assert.strictEqual(host.exec("test -e /etc/systemd/system/jobs-b.service && echo there || echo gone").trim(), "gone");
    assert.strictEqual(host.exec("systemctl show -p LoadState --value jobs-b.service").trim(), "not-found");
    assert.strictEqual(host.exec("systemctl is-active jobs-a.service").trim(), "active");
    assert.strictEqual(host.exec(`cat ${host.root}/slots/jobs/workers`), "jobs-a\n");

    // No worker left: the app has no workers step; the record step retires the last one.
    const none = config({});
    const record = step(recordScript(none, { stack: "local", result: "succeeded" }, 5));
    assert.strictEqual(record.code, 0, record.out);
    assert.match(record.out, /retiring worker jobs-a of jobs \(not in the config any more\): stopping jobs-a\.service/);
    assert.match(record.out, /retired worker jobs-a of jobs\n/);
    assert.deepStrictEqual(log("a"), ["started 1111 hello", "stopped 1111", "started 2222 hello", "stopped 2222"]);
    assert.strictEqual(host.exec("systemctl show -p LoadState --value jobs-a.service").trim(), "not-found");
    assert.strictEqual(host.exec(`test -e ${host.root}/slots/jobs/workers && echo there || echo gone`).trim(), "gone");
    assert.deepStrictEqual(
      events("worker-retired").map((e) => e.worker),
      // Each earlier test's config named other workers than the one before it.
      ["jobs-celery-worker", "jobs-short", "jobs-broken", "jobs-back", "jobs-gone", "jobs-b", "jobs-a"],
    );
  });
});
