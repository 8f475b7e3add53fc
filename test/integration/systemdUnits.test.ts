import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DeployConfig, parseDeployConfig } from "../../lib/config";
import { systemdUnit, workerSystemdUnit } from "../../lib/scripts";

// The units systemdUnit() writes, checked by systemd's own parser (`systemd-analyze verify`, from
// Debian's systemd package: scripts/install-systemd-host-deps.sh installs it). The e2e test
// (test/e2e/systemd.test.ts) runs them under a real systemd.

const ANALYZE = "/usr/bin/systemd-analyze";

function config(start: string, env: Record<string, string> = {}): DeployConfig {
  return parseDeployConfig(
    "local",
    {
      server: {
        host: "127.0.0.1",
        user: "root",
        root: "/opt/nostromo",
        hostKey: "ssh-ed25519 AAAAC3Nza",
        path: ["/opt/node22/bin", "/usr/lib/postgresql/15/bin"],
        env,
      },
      apps: {
        orchestrator: {
          repo: "/srv/repos/orchestrator",
          ref: "v1.2.2",
          kind: "node",
          start,
          ports: { blue: 8001, green: 8002 },
          health: { path: "/health" },
        },
      },
    },
    { sshPrivateKey: true, databaseUrl: false },
  );
}

/** Writes `units` (file name → text) to a temp dir and runs verify on them; output has the dir as `<dir>`. */
function verify(units: Record<string, string>): { code: number | null; output: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-units-"));
  try {
    for (const [name, text] of Object.entries(units)) fs.writeFileSync(path.join(dir, name), text);
    // --man=no: no man pages on this machine to check Documentation= against.
    const r = spawnSync(ANALYZE, ["verify", "--man=no", ...Object.keys(units).map((n) => path.join(dir, n))], {
      encoding: "utf8",
      cwd: dir,
      timeout: 60_000,
    });
    if (r.error) throw r.error;
    return { code: r.status, output: `${r.stdout}${r.stderr}`.split(dir).join("<dir>").trim() };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe("integration: systemd units (systemd-analyze verify)", () => {
  before(() => {
    if (!fs.existsSync(ANALYZE)) throw new Error(`no ${ANALYZE}: run scripts/install-systemd-host-deps.sh (Debian package systemd)`);
  });

  it("the unit of a slot is exactly what the deploy writes", () => {
    const cfg = config("node dist/server.js", { NODE_EXTRA_CA_CERTS: "/etc/ssl/certs/ca-certificates.crt" });
    assert.strictEqual(
      systemdUnit(cfg.server, cfg.apps[0], "green"),
      [
        "[Unit]",
        "Description=nostromo orchestrator (green slot)",
        "After=network.target",
        "",
        "[Service]",
        "Type=simple",
        "User=root",
        "WorkingDirectory=/opt/nostromo/slots/orchestrator/green",
        'Environment="PORT=8002"',
        'Environment="PATH=/opt/node22/bin:/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin:/bin"',
        'Environment="NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt"',
        'ExecStart=/bin/bash -c "set -a; . ./.env; [ ! -f ./.release.env ] || . ./.release.env; set +a; exec node dist/server.js"',
        "Restart=on-failure",
        "RestartSec=2",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=30",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
      ].join("\n"),
    );
  });

  it("both slots' units of a node app pass verify with no message", () => {
    const cfg = config("node dist/server.js");
    const app = cfg.apps[0];
    assert.deepStrictEqual(
      verify({
        "nostromo-orchestrator-blue.service": systemdUnit(cfg.server, app, "blue"),
        "nostromo-orchestrator-green.service": systemdUnit(cfg.server, app, "green"),
      }),
      { code: 0, output: "" },
    );
  });

  it("a start command with quotes, $, %, backslashes, a tab and a newline still makes one valid ExecStart", () => {
    const start = `node dist/server.js \\\n  --greeting "it's 100% \\"ok\\"" --home "$HOME" --tab 'a\tb'`;
    const cfg = config(start, { WEIRD: `50% "quoted" $NOT_EXPANDED back\\slash` });
    const unit = systemdUnit(cfg.server, cfg.apps[0], "blue");
    assert.deepStrictEqual(verify({ "nostromo-orchestrator-blue.service": unit }), { code: 0, output: "" });
    const execLines = unit.split("\n").filter((l) => l.startsWith("ExecStart="));
    assert.deepStrictEqual(execLines, [
      `ExecStart=/bin/bash -c "set -a; . ./.env; [ ! -f ./.release.env ] || . ./.release.env; set +a; exec node dist/server.js \\\\\\n  --greeting \\"it's 100%% \\\\\\"ok\\\\\\"\\" --home \\"$$HOME\\" --tab 'a\\tb'"`,
    ]);
    assert.ok(unit.includes(`Environment="WEIRD=50%% \\"quoted\\" $NOT_EXPANDED back\\\\slash"`), unit);
  });

  it("the units of a python app's slots and of its worker pass verify with no message (issue 10)", () => {
    const base = config("node dist/server.js");
    const cfg = parseDeployConfig(
      "local",
      {
        server: { ...base.server, hostKey: "ssh-ed25519 AAAAC3Nza" },
        apps: {
          iact: {
            repo: "/srv/repos/iact",
            ref: "v1.0.0",
            kind: "python",
            manager: "systemd",
            start: "gunicorn iact.wsgi --bind 127.0.0.1:$PORT",
            ports: { blue: 8101, green: 8102 },
            health: { path: "/api/health" },
            workers: { "celery-worker": { command: 'celery -A iact worker --loglevel=INFO -n "w1@%h"', stopTimeoutSeconds: 90 } },
          },
        },
      },
      { sshPrivateKey: true, databaseUrl: false },
    );
    const app = cfg.apps[0];
    const worker = workerSystemdUnit(cfg.server, app, app.workers[0], "c".repeat(40));
    assert.deepStrictEqual(
      verify({
        "nostromo-iact-blue.service": systemdUnit(cfg.server, app, "blue"),
        "nostromo-iact-green.service": systemdUnit(cfg.server, app, "green"),
        "iact-celery-worker.service": worker,
      }),
      { code: 0, output: "" },
    );
    assert.ok(worker.includes("TimeoutStopSec=90\n"), worker);
    assert.ok(worker.includes('-n \\"w1@%%h\\""'), worker);
  });

  it("verify does catch a broken unit (the raw newline systemdUnit used to write)", () => {
    const broken = systemdUnit(config("node dist/server.js").server, config("node dist/server.js").apps[0], "blue").replace(
      /^ExecStart=.*$/m,
      'ExecStart=/bin/bash -c "exec node dist/server.js \\\\\n  --flag"',
    );
    const r = verify({ "nostromo-orchestrator-blue.service": broken });
    assert.notStrictEqual(r.code, 0);
    assert.match(r.output, /^<dir>\/nostromo-orchestrator-blue\.service:\d+: Unbalanced quoting, ignoring: /m);
    assert.match(r.output, /Unit configuration has fatal error, unit will not be started\./);
  });
});
