import * as assert from "assert";
import { DeployConfig } from "../../../lib/config";
import { CutoverTarget, RESULT_FUNCTION, cutoverCheckScript, cutoverScript } from "../../../lib/scripts";
import { EXPECT_FIELDS_QUOTED, NGINX_ERROR_LINES, SHA, SHA2, parse, pm2LogLines, stepText, replaced } from "./fixture";

/** The node app to its checked green slot (its idle blue slot started with another .env), the static app to its release. */
function targets(cfg: DeployConfig): CutoverTarget[] {
  return [
    { app: cfg.apps[0], sha: SHA, slot: "green", port: 8002, envDigest: "d1gest" },
    { app: cfg.apps[1], sha: SHA2 },
  ];
}

/** The cutover of `targets` without smoke steps, a PM2 node app and a static app. */
const CUTOVER = [
  "mkdir -p '/srv/nostromo/current'",
  `switched=""`,
  "nostromo_cleanup() {",
  `  [ "$rc" -ne 0 ] || return 0`,
  `  set +e`,
  `  case " $switched " in *" sevastopol "*)`,
  "    if [ -f '/srv/nostromo/releases/sevastopol/.previous' ]; then",
  `      ln -sfn "$(cat '/srv/nostromo/releases/sevastopol/.previous')" '/srv/nostromo/current/sevastopol.new' && mv -T '/srv/nostromo/current/sevastopol.new' '/srv/nostromo/current/sevastopol'`,
  "    else",
  "      rm -f '/srv/nostromo/current/sevastopol'",
  "    fi",
  `    echo "switched sevastopol back" >&2;;`,
  "  esac",
  `  case " $switched " in *" orchestrator "*)`,
  "    previous=$(cat '/srv/nostromo/slots/orchestrator/previous' 2>/dev/null || true)",
  `    case "$previous" in blue|green) ln -sfn 'orchestrator.'"$previous" '/srv/nostromo/nginx-upstreams/orchestrator.new' && mv -T '/srv/nostromo/nginx-upstreams/orchestrator.new' '/srv/nostromo/nginx-upstreams/orchestrator';; esac`,
  "    [ -f '/srv/nostromo/slots/orchestrator/previous' ] && cp '/srv/nostromo/slots/orchestrator/previous' '/srv/nostromo/slots/orchestrator/live' || true",
  "    if [ -f '/srv/nostromo/releases/orchestrator/.previous' ]; then",
  `      ln -sfn "$(cat '/srv/nostromo/releases/orchestrator/.previous')" '/srv/nostromo/current/orchestrator.new' && mv -T '/srv/nostromo/current/orchestrator.new' '/srv/nostromo/current/orchestrator'`,
  "    else",
  "      rm -f '/srv/nostromo/current/orchestrator'",
  "    fi",
  `    echo "switched orchestrator back" >&2;;`,
  "  esac",
  `  serving=""`,
  `  serving="$serving orchestrator=$(basename "$(readlink '/srv/nostromo/current/orchestrator' 2>/dev/null || echo none)" | cut -c1-12)""/$(cat '/srv/nostromo/slots/orchestrator/live' 2>/dev/null || echo none)"`,
  `  serving="$serving sevastopol=$(basename "$(readlink '/srv/nostromo/current/sevastopol' 2>/dev/null || echo none)" | cut -c1-12)"`,
  "  serving=${serving# }",
  `  echo "cutover failed; $([ -n "$switched" ] && echo "switched back:$switched" || echo "nothing was switched"). Serving now: $serving" >&2`,
  "}",
  `[ "$(readlink '/srv/nostromo/slots/orchestrator/green' 2>/dev/null)" = '/srv/nostromo/releases/orchestrator/0123456789abcdef0123456789abcdef01234567' ] || { echo "check failed for orchestrator: slot green does not hold release 0123456789ab; nothing was switched" >&2; exit 1; }`,
  `curl -fsS -m 5 -o "$nostromo_tmp/verify-body" 'http://127.0.0.1:8002/health' 2>"$nostromo_tmp/verify" || { echo "check failed for orchestrator: "'http://127.0.0.1:8002/health'" does not answer ($(cat "$nostromo_tmp/verify")); nothing was switched" >&2; exit 1; }`,
  `why=$(node -e ${EXPECT_FIELDS_QUOTED} '{"status":"ok","version":"1.2.2"}' "$(cat "$nostromo_tmp/verify-body")") || { echo "check failed for orchestrator: "'http://127.0.0.1:8002/health'" expected HTTP 200 with "'{"status":"ok","version":"1.2.2"}'", got HTTP 200 ($why): $(head -c 300 "$nostromo_tmp/verify-body"); nothing was switched" >&2; exit 1; }`,
  `[ -s '/srv/nostromo/releases/sevastopol/fedcba9876543210fedcba9876543210fedcba98/dist/index.html' ] || { echo "check failed for sevastopol: /srv/nostromo/releases/sevastopol/fedcba9876543210fedcba9876543210fedcba98/dist/index.html is missing or empty; nothing was switched" >&2; exit 1; }`,
  `if [ "$(readlink '/srv/nostromo/current/orchestrator' 2>/dev/null)" = '/srv/nostromo/releases/orchestrator/0123456789abcdef0123456789abcdef01234567' ] && [ "$(cat '/srv/nostromo/slots/orchestrator/live' 2>/dev/null)" = 'green' ] && [ "$(readlink '/srv/nostromo/nginx-upstreams/orchestrator' 2>/dev/null)" = 'orchestrator.green' ]; then`,
  `  echo "orchestrator already serves 0123456789ab"`,
  "else",
  "  readlink '/srv/nostromo/current/orchestrator' > '/srv/nostromo/releases/orchestrator/.previous' 2>/dev/null || rm -f '/srv/nostromo/releases/orchestrator/.previous'",
  `  switched="$switched orchestrator"`,
  "  cat '/srv/nostromo/slots/orchestrator/live' > '/srv/nostromo/slots/orchestrator/previous' 2>/dev/null || true",
  "  ln -sfn 'orchestrator.green' '/srv/nostromo/nginx-upstreams/orchestrator.new' && mv -T '/srv/nostromo/nginx-upstreams/orchestrator.new' '/srv/nostromo/nginx-upstreams/orchestrator'",
  `  printf '%s\\n' 'green' > '/srv/nostromo/slots/orchestrator/live'`,
  "  seen=$(curl -sS -m 5 'http://127.0.0.1:8080/.nostromo/live/orchestrator' 2>&1) || true",
  `  [ "$seen" = 'nostromo_orchestrator_green' ] || { echo "switch of orchestrator failed: nginx answers "'http://127.0.0.1:8080/.nostromo/live/orchestrator'" with '$seen', not nostromo_orchestrator_green: it reads /srv/nostromo/nginx-upstreams/orchestrator for every request (can its workers read that path? does it run this site?)" >&2; exit 1; }`,
  "  ln -sfn '/srv/nostromo/releases/orchestrator/0123456789abcdef0123456789abcdef01234567' '/srv/nostromo/current/orchestrator.new' && mv -T '/srv/nostromo/current/orchestrator.new' '/srv/nostromo/current/orchestrator'",
  `  echo "switched orchestrator to 0123456789ab (slot green, port 8002)"`,
  "fi",
  `if [ "$(readlink '/srv/nostromo/current/sevastopol' 2>/dev/null)" = '/srv/nostromo/releases/sevastopol/fedcba9876543210fedcba9876543210fedcba98' ]; then`,
  `  echo "sevastopol already serves fedcba987654"`,
  "else",
  "  readlink '/srv/nostromo/current/sevastopol' > '/srv/nostromo/releases/sevastopol/.previous' 2>/dev/null || rm -f '/srv/nostromo/releases/sevastopol/.previous'",
  "  ln -sfn '/srv/nostromo/releases/sevastopol/fedcba9876543210fedcba9876543210fedcba98' '/srv/nostromo/current/sevastopol.new' && mv -T '/srv/nostromo/current/sevastopol.new' '/srv/nostromo/current/sevastopol'",
  `  switched="$switched sevastopol"`,
  `  echo "switched sevastopol to fedcba987654"`,
  "fi",
  "switch_at=$(date +%s%3N)",
  `smoke=""`,
  `echo "no smoke steps configured"`,
  `bake=""`,
  "nostromo_cleanup() { :; }",
  "pm2 save --force >/dev/null",
  "slot=blue",
  `if [ "$(cat '/srv/nostromo/slots/orchestrator/blue.env' 2>/dev/null)" != 'd1gest' ] && pm2 describe 'orchestrator-blue' >/dev/null 2>&1; then`,
  `  pm2 restart 'orchestrator'-"$slot" >/dev/null`,
  `  ok=""; for _ in $(seq 1 60); do curl -fsS -m 5 -o /dev/null 'http://127.0.0.1:8001/health' 2>/dev/null && { ok=1; break; }; sleep 1; done`,
  `  if [ -n "$ok" ]; then printf '%s\\n' 'd1gest' > '/srv/nostromo/slots/orchestrator/blue.env'; echo "orchestrator: idle slot blue restarted with the new environment"`,
  `  else pm2 delete 'orchestrator-blue' >/dev/null 2>&1 || true; rm -f '/srv/nostromo/slots/orchestrator/blue.env'; echo "orchestrator: idle slot blue did not answer "'http://127.0.0.1:8001/health'" with the new environment and was stopped (a rollback will start it again)" >&2; fi`,
  "fi",
  `serving=""`,
  `serving="$serving orchestrator=$(basename "$(readlink '/srv/nostromo/current/orchestrator' 2>/dev/null || echo none)" | cut -c1-12)""/$(cat '/srv/nostromo/slots/orchestrator/live' 2>/dev/null || echo none)"`,
  `serving="$serving sevastopol=$(basename "$(readlink '/srv/nostromo/current/sevastopol' 2>/dev/null || echo none)" | cut -c1-12)"`,
  "serving=${serving# }",
  'nostromo_result switched="${switched# }" serving="$serving" smoke="$smoke" bake="$bake"',
];

