import * as assert from "assert";
import { WORKER_SETTLE_SECONDS, workerSystemdUnit, workersCheckScript, workersScript } from "../../../lib/scripts";
import { SHA, stepText } from "./fixture";
import { pythonConfig } from "./pythonFixture";

describe("unit: scripts/workers (issue 10, exact text)", () => {
  it("worker unit <app>-<worker>.service: the release's folder, SIGTERM to the main process, the stop timeout, restarted on failure", () => {
    const { cfg, app } = pythonConfig();
    assert.strictEqual(
      workerSystemdUnit(cfg.server, app, app.workers[0], SHA),
      [
        "[Unit]",
        "Description=nostromo iact worker celery-worker (release 0123456789ab)",
        "After=network.target",
        "",
        "[Service]",
        "Type=simple",
        "User=deploy",
        "WorkingDirectory=/srv/nostromo/releases/iact/0123456789abcdef0123456789abcdef01234567",
        'ExecStart=/bin/bash -c "set -a; . ./.env; [ ! -f ./.release.env ] || . ./.release.env; set +a; export VIRTUAL_ENV=\\"$$PWD\\"/.venv PATH=\\"$$PWD\\"/.venv/bin:\\"$$PATH\\"; exec celery -A iact worker --loglevel=INFO"',
        "Restart=on-failure",
        "RestartSec=2",
        "KillSignal=SIGTERM",
        "KillMode=mixed",
        "TimeoutStopSec=30",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
      ].join("\n"),
    );
  });

  it("workers step under systemd: the old worker stopped gracefully first, the new unit started and checked for a few seconds, else its journal", () => {
    const { cfg, app } = pythonConfig();
    assert.strictEqual(WORKER_SETTLE_SECONDS, 5);
    assert.strictEqual(
      workersScript(cfg, app, SHA),
      stepText(cfg, [
        "[ -f '/srv/nostromo/releases/iact/0123456789abcdef0123456789abcdef01234567/.nostromo-built' ] || { echo \"workers of iact: release 0123456789ab is not built\" >&2; exit 1; }",
        "worker_up() {",
        "  for i in $(seq 5); do",
        "    sleep 1",
        '    if ! systemctl is-active --quiet "$1"; then',
        "      echo \"worker $1 of iact is not running after its start on 0123456789ab: $(systemctl show -p ActiveState,SubState,Result,NRestarts,ExecMainStatus \"$1\" 2>&1 | tr '\\n' ' ')\" >&2",
        '      echo "last log lines of $1:" >&2',
        '      journalctl _SYSTEMD_UNIT="$1" --since "@$since" -n 20 --no-pager -o cat >&2 || true',
        "      exit 1",
        "    fi",
        "  done",
        '  echo "worker $1 runs iact@0123456789ab"',
        "}",
        "unit='iact-celery-worker.service'",
        'if systemctl is-active --quiet "$unit"; then echo "stopping $unit (SIGTERM, up to 30 s for the work in flight)"; fi',
        'systemctl stop "$unit" 2>/dev/null || true',
        "printf '%s' '[Unit]",
        "Description=nostromo iact worker celery-worker (release 0123456789ab)",
        "After=network.target",
        "",
        "[Service]",
        "Type=simple",
        "User=deploy",
        "WorkingDirectory=/srv/nostromo/releases/iact/0123456789abcdef0123456789abcdef01234567",
        'ExecStart=/bin/bash -c "set -a; . ./.env; [ ! -f ./.release.env ] || . ./.release.env; set +a; export VIRTUAL_ENV=\\"$$PWD\\"/.venv PATH=\\"$$PWD\\"/.venv/bin:\\"$$PATH\\"; exec celery -A iact worker --loglevel=INFO"',
        "Restart=on-failure",
        "RestartSec=2",
        "KillSignal=SIGTERM",
        "KillMode=mixed",
        "TimeoutStopSec=30",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "' > '/etc/systemd/system'/\"$unit.new\" && mv -f '/etc/systemd/system'/\"$unit.new\" '/etc/systemd/system'/\"$unit\"",
        "systemctl daemon-reload",
        'systemctl enable --quiet "$unit"',
        "since=$(date +%s)",
        'systemctl start "$unit"',
        'worker_up "$unit"',
        "nostromo_result workers='iact-celery-worker'",
      ]),
    );
  });

  it("workers step under PM2: deleted with the old process's kill timeout, started with its own, checked online and not restarting, saved", () => {
    const { cfg, app } = pythonConfig();
    assert.strictEqual(
      workersScript(cfg, { ...app, manager: "pm2" }, SHA),
      stepText(cfg, [
        "[ -f '/srv/nostromo/releases/iact/0123456789abcdef0123456789abcdef01234567/.nostromo-built' ] || { echo \"workers of iact: release 0123456789ab is not built\" >&2; exit 1; }",
        "worker_up() {",
        "  for i in $(seq 5); do",
        "    sleep 1",
        '    if ! { state=$(pm2 jlist | node -e \'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let l=[];try{l=JSON.parse(s)}catch{}const p=l.find(p=>p.name===process.argv[1]);console.log(p?p.pm2_env.status+" "+p.pm2_env.restart_time:"missing")})\' "$1"); [ "$state" = "online 0" ]; }; then',
        '      echo "worker $1 of iact is not running after its start on 0123456789ab: $state" >&2',
        '      echo "last log lines of $1:" >&2',
        '      pm2 logs "$1" --lines 20 --nostream --raw >&2 2>&1 || true',
        "      exit 1",
        "    fi",
        "  done",
        '  echo "worker $1 runs iact@0123456789ab"',
        "}",
        "name='iact-celery-worker'",
        'if pm2 describe "$name" >/dev/null 2>&1; then echo "stopping $name (up to 30 s for the work in flight)"; pm2 delete "$name" >/dev/null; fi',
        'pm2 start bash --name "$name" --cwd \'/srv/nostromo/releases/iact/0123456789abcdef0123456789abcdef01234567\' --time --kill-timeout 30000 -- -c \'set -a; . ./.env; [ ! -f ./.release.env ] || . ./.release.env; set +a; export VIRTUAL_ENV="$PWD"/.venv PATH="$PWD"/.venv/bin:"$PATH"; exec celery -A iact worker --loglevel=INFO\' >/dev/null',
        'worker_up "$name"',
        "pm2 save --force >/dev/null",
        "nostromo_result workers='iact-celery-worker'",
      ]),
    );
  });

  it("refresh check: every worker running on the release, else drift (exit 3) naming them", () => {
    const { cfg, app } = pythonConfig();
    assert.strictEqual(
      workersCheckScript(cfg, app, SHA),
      [
        "set -eu",
        "umask 022",
        'nostromo_result() { node -e \'const o={};for(const a of process.argv.slice(1)){const i=a.indexOf("=");o[a.slice(0,i)]=a.slice(i+1)}console.log("nostromo-result "+JSON.stringify(o))\' lease="${NOSTROMO_LEASE:-}" "$@"; }',
        'drift=""',
        "{ systemctl is-active --quiet 'iact-celery-worker.service' && [ \"$(systemctl show -p WorkingDirectory --value 'iact-celery-worker.service')\" = '/srv/nostromo/releases/iact/0123456789abcdef0123456789abcdef01234567' ]; } || drift=\"$drift iact-celery-worker\"",
        'if [ -n "$drift" ]; then echo "iact: workers not running 0123456789ab:$drift"; exit 3; fi',
        'echo "iact: every worker runs 0123456789ab"',
        "",
      ].join("\n"),
    );
    assert.strictEqual(
      workersCheckScript(cfg, { ...app, manager: "pm2" }, SHA),
      [
        "set -eu",
        "umask 022",
        'nostromo_result() { node -e \'const o={};for(const a of process.argv.slice(1)){const i=a.indexOf("=");o[a.slice(0,i)]=a.slice(i+1)}console.log("nostromo-result "+JSON.stringify(o))\' lease="${NOSTROMO_LEASE:-}" "$@"; }',
        'drift=""',
        '[ "$(pm2 jlist | node -e \'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let l=[];try{l=JSON.parse(s)}catch{}const p=l.find(p=>p.name===process.argv[1]);console.log(p?p.pm2_env.status+" "+p.pm2_env.pm_cwd:"missing")})\' \'iact-celery-worker\')" = \'online /srv/nostromo/releases/iact/0123456789abcdef0123456789abcdef01234567\' ] || drift="$drift iact-celery-worker"',
        'if [ -n "$drift" ]; then echo "iact: workers not running 0123456789ab:$drift"; exit 3; fi',
        'echo "iact: every worker runs 0123456789ab"',
        "",
      ].join("\n"),
    );
  });
});
