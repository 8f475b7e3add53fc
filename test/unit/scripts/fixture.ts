/** What the exact-text tests of lib/scripts share: commits, the config, and a step's whole text. */
import * as assert from "assert";
import { DeployConfig, parseDeployConfig } from "../../../lib/config";
import { leaseGuard, prelude } from "../../../lib/scripts";
import { validRaw } from "../../support/validConfig";

export const SHA = "0123456789abcdef0123456789abcdef01234567";
export const SHA2 = "fedcba9876543210fedcba9876543210fedcba98";

/** The valid config of test/support, with `edit` applied to its raw form first. */
export function parse(edit: (raw: Record<string, any>) => void = () => {}, stack = "unit"): DeployConfig {
  const raw = validRaw();
  edit(raw);
  return parseDeployConfig(stack, raw, { sshPrivateKey: true, databaseUrl: true });
}

/** A step's whole text: set -eu, the prelude and the lease guard (exact text in layout/lock tests), then `lines`. */
export function stepText(cfg: DeployConfig, lines: string[]): string {
  return ["set -eu", prelude(cfg.server), leaseGuard(cfg), ...lines, ""].join("\n");
}

/** `lines` with the one line `old` replaced by `by`. */
export function replaced(lines: string[], old: string, by: string[]): string[] {
  const at = lines.indexOf(old);
  assert.ok(at >= 0 && lines.lastIndexOf(old) === at, `expected text has the line ${old} once`);
  return [...lines.slice(0, at), ...by, ...lines.slice(at + 1)];
}

/** The node one-liner that checks a health answer's fields, as the scripts quote it. */
export const EXPECT_FIELDS_QUOTED = `'const e=JSON.parse(process.argv[1]);let b;try{b=JSON.parse(process.argv[2])}catch{console.log("not JSON");process.exit(1)}for(const k in e){const v=b!==null&&typeof b==="object"?b[k]:undefined;if(v===undefined||String(v)!==e[k]){console.log("field "+k+(v===undefined?" is missing":" is "+JSON.stringify(v)));process.exit(1)}}'`;

/**
 * The health gate of orchestrator: its deadline, its `health_check` function (polls path $1 on
 * `port` until it answers 200 with the fields $2, else stop_slot and the error ending in `after`),
 * then `calls` (one `health_check PATH FIELDS` line per path) and `ok`.
 */
export function healthGateLines(timeoutSeconds: number, port: string, after: string, calls: string[], ok: string): string[] {
  return [
    `deadline=$(( $(date +%s) + ${timeoutSeconds} ))`,
    "health_check() {",
    `  url="http://127.0.0.1:${port}$1"`,
    "  while :; do",
    `    code=$(curl -sS -m 5 -o "$nostromo_tmp/health" -w '%{http_code}' "$url" 2>"$nostromo_tmp/health-err" || true)`,
    `    body=$(head -c 300 "$nostromo_tmp/health" 2>/dev/null || true)`,
    `    [ "$code" = 000 ] && body=$(cat "$nostromo_tmp/health-err")`,
    `    why=""`,
    `    if [ "$code" = 200 ]; then`,
    `      [ -z "$2" ] && return 0`,
    `      why=$(node -e ${EXPECT_FIELDS_QUOTED} "$2" "$(cat "$nostromo_tmp/health")") && return 0`,
    "    fi",
    `    if [ "$(date +%s)" -ge "$deadline" ]; then`,
    "      stop_slot",
    `      echo "health check failed for orchestrator: $url expected HTTP 200\${2:+ with $2}, got HTTP $code\${why:+ ($why)}: $body (${after})" >&2`,
    "      exit 1",
    "    fi",
    "    sleep 0.05",
    "  done",
    "}",
    ...calls,
    ok,
  ];
}

/** The failure bundle's lines (lib/scripts/bundle.ts): nginx's error log at Debian's default path. */
export const NGINX_ERROR_LINES = [
  "if [ -r '/var/log/nginx/error.log' ]; then",
  `  echo "last warnings and errors in nginx's error log ("'/var/log/nginx/error.log'"):" >&2`,
  "  ngx_errors=$(tail -n 2000 '/var/log/nginx/error.log' | grep -E '\\[(warn|error|crit|alert|emerg)\\]' | tail -n 12 || true)",
  `  if [ -n "$ngx_errors" ]; then printf '%s\\n' "$ngx_errors" | sed 's/^/  /' >&2; else echo "  (none)" >&2; fi`,
  `else echo "nginx's error log "'/var/log/nginx/error.log'" cannot be read (nginx.errorLog)" >&2; fi`,
];

/** The last log lines of PM2 slot `slot` (a shell word) of orchestrator, from the marks. */
export function pm2LogLines(slot: string): string[] {
  const file = (stream: string) => `"\${PM2_HOME:-$HOME/.pm2}/logs/"'orchestrator-'${slot}'-${stream}.log'`;
  return [
    `echo "last log lines of "'orchestrator-'${slot}" (pm2):" >&2`,
    `tail -c +$(( \${log_out_at:-0} + 1 )) ${file("out")} 2>/dev/null | tail -n 12 | sed 's/^/  out: /' >&2 || true`,
    `tail -c +$(( \${log_err_at:-0} + 1 )) ${file("error")} 2>/dev/null | tail -n 12 | sed 's/^/  err: /' >&2 || true`,
  ];
}