describe("unit: scripts/cutover (exact text)", () => {
  it("verifies every app, switches each (node: upstream, live slot, current; static: current), switch-back trap, idle slot refreshed", () => {
    const cfg = parse();
    assert.strictEqual(cutoverScript(cfg, targets(cfg), []), stepText(cfg, CUTOVER));
  });

  it("with smoke steps: the smoke program runs them through the public port before the switch is committed", () => {
    const cfg = parse((raw) => {
      raw.smoke = [
        {
          name: "login",
          method: "POST",
          path: "/api/login",
          body: { user: "ripley", note: "it's" },
          expectFields: ["token"],
          captureToken: "token",
        },
        {
          name: "crew",
          path: "/api/crew",
          auth: true,
          expectValues: { count: "7" },
          expectEvery: { array: "crew", field: "ship", value: "Nostromo" },
        },
      ];
    });
    const smoke = [
      "if ! node -e '",
      "const steps = JSON.parse(process.argv[1]); const base = process.argv[2];",
      `const secrets = JSON.parse(require("fs").readFileSync(0, "utf8").trim() || "{}");`,
      `const fill = (v) => typeof v === "string" ? v.replace(/\\$\\{secret:([A-Za-z][A-Za-z0-9_]{0,63})\\}/g, (_, n) => { if (typeof secrets[n] !== "string") throw new Error("secret " + n + " was not sent"); return secrets[n]; })`,
      `  : Array.isArray(v) ? v.map(fill) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x)])) : v;`,
      `const mask = (t) => Object.values(secrets).reduce((a, v) => (v ? a.split(v).join("[secret]") : a), String(t));`,
      `const get = (o, p) => p.split(".").reduce((v, k) => (v == null ? undefined : v[k]), o);`,
      "(async () => {",
      "  let token;",
      "  for (const s of steps) {",
      `    const headers = { "content-type": "application/json", ...fill(s.headers) };`,
      `    if (s.auth) headers.authorization = "Bearer " + token;`,
      "    const res = await fetch(base + s.path, { method: s.method, headers, body: s.body === undefined ? undefined : JSON.stringify(fill(s.body)), signal: AbortSignal.timeout(10000) });",
      "    const text = await res.text(); let json; try { json = JSON.parse(text); } catch {}",
      `    const fail = (why) => { console.error(mask("smoke test failed: " + s.name + ": " + s.method + " " + base + s.path + ": " + why + "; got HTTP " + res.status + ": " + text.slice(0, 300))); process.exit(1); };`,
      `    if (res.status !== s.expectStatus) fail("expected HTTP " + s.expectStatus);`,
      `    for (const f of s.expectFields) if (get(json, f) === undefined) fail("expected field " + f);`,
      `    for (const [f, v] of Object.entries(s.expectValues)) if (String(get(json, f)) !== v) fail("expected " + f + " = " + v);`,
      `    if (s.expectEvery) { const arr = get(json, s.expectEvery.array); if (!Array.isArray(arr) || arr.length === 0) fail("expected a non-empty list " + s.expectEvery.array); for (const it of arr) if (String(it[s.expectEvery.field]) !== s.expectEvery.value) fail("expected every " + s.expectEvery.array + "[]." + s.expectEvery.field + " = " + s.expectEvery.value); }`,
      "    if (s.captureToken) token = get(json, s.captureToken);",
      `    console.log("smoke ok: " + s.name);`,
      "  }",
      `})().catch((e) => { console.error(mask("smoke test failed: " + e.message)); process.exit(1); });`,
      `' '[{"name":"login","method":"POST","path":"/api/login","body":{"user":"ripley","note":"it'\\''s"},"headers":{},"auth":false,"expectStatus":200,"expectFields":["token"],"expectValues":{},"captureToken":"token"},{"name":"crew","method":"GET","path":"/api/crew","headers":{},"auth":true,"expectStatus":200,"expectFields":[],"expectValues":{"count":"7"},"expectEvery":{"array":"crew","field":"ship","value":"Nostromo"}}]' 'http://127.0.0.1:8080' <<<"$smoke_secrets" > "$nostromo_tmp/smoke"; then`,
      `  cat "$nostromo_tmp/smoke"`,
      ...pm2LogLines("'green'"),
      ...NGINX_ERROR_LINES,
      `  exit 1`,
      `fi`,
      `cat "$nostromo_tmp/smoke"`,
      `smoke=$(sed -n 's/^smoke ok: //p' "$nostromo_tmp/smoke")`,
    ];
    assert.strictEqual(
      cutoverScript(cfg, targets(cfg), cfg.smoke),
      stepText(cfg, [`IFS= read -r smoke_secrets || true`, ...replaced(CUTOVER, `echo "no smoke steps configured"`, smoke)]),
    );
  });

  it("systemd: no pm2 save; the idle slot's unit is checked, restarted and disabled through systemctl", () => {
    const cfg = parse((raw) => {
      raw.apps.orchestrator.manager = "systemd";
    });
    let expected = replaced(CUTOVER, "pm2 save --force >/dev/null", []);
    expected = replaced(
      expected,
      `if [ "$(cat '/srv/nostromo/slots/orchestrator/blue.env' 2>/dev/null)" != 'd1gest' ] && pm2 describe 'orchestrator-blue' >/dev/null 2>&1; then`,
      [
        `if [ "$(cat '/srv/nostromo/slots/orchestrator/blue.env' 2>/dev/null)" != 'd1gest' ] && systemctl is-active --quiet 'nostromo-orchestrator-blue.service'; then`,
      ],
    );
    expected = replaced(expected, `  pm2 restart 'orchestrator'-"$slot" >/dev/null`, [
      `  systemctl restart 'nostromo-orchestrator-'"$slot.service"`,
    ]);
    expected = replaced(
      expected,
      `  else pm2 delete 'orchestrator-blue' >/dev/null 2>&1 || true; rm -f '/srv/nostromo/slots/orchestrator/blue.env'; echo "orchestrator: idle slot blue did not answer "'http://127.0.0.1:8001/health'" with the new environment and was stopped (a rollback will start it again)" >&2; fi`,
      [
        `  else systemctl disable --now --quiet 'nostromo-orchestrator-blue.service' || true; rm -f '/srv/nostromo/slots/orchestrator/blue.env'; echo "orchestrator: idle slot blue did not answer "'http://127.0.0.1:8001/health'" with the new environment and was stopped (a rollback will start it again)" >&2; fi`,
      ],
    );
    assert.strictEqual(cutoverScript(cfg, targets(cfg), []), stepText(cfg, expected));
  });

  it("verifies every path of health.checks with its own fields (the version where compared, 200 only where none are given) before switching", () => {
    const cfg = parse((raw) => {
      raw.apps.orchestrator.health = {
        checks: [
          { path: "/api/health", expect: { status: "healthy" }, versionField: "version" },
          { path: "/api/db-check", expect: { database: "connected" } },
          { path: "/ready" },
        ],
      };
    });
    const verify = (path: string, expect: string) => [
      `curl -fsS -m 5 -o "$nostromo_tmp/verify-body" 'http://127.0.0.1:8002${path}' 2>"$nostromo_tmp/verify" || { echo "check failed for orchestrator: "'http://127.0.0.1:8002${path}'" does not answer ($(cat "$nostromo_tmp/verify")); nothing was switched" >&2; exit 1; }`,
      `why=$(node -e ${EXPECT_FIELDS_QUOTED} '${expect}' "$(cat "$nostromo_tmp/verify-body")") || { echo "check failed for orchestrator: "'http://127.0.0.1:8002${path}'" expected HTTP 200 with "'${expect}'", got HTTP 200 ($why): $(head -c 300 "$nostromo_tmp/verify-body"); nothing was switched" >&2; exit 1; }`,
    ];
    const oldVerify = CUTOVER.findIndex((l) =>
      l.startsWith(`curl -fsS -m 5 -o "$nostromo_tmp/verify-body" 'http://127.0.0.1:8002/health'`),
    );
    let expected = [
      ...CUTOVER.slice(0, oldVerify),
      ...verify("/api/health", '{"status":"healthy","version":"1.2.2"}'),
      ...verify("/api/db-check", '{"database":"connected"}'),
      `curl -fsS -m 5 -o /dev/null 'http://127.0.0.1:8002/ready' 2>"$nostromo_tmp/verify" || { echo "check failed for orchestrator: "'http://127.0.0.1:8002/ready'" does not answer ($(cat "$nostromo_tmp/verify")); nothing was switched" >&2; exit 1; }`,
      ...CUTOVER.slice(oldVerify + 2),
    ];
    // The idle slot restarted after the switch is asked for the first path.
    for (const [from, to] of [
      [
        `  ok=""; for _ in $(seq 1 60); do curl -fsS -m 5 -o /dev/null 'http://127.0.0.1:8001/health' 2>/dev/null && { ok=1; break; }; sleep 1; done`,
        `  ok=""; for _ in $(seq 1 60); do curl -fsS -m 5 -o /dev/null 'http://127.0.0.1:8001/api/health' 2>/dev/null && { ok=1; break; }; sleep 1; done`,
      ],
      [
        `  else pm2 delete 'orchestrator-blue' >/dev/null 2>&1 || true; rm -f '/srv/nostromo/slots/orchestrator/blue.env'; echo "orchestrator: idle slot blue did not answer "'http://127.0.0.1:8001/health'" with the new environment and was stopped (a rollback will start it again)" >&2; fi`,
        `  else pm2 delete 'orchestrator-blue' >/dev/null 2>&1 || true; rm -f '/srv/nostromo/slots/orchestrator/blue.env'; echo "orchestrator: idle slot blue did not answer "'http://127.0.0.1:8001/api/health'" with the new environment and was stopped (a rollback will start it again)" >&2; fi`,
      ],
    ])
      expected = replaced(expected, from, [to]);
    assert.strictEqual(cutoverScript(cfg, targets(cfg), []), stepText(cfg, expected));
  });

  it("refresh check: each app still serves its release (node: live slot and upstream too), else exit 3 naming the drift", () => {
    const cfg = parse();
    assert.strictEqual(
      cutoverCheckScript(cfg, targets(cfg)),
      [
        "set -eu",
        "umask 022",
        RESULT_FUNCTION,
        `drift=""`,
        `[ "$(readlink '/srv/nostromo/current/orchestrator' 2>/dev/null)" = '/srv/nostromo/releases/orchestrator/0123456789abcdef0123456789abcdef01234567' ] && [ "$(cat '/srv/nostromo/slots/orchestrator/live' 2>/dev/null)" = 'green' ] && [ "$(readlink '/srv/nostromo/nginx-upstreams/orchestrator' 2>/dev/null)" = 'orchestrator.green' ] || drift="$drift orchestrator"`,
        `[ "$(readlink '/srv/nostromo/current/sevastopol' 2>/dev/null)" = '/srv/nostromo/releases/sevastopol/fedcba9876543210fedcba9876543210fedcba98' ] || drift="$drift sevastopol"`,
        `serving=""`,
        `serving="$serving orchestrator=$(basename "$(readlink '/srv/nostromo/current/orchestrator' 2>/dev/null || echo none)" | cut -c1-12)""/$(cat '/srv/nostromo/slots/orchestrator/live' 2>/dev/null || echo none)"`,
        `serving="$serving sevastopol=$(basename "$(readlink '/srv/nostromo/current/sevastopol' 2>/dev/null || echo none)" | cut -c1-12)"`,
        "serving=${serving# }",
        `[ -z "$drift" ] || { echo "traffic drifted for:$drift (serving now: $serving)"; exit 3; }`,
        `echo "every app serves what it was switched to: $serving"`,
        "",
      ].join("\n"),
    );
  });
});
