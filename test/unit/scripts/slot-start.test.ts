import * as assert from "assert";
import { startSlotScript } from "../../../lib/scripts";
import { EXPECT_FIELDS_QUOTED, NGINX_ERROR_LINES, SHA, healthGateLines, parse, pm2LogLines, stepText } from "./fixture";

/** The digest of the slot's process definition (start lines) in a built script. */
const procOf = (text: string) => /\.started" 2>\/dev\/null\)" = 'd1gest ([0-9a-f]{32})'/.exec(text)![1];

// A slot that already runs the release with this .env and start command or unit, and answers its
// check, is kept (a rollback, a retry).
const reuseLines = (proc: string) => [
  "slot_ready() {",
  `  [ "$(readlink '/srv/nostromo/slots/orchestrator'/"$1" 2>/dev/null)" = '/srv/nostromo/releases/orchestrator/0123456789abcdef0123456789abcdef01234567' ] || return 1`,
  `  [ "$(cat '/srv/nostromo/slots/orchestrator'/"$1.started" 2>/dev/null)" = 'd1gest ${proc}' ] || return 1`,
  `  body=$(curl -fsS -m 5 "http://127.0.0.1:$2"'/health' 2>/dev/null) || return 1`,
  `  node -e ${EXPECT_FIELDS_QUOTED} '{"status":"ok","version":"1.2.2"}' "$body" >/dev/null || return 1`,
  "}",
  `for s in "$live" "$target"; do`,
  `  if [ "$s" = blue ]; then p=8001; elif [ "$s" = green ]; then p=8002; else continue; fi`,
  `  if slot_ready "$s" "$p"; then`,
  `    echo "orchestrator 0123456789ab already runs in slot $s with this environment and answers its health checks: kept, not restarted"`,
  `    nostromo_result slot="$s" port="$p"`,
  "    exit 0",
  "  fi",
  "done",
];

