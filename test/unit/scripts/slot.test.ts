import * as assert from "assert";
import { healthGate, restartSlotLine, slotCheckScript, slotUnit, systemdQuote, systemdUnit } from "../../../lib/scripts";
import { SHA, parse } from "./fixture";

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
        `ExecStart=/bin/bash -c "set -a; . ./.env; set +a; exec node dist/server.js"`,
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
        `ExecStart=/bin/bash -c "set -a; . ./.env; set +a; exec node dist/server.js --greeting \\"it's 100%% $$HOME\\""`,
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
      [
        "deadline=$(( $(date +%s) + 30 ))",
        `expect='{"status":"ok","db":"up","version":"1.2.2"}'`,
        "for path in '/health' '/ready' '/api/ping'; do",
        `  url="http://127.0.0.1:$port$path"`,
        "  while :; do",
        `    code=$(curl -sS -m 5 -o "$nostromo_tmp/health" -w '%{http_code}' "$url" 2>"$nostromo_tmp/health-err" || true)`,
        `    body=$(head -c 300 "$nostromo_tmp/health" 2>/dev/null || true)`,
        `    [ "$code" = 000 ] && body=$(cat "$nostromo_tmp/health-err")`,
        `    if [ "$code" = 200 ]; then`,
        `      [ "$path" != '/health' ] && break`,
        `      node -e 'const e=JSON.parse(process.argv[1]);let b;try{b=JSON.parse(process.argv[2])}catch{process.exit(1)}for(const k in e){if(String(b[k])!==e[k])process.exit(1)}' "$expect" "$body" && break`,
        "    fi",
        `    if [ "$(date +%s)" -ge "$deadline" ]; then`,
        "      stop_slot",
        `      echo "health check failed for orchestrator: $url expected HTTP 200 with $expect, got HTTP $code: $body (the new slot was stopped; nothing was switched)" >&2`,
        "      exit 1",
        "    fi",
        "    sleep 1",
        "  done",
        "done",
        `echo "health ok: orchestrator 1.2.2 on port $port"`,
      ].join("\n"),
    );
  });

  it("health gate without a version expects only the configured fields", () => {
    assert.strictEqual(
      healthGate(parse().apps[0], undefined, "8001", "traffic stays on the old slot"),
      [
        "deadline=$(( $(date +%s) + 60 ))",
        `expect='{"status":"ok"}'`,
        "for path in '/health'; do",
        `  url="http://127.0.0.1:8001$path"`,
        "  while :; do",
        `    code=$(curl -sS -m 5 -o "$nostromo_tmp/health" -w '%{http_code}' "$url" 2>"$nostromo_tmp/health-err" || true)`,
        `    body=$(head -c 300 "$nostromo_tmp/health" 2>/dev/null || true)`,
        `    [ "$code" = 000 ] && body=$(cat "$nostromo_tmp/health-err")`,
        `    if [ "$code" = 200 ]; then`,
        `      [ "$path" != '/health' ] && break`,
        `      node -e 'const e=JSON.parse(process.argv[1]);let b;try{b=JSON.parse(process.argv[2])}catch{process.exit(1)}for(const k in e){if(String(b[k])!==e[k])process.exit(1)}' "$expect" "$body" && break`,
        "    fi",
        `    if [ "$(date +%s)" -ge "$deadline" ]; then`,
        "      stop_slot",
        `      echo "health check failed for orchestrator: $url expected HTTP 200 with $expect, got HTTP $code: $body (traffic stays on the old slot)" >&2`,
        "      exit 1",
        "    fi",
        "    sleep 1",
        "  done",
        "done",
        `echo "health ok: orchestrator on port 8001"`,
      ].join("\n"),
    );
  });

  it("refresh check of a started release: a slot holds the release and answers with its version, else exit 3", () => {
    const cfg = parse();
    assert.strictEqual(
      slotCheckScript(cfg, cfg.apps[0], SHA, "1.2.2"),
      [
        "set -eu",
        "umask 022",
        `nostromo_result() { node -e 'const o={};for(const a of process.argv.slice(1)){const i=a.indexOf("=");o[a.slice(0,i)]=a.slice(i+1)}console.log("nostromo-result "+JSON.stringify(o))' lease="\${NOSTROMO_LEASE:-}" "$@"; }`,
        `seen=""`,
        "for slot in blue green; do",
        `  if [ "$slot" = blue ]; then port=8001; else port=8002; fi`,
        `  if [ "$(readlink '/srv/nostromo/slots/orchestrator'/"$slot" 2>/dev/null)" != '/srv/nostromo/releases/orchestrator/0123456789abcdef0123456789abcdef01234567' ]; then seen="$seen $slot: other release;"; continue; fi`,
        `  body=$(curl -sS -m 5 "http://127.0.0.1:$port"'/health' 2>&1) || { seen="$seen $slot: $(printf '%s' "$body" | head -c 120);"; continue; }`,
        `  if node -e 'const e=JSON.parse(process.argv[1]);let b;try{b=JSON.parse(process.argv[2])}catch{process.exit(1)}for(const k in e){if(String(b[k])!==e[k])process.exit(1)}' '{"status":"ok","version":"1.2.2"}' "$body"; then echo "orchestrator 0123456789ab runs in slot $slot"; exit 0; fi`,
        `  seen="$seen $slot: answered $(printf '%s' "$body" | head -c 120);"`,
        "done",
        `echo "orchestrator: no slot runs 0123456789ab and answers "'/health'" (\${seen# })"`,
        "exit 3",
        "",
      ].join("\n"),
    );
  });
});
