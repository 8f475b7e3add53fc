// Workers (issue 10) under a real systemd (PID 1 of a Debian container, test/support/systemdHost):
// the workers step, as the deploy builds it, run on the host for release 1 then release 2. The
// worker traps TERM, works 2 s more, then writes that it stopped: that line must be there once the
// step for release 2 has returned (the old worker stopped gracefully before the new one started).
// With a stop timeout shorter than that work, systemd kills it (the line never comes). A worker
// that exits at once fails the step with its journal lines.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DeployConfig, parseDeployConfig } from "../../lib/config";
import { workersCheckScript, workersScript } from "../../lib/scripts";
import { quote } from "../../lib/shell";
import { SystemdHost, startSystemdHost } from "../support/systemdHost";

const SHA1 = "1111111111111111111111111111111111111111";
const SHA2 = "2222222222222222222222222222222222222222";

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
  function release(sha: string): void {
    const dir = `${host.root}/releases/jobs/${sha}`;
    host.exec(
      [
        `mkdir -p ${dir} ${host.root}/shared/jobs`,
        `printf '%s\\n' "GREETING='hello'" > ${host.root}/shared/jobs/.env`,
        `ln -sfn ${host.root}/shared/jobs/.env ${dir}/.env`,
        `printf '%s\\n' ${sha.slice(0, 4)} > ${dir}/REVISION`,
        `printf '%s' ${quote(WORKER)} > ${dir}/worker.sh && chmod +x ${dir}/worker.sh`,
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
  });
});
