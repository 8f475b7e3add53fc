import * as assert from "assert";
import { RESULT_FUNCTION, healthGate, restartSlotLine, slotCheckScript, slotUnit, systemdQuote, systemdUnit } from "../../../lib/scripts";
import { EXPECT_FIELDS_QUOTED, SHA, healthGateLines, parse } from "./fixture";

describe("unit: scripts/slot (exact text)", () => {
  it("names a slot's PM2 process or systemd unit", () => {
    assert.deepStrictEqual(
      [slotUnit("orchestrator", "blue", "pm2"), slotUnit("orchestrator", "green", "pm2")],
      ["orchestrator-blue", "orchestrator-green"],
    );
    assert.deepStrictEqual(
      [slotUnit("orchestrator", "blue", "systemd"), slotUnit("orchestrator", "green", "systemd")],
      ["nostromo-orchestrator-blue.service", "nostromo-orchestrator-green.service"],
    );
  });

  it("systemd quoting: backslash, double quote, % and control characters escaped; $ doubled only on the ExecStart line", () => {
    const text = 'a\\b"c%d$e\nf\tg\rh\x01i\x7fj';
    assert.strictEqual(systemdQuote(text, false), '"a\\\\b\\"c%%d$e\\nf\\tg\\rh\\x01i\\x7fj"');
    assert.strictEqual(systemdQuote(text, true), '"a\\\\b\\"c%%d$$e\\nf\\tg\\rh\\x01i\\x7fj"');
  });

  it("a slot's systemd unit: port, user, slot folder, the app's start command with its .env sourced", () => {
    const cfg = parse();
    assert.strictEqual(
      systemdUnit(cfg.server, cfg.apps[0], "blue"),
      [
        "[Unit]",
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
        "",
      ].join("\n"),
    );
  });

  it("a slot's systemd unit: server.path and server.env (sorted) as Environment=, every value in systemd's quoting", () => {
    const cfg = parse((raw) => {
      raw.server.path = ["/opt/node/bin"];
      raw.server.env = { PM2_HOME: "/var/pm2", MOTD: 'say "hi" at 100% \\ $HOME\nbye' };
      raw.apps.orchestrator.manager = "systemd";
      raw.apps.orchestrator.start = `node dist/server.js --greeting "it's 100% $HOME"`;
    });
    assert.strictEqual(
      systemdUnit(cfg.server, cfg.apps[0], "green"),
      [
        "[Unit]",
        "Description=nostromo orchestrator (green slot)",
        "After=network.target",
        "",
        "[Service]",
        "Type=simple",
        "User=deploy",
        "WorkingDirectory=/srv/nostromo/slots/orchestrator/green",
        `Environment="PORT=8002"`,
        `Environment="PATH=/opt/node/bin:/usr/local/bin:/usr/bin:/bin"`,
        `Environment="MOTD=say \\"hi\\" at 100%% \\\\ $HOME\\nbye"`,
        `Environment="PM2_HOME=/var/pm2"`,
        `ExecStart=/bin/bash -c "set -a; . ./.env; [ ! -f ./.release.env ] || . ./.release.env; set +a; exec node dist/server.js --greeting \\"it's 100%% $$HOME\\""`,
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

  it("restarts slot $slot in place", () => {
    const app = parse().apps[0];
    assert.strictEqual(restartSlotLine(app), `pm2 restart 'orchestrator'-"$slot" >/dev/null`);
    assert.strictEqual(restartSlotLine({ ...app, manager: "systemd" }), `systemctl restart 'nostromo-orchestrator-'"$slot.service"`);
  });

  it("health gate: every path answers 200 before the deadline, the main one with the expected fields and version; else stop_slot", () => {
    const cfg = parse((raw) => {
      raw.apps.orchestrator.health = {
        path: "/health",
        expect: { status: "ok", db: "up" },
        extraPaths: ["/ready", "/api/ping"],
        timeoutSeconds: 30,
      };
    });
    assert.strictEqual(
      healthGate(cfg.apps[0], "1.2.2", "$port", "the new slot was stopped; nothing was switched"),
      healthGateLines(
        30,
        "$port",
        "the new slot was stopped; nothing was switched",
        [`health_check '/health' '{"status":"ok","db":"up","version":"1.2.2"}'`, "health_check '/ready' ''", "health_check '/api/ping' ''"],
        `echo "health ok: orchestrator 1.2.2 on port $port"`,
      ).join("\n"),
    );
  });

  it("health gate of health.checks (the staging runbook's): each path with its own fields, the version on the one that has it", () => {
    const cfg = parse((raw) => {
      raw.apps.orchestrator.health = {
        checks: [
          { path: "/api/health", expect: { status: "healthy" }, versionField: "version" },
          { path: "/api/db-check", expect: { database: "connected" } },
          { path: "/api/cache-check", expect: { cache: "connected" } },
        ],
        timeoutSeconds: 30,
      };
    });
    const calls = [
      `health_check '/api/health' '{"status":"healthy","version":"1.2.2"}'`,
      `health_check '/api/db-check' '{"database":"connected"}'`,
      `health_check '/api/cache-check' '{"cache":"connected"}'`,
    ];
    assert.strictEqual(
      healthGate(cfg.apps[0], "1.2.2", "$port", "the new slot was stopped; nothing was switched"),
      healthGateLines(
        30,
        "$port",
        "the new slot was stopped; nothing was switched",
        calls,
        `echo "health ok: orchestrator 1.2.2 on port $port"`,
      ).join("\n"),
    );
  });

  it("health gate without a version expects only the configured fields", () => {
    assert.strictEqual(
      healthGate(parse().apps[0], undefined, "8001", "traffic stays on the old slot"),
      healthGateLines(
        60,
        "8001",
        "traffic stays on the old slot",
        [`health_check '/health' '{"status":"ok"}'`],
        `echo "health ok: orchestrator on port 8001"`,
      ).join("\n"),
    );
  });

  /** The refresh check of orchestrator's release SHA, with `answers` (the slot_answers calls) and `paths` in its drift line. */
  const slotCheckLines = (answers: string, paths: string) => [
    "set -eu",
    "umask 022",
    RESULT_FUNCTION,
    `seen=""`,
    "slot_answers() {",
    `  body=$(curl -fsS -m 5 "http://127.0.0.1:$port$1" 2>&1) || { seen="$seen $slot: $1: $(printf '%s' "$body" | head -c 120);"; return 1; }`,
    `  [ -z "$2" ] && return 0`,
    `  why=$(node -e ${EXPECT_FIELDS_QUOTED} "$2" "$body") && return 0`,
    `  seen="$seen $slot: $1 answered ($why) $(printf '%s' "$body" | head -c 120);"`,
    "  return 1",
    "}",
    "for slot in blue green; do",
    `  if [ "$slot" = blue ]; then port=8001; else port=8002; fi`,
    `  if [ "$(readlink '/srv/nostromo/slots/orchestrator'/"$slot" 2>/dev/null)" != '/srv/nostromo/releases/orchestrator/0123456789abcdef0123456789abcdef01234567' ]; then seen="$seen $slot: other release;"; continue; fi`,
    `  if ${answers}; then echo "orchestrator 0123456789ab runs in slot $slot"; exit 0; fi`,
    "done",
    `echo "orchestrator: no slot runs 0123456789ab and answers "${paths}" (\${seen# })"`,
    "exit 3",
    "",
  ];

  it("refresh check of a started release: a slot holds the release and answers with its version, else exit 3", () => {
    const cfg = parse();
    assert.strictEqual(
      slotCheckScript(cfg, cfg.apps[0], SHA, "1.2.2"),
      slotCheckLines(`slot_answers '/health' '{"status":"ok","version":"1.2.2"}'`, "'/health'").join("\n"),
    );
  });

  it("refresh check of health.checks: the slot answers every path with its own fields (200 only where none are given)", () => {
    const cfg = parse((raw) => {
      raw.apps.orchestrator.health = {
        checks: [
          { path: "/api/health", expect: { status: "healthy" }, versionField: "version" },
          { path: "/api/db-check", expect: { database: "connected" } },
          { path: "/ready" },
        ],
      };
    });
    assert.strictEqual(
      slotCheckScript(cfg, cfg.apps[0], SHA, "1.2.2"),
      slotCheckLines(
        `slot_answers '/api/health' '{"status":"healthy","version":"1.2.2"}' && slot_answers '/api/db-check' '{"database":"connected"}' && slot_answers '/ready' ''`,
        "'/api/health /api/db-check /ready'",
      ).join("\n"),
    );
  });
});
