/** The blue/green slots of a node app: PM2 processes or systemd units, and their health gate. */
import { AppConfig, DeployConfig, ServerConfig } from "../config";
import { quote, script } from "../shell";
import { layout, prelude, sha256 } from "./layout";
import { EXPECT_FIELDS, expectedText } from "./health";
import { stepScript } from "./lock";
import { RELEASE_ENV, venvLine } from "./release";
import { nginxErrorLines, pm2LogMark, slotLogLines } from "./bundle";

/** Name of a slot's process (PM2) or unit (systemd). */
export function slotUnit(app: string, slot: "blue" | "green", manager: "pm2" | "systemd"): string {
  return manager === "pm2" ? `${app}-${slot}` : `nostromo-${app}-${slot}.service`;
}

/** Reads the live slot (blue/green) and picks the other one as `target`, with its port. */
function pickSlot(server: ServerConfig, app: AppConfig): string[] {
  const L = layout(server.root, app.name);
  const ports = app.ports!;
  return [
    `live=$(cat ${quote(`${L.slots}/live`)} 2>/dev/null || echo none)`,
    `if [ "$live" = blue ]; then target=green; port=${ports.green}; else target=blue; port=${ports.blue}; fi`,
  ];
}

/**
 * What bash runs, in the release folder, to start `command` of `app` (its web process or a
 * worker): the .env loaded, a python release's .venv/bin first on PATH, then exec.
 */
export function startCommand(app: AppConfig, command: string): string {
  const venv = app.kind === "python" ? `${venvLine('"$PWD"')}; ` : "";
  return `set -a; . ./.env; [ ! -f ./${RELEASE_ENV} ] || . ./${RELEASE_ENV}; set +a; ${venv}exec ${command}`;
}

/** Where the slots' units are written (the deploy user must be able to write there). */
export const SYSTEMD_UNIT_DIR = "/etc/systemd/system";

/**
 * The state of systemd unit `unit` (a shell word) on one line, for a failure report. A unit that
 * crashes and restarts is caught, most of the time, in its next start ("running", Result=success,
 * ExecMainStatus=0): then this waits up to 3 s for that start to end, so the line shows how it ends.
 */
export function unitStateCommand(unit: string): string {
  return (
    `{ i=0; while [ $i -lt 30 ] && [ "$(systemctl show -p NRestarts --value ${unit})" != 0 ] && [ "$(systemctl show -p SubState --value ${unit})" = running ]; do sleep 0.1; i=$((i + 1)); done; ` +
    `systemctl show -p ActiveState,SubState,Result,NRestarts,ExecMainStatus ${unit} 2>&1 | tr '\\n' ' '; }`
  );
}

/**
 * systemd unit of one slot; the slot symlink points at the release it runs. The app's .env is
 * sourced by bash, as under PM2 (one parser for both managers, and the one that wrote it: the
 * file is shell-quoted), so no EnvironmentFile=. Every value goes through systemd's quoting.
 */