describe("unit: scripts/slot, starting a slot (exact text)", () => {
  it("a slot is kept only when started the same way: another start command or manager gives another digest", () => {
    const digest = (change?: (raw: any) => void) => {
      const cfg = parse(change);
      return procOf(startSlotScript(cfg, cfg.apps[0], SHA, "1.2.2", "d1gest"));
    };
    assert.strictEqual(digest(), digest());
    assert.notStrictEqual(
      digest((raw) => (raw.apps.orchestrator.start = "node dist/other.js")),
      digest(),
    );
    assert.notStrictEqual(
      digest((raw) => (raw.apps.orchestrator.manager = "systemd")),
      digest(),
    );
  });

  it("PM2: the idle slot linked to the release, started as a PM2 process with its .env, health-gated, env digest kept", () => {
    const cfg = parse();
    const text = startSlotScript(cfg, cfg.apps[0], SHA, "1.2.2", "d1gest");
    const proc = procOf(text);
    assert.strictEqual(
      text,
      stepText(cfg, [
        "live=$(cat '/srv/nostromo/slots/orchestrator/live' 2>/dev/null || echo none)",
        `if [ "$live" = blue ]; then target=green; port=8002; else target=blue; port=8001; fi`,
        ...reuseLines(proc),
        "slot_dir='/srv/nostromo/slots/orchestrator'/$target",
        "mkdir -p '/srv/nostromo/slots/orchestrator'",
        `ln -sfn '/srv/nostromo/releases/orchestrator/0123456789abcdef0123456789abcdef01234567' "$slot_dir.new" && mv -T "$slot_dir.new" "$slot_dir"`,
        "name='orchestrator'-$target",
        `pm2 delete "$name" >/dev/null 2>&1 || true`,
        `log_out_at=$(stat -c %s "\${PM2_HOME:-$HOME/.pm2}/logs/""$name"'-out.log' 2>/dev/null || echo 0); log_err_at=$(stat -c %s "\${PM2_HOME:-$HOME/.pm2}/logs/""$name"'-error.log' 2>/dev/null || echo 0)`,
        `PORT=$port pm2 start bash --name "$name" --cwd "$slot_dir" --time --kill-timeout 10000 -- -c 'set -a; . ./.env; [ ! -f ./.release.env ] || . ./.release.env; set +a; exec node dist/server.js' >/dev/null`,
        "stop_slot() {",
        ...pm2LogLines('"$target"'),
        ...NGINX_ERROR_LINES,
        `  pm2 delete "$name" >/dev/null 2>&1 || true`,
        "}",
        `printf '%s %s %s\\n' "\${since:-$(date +%s)}" "\${log_out_at:-0}" "\${log_err_at:-0}" > '/srv/nostromo/slots/orchestrator'/"$target.start"`,
        ...healthGateLines(
          60,
          "$port",
          "the new slot was stopped; nothing was switched",
          [`health_check '/health' '{"status":"ok","version":"1.2.2"}'`],
          `echo "health ok: orchestrator 1.2.2 on port $port"`,
        ),
        `printf '%s\\n' 'd1gest' > '/srv/nostromo/slots/orchestrator'/"$target.env"`,
        `printf '%s\\n' 'd1gest ${proc}' > '/srv/nostromo/slots/orchestrator'/"$target.started"`,
        `nostromo_result slot="$target" port="$port"`,
      ]),
    );
  });

  it("systemd: the idle slot's unit written, enabled and restarted, health-gated; a failed check shows its log and disables it", () => {
    const cfg = parse((raw) => {
      raw.apps.orchestrator.manager = "systemd";
    });
    const text = startSlotScript(cfg, cfg.apps[0], SHA, "1.2.2", "d1gest");
    const proc = procOf(text);
    assert.strictEqual(
      text,
      stepText(cfg, [
        "live=$(cat '/srv/nostromo/slots/orchestrator/live' 2>/dev/null || echo none)",
        `if [ "$live" = blue ]; then target=green; port=8002; else target=blue; port=8001; fi`,
        ...reuseLines(proc),
        "slot_dir='/srv/nostromo/slots/orchestrator'/$target",
        "mkdir -p '/srv/nostromo/slots/orchestrator'",
        `ln -sfn '/srv/nostromo/releases/orchestrator/0123456789abcdef0123456789abcdef01234567' "$slot_dir.new" && mv -T "$slot_dir.new" "$slot_dir"`,
        `unit='nostromo-orchestrator-'"$target.service"`,
        "unit_dir='/etc/systemd/system'",
        `if [ "$target" = blue ]; then unit_text='[Unit]`,
        "Description=nostromo orchestrator (blue slot)",
        "After=network.target",
        "",
        "[Service]",
        "Type=simple",
        "User=deploy",
        "WorkingDirectory=/srv/nostromo/slots/orchestrator/blue",
        `Environment="PORT=8001"`,
        `ExecStart=/bin/bash -c "set -a; . ./.env; [ ! -f ./.release.env ] || . ./.release.env; set +a; exec node dist/server.js"`,
        "Restart=on-failure",
        "RestartSec=2",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=30",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "'; else unit_text='[Unit]",
        "Description=nostromo orchestrator (green slot)",
        "After=network.target",
        "",
        "[Service]",
        "Type=simple",
        "User=deploy",
        "WorkingDirectory=/srv/nostromo/slots/orchestrator/green",
        `Environment="PORT=8002"`,
        `ExecStart=/bin/bash -c "set -a; . ./.env; [ ! -f ./.release.env ] || . ./.release.env; set +a; exec node dist/server.js"`,
        "Restart=on-failure",
        "RestartSec=2",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=30",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "'; fi",
        `printf '%s' "$unit_text" > "$unit_dir/$unit.new" && mv -f "$unit_dir/$unit.new" "$unit_dir/$unit"`,
        "systemctl daemon-reload",
        `systemctl enable --quiet "$unit"`,
        "since=$(date +%s)",
        `systemctl restart "$unit"`,
        "stop_slot() {",
        `  echo "$unit: $({ i=0; while [ $i -lt 30 ] && [ "$(systemctl show -p NRestarts --value "$unit")" != 0 ] && [ "$(systemctl show -p SubState --value "$unit")" = running ]; do sleep 0.1; i=$((i + 1)); done; systemctl show -p ActiveState,SubState,Result,NRestarts,ExecMainStatus "$unit" 2>&1 | tr '\\n' ' '; })" >&2`,
        `echo "last log lines of "'nostromo-orchestrator-'"$target".service":" >&2`,
        `journalctl _SYSTEMD_UNIT='nostromo-orchestrator-'"$target".service \${since:+--since "@$since"} -n 12 --no-pager -o cat 2>/dev/null | sed 's/^/  /' >&2 || true`,
        ...NGINX_ERROR_LINES,
        `  systemctl disable --now --quiet "$unit" || true`,
        "}",
        `printf '%s %s %s\\n' "\${since:-$(date +%s)}" "\${log_out_at:-0}" "\${log_err_at:-0}" > '/srv/nostromo/slots/orchestrator'/"$target.start"`,
        ...healthGateLines(
          60,
          "$port",
          "the new slot was stopped; nothing was switched",
          [`health_check '/health' '{"status":"ok","version":"1.2.2"}'`],
          `echo "health ok: orchestrator 1.2.2 on port $port"`,
        ),
        `printf '%s\\n' 'd1gest' > '/srv/nostromo/slots/orchestrator'/"$target.env"`,
        `printf '%s\\n' 'd1gest ${proc}' > '/srv/nostromo/slots/orchestrator'/"$target.started"`,
        `nostromo_result slot="$target" port="$port"`,
      ]),
    );
  });
});