export function systemdUnit(server: ServerConfig, app: AppConfig, slot: "blue" | "green"): string {
  const L = layout(server.root, app.name);
  const port = app.ports![slot];
  const env: [string, string][] = [["PORT", String(port)]];
  if (server.path.length > 0) env.push(["PATH", `${server.path.join(":")}:/usr/local/bin:/usr/bin:/bin`]);
  // The scripts' environment (prelude), which a PM2 process inherits too; sorted, so the unit's
  // text (and so its restart) does not depend on the order of keys in the stack's config.
  for (const k of Object.keys(server.env).sort()) env.push([k, server.env[k]]);
  return [
    "[Unit]",
    `Description=nostromo ${app.name} (${slot} slot)`,
    "After=network.target",
    "",
    "[Service]",
    "Type=simple",
    `User=${server.user}`,
    `WorkingDirectory=${L.slots}/${slot}`,
    ...env.map(([k, v]) => `Environment=${systemdQuote(`${k}=${v}`, false)}`),
    `ExecStart=/bin/bash -c ${systemdQuote(startCommand(app, app.start!), true)}`,
    "Restart=on-failure",
    "RestartSec=2",
    "KillSignal=SIGTERM",
    "TimeoutStopSec=30",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/**
 * systemd's quoting of one word (an ExecStart argument, an Environment= assignment): double
 * quotes, `\\` and `\"` escaped, `%` doubled (specifiers), control characters as C escapes (a raw
 * newline would end the line: "Unbalanced quoting"). `$` is doubled only where systemd expands
 * variables (ExecStart=), not in Environment=.
 */
export function systemdQuote(text: string, execLine: boolean): string {
  let out = text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%");
  if (execLine) out = out.replace(/\$/g, "$$$$");
  // eslint-disable-next-line no-control-regex -- escaping control characters is what this does
  out = out.replace(/[\x00-\x1f\x7f]/g, (c) =>
    c === "\n" ? "\\n" : c === "\t" ? "\\t" : c === "\r" ? "\\r" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
  return `"${out}"`;
}

/**
 * Starts release `sha` in the slot that is not live, beside the serving one, then gates it
 * on its health check: a slot that fails is stopped and the step fails (nothing is switched).
 * One step, so a failed check leaves no "started" record and the next `up` starts it again.
 * `envDigest` (of the .env it starts with) is kept beside the slot, so a later environment change
 * knows which slots still run the old one. Result: slot, port.
 */
export function startSlotScript(cfg: DeployConfig, app: AppConfig, sha: string, version: string, envDigest: string): string {
  const { server } = cfg;
  const L = layout(server.root, app.name);
  const release = `${L.releases}/${sha}`;
  const startLines =
    app.manager === "pm2"
      ? [
          `name=${quote(app.name)}-$target`,
          `pm2 delete "$name" >/dev/null 2>&1 || true`,
          pm2LogMark('"$name"'),
          // .env is loaded by the shell, so any app gets its config the same way under PM2 and systemd.
          `PORT=$port pm2 start bash --name "$name" --cwd "$slot_dir" --time --kill-timeout 10000 -- -c ${quote(startCommand(app, app.start!))} >/dev/null`,
          // On a failed check: what this start logged and nginx's errors, then the slot is removed.
          `stop_slot() {`,
          slotLogLines(app, '"$target"'),
          nginxErrorLines(cfg),
          `  pm2 delete "$name" >/dev/null 2>&1 || true`,
          `}`,
        ]
      : [
          `unit=${quote(`nostromo-${app.name}-`)}"$target.service"`,
          `unit_dir=${quote(SYSTEMD_UNIT_DIR)}`,
          `if [ "$target" = blue ]; then unit_text=${quote(systemdUnit(server, app, "blue"))}; else unit_text=${quote(systemdUnit(server, app, "green"))}; fi`,
          `printf '%s' "$unit_text" > "$unit_dir/$unit.new" && mv -f "$unit_dir/$unit.new" "$unit_dir/$unit"`,
          `systemctl daemon-reload`,
          // Enabled, so the slot comes back after a reboot as it was (both slots run: rollback).
          `systemctl enable --quiet "$unit"`,
          `since=$(date +%s)`,
          `systemctl restart "$unit"`,
          // On a failed check: the unit's state, its processes' last output lines since this start
          // (not systemd's own lines about it) and nginx's errors, then the slot is stopped and disabled.
          `stop_slot() {`,
          `  echo "$unit: $(${unitStateCommand('"$unit"')})" >&2`,
          slotLogLines(app, '"$target"'),
          nginxErrorLines(cfg),
          `  systemctl disable --now --quiet "$unit" || true`,
          `}`,
        ];
  // What the slot's process is made of besides its release and .env (start command, unit text,
  // kill timeout): a slot started otherwise is never kept as it is.
  const procDigest = sha256(startLines.join("\n")).slice(0, 32);
  return stepScript(
    cfg,
    ...pickSlot(server, app),
    ...reuseSlotLines(cfg, app, sha, version, `${envDigest} ${procDigest}`),
    `slot_dir=${quote(L.slots)}/$target`,
    `mkdir -p ${quote(L.slots)}`,
    `ln -sfn ${quote(release)} "$slot_dir.new" && mv -T "$slot_dir.new" "$slot_dir"`,
    ...startLines,
    // Where this start's own log lines begin (epoch, PM2 out/err offsets): the bake reads from here.
    `printf '%s %s %s\\n' "\${since:-$(date +%s)}" "\${log_out_at:-0}" "\${log_err_at:-0}" > ${quote(L.slots)}/"$target.start"`,
    healthGate(app, version, "$port", "the new slot was stopped; nothing was switched"),
    `printf '%s\\n' ${quote(envDigest)} > ${quote(L.slots)}/"$target.env"`,
    `printf '%s\\n' ${quote(`${envDigest} ${procDigest}`)} > ${quote(L.slots)}/"$target.started"`,
    `nostromo_result slot="$target" port="$port"`,
  );
}

/**
 * A slot that already runs release `sha`, was started with this .env and this start command or
 * unit (`<slot>.started`), and answers every health
 * check once (version included) is kept, not restarted: the live one first (a rollback's switch
 * done already, a retry), then the idle one (the release a rollback goes back to). Its result
 * is the step's, as if it had just been started and gated.
 */
function reuseSlotLines(cfg: DeployConfig, app: AppConfig, sha: string, version: string, started: string): string[] {
  const L = layout(cfg.server.root, app.name);
  return [
    `slot_ready() {`,
    `  [ "$(readlink ${quote(L.slots)}/"$1" 2>/dev/null)" = ${quote(`${L.releases}/${sha}`)} ] || return 1`,
    `  [ "$(cat ${quote(L.slots)}/"$1.started" 2>/dev/null)" = ${quote(started)} ] || return 1`,
    ...app.health!.checks.flatMap((c) => {
      const expect = expectedText(c, version);
      return [
        `  body=$(curl -fsS -m 5 "http://127.0.0.1:$2"${quote(c.path)} 2>/dev/null) || return 1`,
        ...(expect ? [`  node -e ${quote(EXPECT_FIELDS)} ${quote(expect)} "$body" >/dev/null || return 1`] : []),
      ];
    }),
    `}`,
    `for s in "$live" "$target"; do`,
    `  if [ "$s" = blue ]; then p=${app.ports!.blue}; elif [ "$s" = green ]; then p=${app.ports!.green}; else continue; fi`,
    `  if slot_ready "$s" "$p"; then`,
    `    echo "${app.name} ${sha.slice(0, 12)} already runs in slot $s with this environment and answers its health checks: kept, not restarted"`,
    `    nostromo_result slot="$s" port="$p"`,
    `    exit 0`,
    `  fi`,
    `done`,
  ];
}

/** The command that restarts slot "$slot" of `app` in place (it reads the shared .env again). */
export function restartSlotLine(app: AppConfig): string {
  return app.manager === "pm2"
    ? `pm2 restart ${quote(app.name)}-"$slot" >/dev/null`
    : `systemctl restart ${quote(`nostromo-${app.name}-`)}"$slot.service"`;
}

/**
 * `pulumi refresh`'s question to the server for a started release: does a slot (blue or green)
 * run release `sha` and answer every health path with its fields and version? Exit 0: yes; exit 3
 * (drift): no, with what each slot answered; the next `up` starts it again through the health gate.
 */
export function slotCheckScript(cfg: DeployConfig, app: AppConfig, sha: string, version: string): string {
  const L = layout(cfg.server.root, app.name);
  const checks = app.health!.checks;
  return script(
    prelude(cfg.server),
    `seen=""`,
    // Path $1 of slot $slot answers 200 with the fields $2 (JSON; "": any answer); else what it answered goes into $seen.
    `slot_answers() {`,
    `  body=$(curl -fsS -m 5 "http://127.0.0.1:$port$1" 2>&1) || { seen="$seen $slot: $1: $(printf '%s' "$body" | head -c 120);"; return 1; }`,
    `  [ -z "$2" ] && return 0`,
    `  why=$(node -e ${quote(EXPECT_FIELDS)} "$2" "$body") && return 0`,
    `  seen="$seen $slot: $1 answered ($why) $(printf '%s' "$body" | head -c 120);"`,
    `  return 1`,
    `}`,
    `for slot in blue green; do`,
    `  if [ "$slot" = blue ]; then port=${app.ports!.blue}; else port=${app.ports!.green}; fi`,
    `  if [ "$(readlink ${quote(L.slots)}/"$slot" 2>/dev/null)" != ${quote(`${L.releases}/${sha}`)} ]; then seen="$seen $slot: other release;"; continue; fi`,
    `  if ${checks.map((c) => `slot_answers ${quote(c.path)} ${quote(expectedText(c, version))}`).join(" && ")}; then echo "${app.name} ${sha.slice(0, 12)} runs in slot $slot"; exit 0; fi`,
    `done`,
    `echo "${app.name}: no slot runs ${sha.slice(0, 12)} and answers "${quote(checks.map((c) => c.path).join(" "))}" (${"$"}{seen# })"`,
    `exit 3`,
  );
}

/**
 * Polls each health path of the slot in turn until it answers 200 with its expected JSON fields
 * (the version on the path that has it; none given: any version), or the deadline passes; then
 * runs `stop_slot` and fails naming app, URL, expected fields, the field that differs, the answer
 * and `after` (what that means for traffic).
 */
export function healthGate(app: AppConfig, version: string | undefined, port: string, after: string): string {
  const h = app.health!;
  return [
    `deadline=$(( $(date +%s) + ${h.timeoutSeconds} ))`,
    // Path $1 answers 200 with the fields $2 (JSON; "": any answer) before the deadline, else the slot is stopped.
    `health_check() {`,
    `  url="http://127.0.0.1:${port}$1"`,
    `  while :; do`,
    `    code=$(curl -sS -m 5 -o "$nostromo_tmp/health" -w '%{http_code}' "$url" 2>"$nostromo_tmp/health-err" || true)`,
    `    body=$(head -c 300 "$nostromo_tmp/health" 2>/dev/null || true)`,
    `    [ "$code" = 000 ] && body=$(cat "$nostromo_tmp/health-err")`,
    `    why=""`,
    `    if [ "$code" = 200 ]; then`,
    `      [ -z "$2" ] && return 0`,
    `      why=$(node -e ${quote(EXPECT_FIELDS)} "$2" "$(cat "$nostromo_tmp/health")") && return 0`,
    `    fi`,
    `    if [ "$(date +%s)" -ge "$deadline" ]; then`,
    `      stop_slot`,
    `      echo "health check failed for ${app.name}: $url expected HTTP 200\${2:+ with $2}, got HTTP $code\${why:+ ($why)}: $body (${after})" >&2`,
    `      exit 1`,
    `    fi`,
    // A twentieth of a second: a slot that answers is let through within 0.05 s of it (a poll is a curl).
    `    sleep 0.05`,
    `  done`,
    `}`,
    ...h.checks.map((c) => `health_check ${quote(c.path)} ${quote(expectedText(c, version))}`),
    `echo "health ok: ${app.name}${version === undefined ? "" : ` ${version}`} on port ${port}"`,
  ].join("\n");
}
