/**
 * An app's workers: processes with no port (a Celery worker), one per name, `<app>-<name>` under
 * the app's manager. They run the release that serves: started after the cutover switched web
 * traffic to it, each old one stopped gracefully first (SIGTERM, then up to its stop timeout for
 * the work in flight: Celery's warm shutdown), and brought back on its release when the new one
 * does not stay up. The deploy records the workers it starts (`slots/<app>/workers`): one the
 * config no longer names is retired by the next deploy.
 */
import { AppConfig, DeployConfig, ServerConfig, WorkerConfig, workerUnit } from "../config";
import { quote, script } from "../shell";
import { eventFunction } from "./journal";
import { layout, prelude } from "./layout";
import { stepScript } from "./lock";
import { SYSTEMD_UNIT_DIR, startCommand, systemdQuote, unitStateCommand } from "./slot";

/** Seconds a started worker must stay running (checked each second) before the step succeeds. */
export const WORKER_SETTLE_SECONDS = 5;

/**
 * systemd unit of one worker, running release `sha` (its folder, so a new release is a new unit
 * text). The .env is sourced by bash as for the slots; TERM on stop, SIGKILL only after
 * stopTimeoutSeconds; KillMode=mixed: TERM to the main process alone, which stops its children
 * (Celery's pool) itself.
 */
export function workerSystemdUnit(server: ServerConfig, app: AppConfig, worker: WorkerConfig, sha: string): string {
  const release = `${layout(server.root, app.name).releases}/${sha}`;
  const env: [string, string][] = [];
  if (server.path.length > 0) env.push(["PATH", `${server.path.join(":")}:/usr/local/bin:/usr/bin:/bin`]);
  for (const k of Object.keys(server.env).sort()) env.push([k, server.env[k]]);
  return [
    "[Unit]",
    `Description=nostromo ${app.name} worker ${worker.name} (release ${sha.slice(0, 12)})`,
    "After=network.target",
    "",
    "[Service]",
    "Type=simple",
    `User=${server.user}`,
    `WorkingDirectory=${release}`,
    ...env.map(([k, v]) => `Environment=${systemdQuote(`${k}=${v}`, false)}`),
    `ExecStart=/bin/bash -c ${systemdQuote(startCommand(app, worker.command), true)}`,
    "Restart=on-failure",
    "RestartSec=2",
    "KillSignal=SIGTERM",
    "KillMode=mixed",
    `TimeoutStopSec=${worker.stopTimeoutSeconds}`,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/**
 * The lines that stop worker `w`'s old process (gracefully), start it on `release` and check it.
 * The old one's unit (systemd) or command (PM2) is kept first: a new one that does not stay up
 * brings it back on its own release (`worker_failed`).
 */
function workerLines(server: ServerConfig, app: AppConfig, w: WorkerConfig, sha: string, release: string): string[] {
  const name = workerUnit(app.name, w.name);
  const up = (v: string) =>
    `if worker_up "$${v}"; then echo "worker $${v} runs ${app.name}@${sha.slice(0, 12)}"; else worker_failed "$${v}" "$was"; fi`;
  if (app.manager === "pm2") {
    return [
      `name=${quote(name)}`,
      `was=""`,
      // PM2 stops with its kill signal (SIGINT unless PM2_KILL_SIGNAL says otherwise: Celery's
      // warm shutdown too), SIGKILL after the old process's --kill-timeout.
      `if pm2 describe "$name" >/dev/null 2>&1; then echo "stopping $name (up to ${w.stopTimeoutSeconds} s for the work in flight)"; was=$(pm2 jlist | node -e ${quote(PM2_KEEP)} "$name" "$nostromo_tmp/$name"); pm2 delete "$name" >/dev/null; fi`,
      `pm2 start bash --name "$name" --cwd ${quote(release)} --time --kill-timeout ${w.stopTimeoutSeconds * 1000} -- -c ${quote(startCommand(app, w.command))} >/dev/null`,
      up("name"),
    ];
  }
  return [
    `unit=${quote(`${name}.service`)}`,
    `was=""`,
    `if systemctl is-active --quiet "$unit"; then echo "stopping $unit (SIGTERM, up to ${w.stopTimeoutSeconds} s for the work in flight)"; cp ${quote(SYSTEMD_UNIT_DIR)}/"$unit" "$nostromo_tmp/$unit" && was=$(systemctl show -p WorkingDirectory --value "$unit") || true; fi`,
    `systemctl stop "$unit" 2>/dev/null || true`,
    `printf '%s' ${quote(workerSystemdUnit(server, app, w, sha))} > ${quote(SYSTEMD_UNIT_DIR)}/"$unit.new" && mv -f ${quote(SYSTEMD_UNIT_DIR)}/"$unit.new" ${quote(SYSTEMD_UNIT_DIR)}/"$unit"`,
    `systemctl daemon-reload`,
    `systemctl enable --quiet "$unit"`,
    `since=$(date +%s)`,
    `systemctl start "$unit"`,
    up("unit"),
  ];
}

/**
 * The workers step's functions: `worker_up NAME` (NAME stays running for WORKER_SETTLE_SECONDS),
 * and `worker_failed NAME WAS`: the new NAME did not stay up, its state and last log lines, then
 * the old NAME started again on its release WAS (none: "") and checked the same way; the step
 * fails saying whether the old one runs again, as the server says.
 */
function workerFunctions(app: AppConfig, sha: string): string[] {
  const pm2 = app.manager === "pm2";
  const failedOn = `the new worker $1 of ${app.name} failed on ${sha.slice(0, 12)}`;
  const running = pm2
    ? // Online and not restarted since its start (PM2 restarts a crashing process at once).
      `[ "$(worker_state "$1")" = "online 0" ]`
    : `systemctl is-active --quiet "$1"`;
  const state = pm2 ? `pm2 jlist | node -e ${quote(PM2_STATE)} "$1"` : unitStateCommand('"$1"');
  const logs = pm2
    ? `pm2 logs "$1" --lines 20 --nostream --raw >&2 2>&1 || true`
    : `journalctl _SYSTEMD_UNIT="$1" --since "@$since" -n 20 --no-pager -o cat >&2 || true`;
  // The old one back: PM2 from the command and kill timeout kept before its delete, systemd from its unit file.
  const back = pm2
    ? [
        `  pm2 delete "$1" >/dev/null 2>&1 || true`,
        `  pm2 start bash --name "$1" --cwd "$2" --time --kill-timeout "$(cat "$nostromo_tmp/$1.kill")" -- -c "$(cat "$nostromo_tmp/$1.cmd")" >/dev/null 2>&1 || true`,
      ]
    : [
        `  systemctl stop "$1" 2>/dev/null || true`,
        `  mv -f "$nostromo_tmp/$1" ${quote(SYSTEMD_UNIT_DIR)}/"$1"`,
        `  systemctl daemon-reload`,
        `  since=$(date +%s)`,
        `  systemctl start "$1" 2>/dev/null || true`,
      ];
  // Verified on the server, not assumed: running, on the old release, and its pid or state.
  const onRelease = pm2
    ? `[ "$(pm2 jlist | node -e ${quote(PM2_CWD)} "$1")" = "online $2" ]`
    : `[ "$(systemctl show -p WorkingDirectory --value "$1")" = "$2" ]`;
  const seen = pm2 ? `pm2 pid $(pm2 pid "$1"), online` : `systemctl is-active: $(systemctl is-active "$1")`;
  return [
    `worker_state() { ${state}; }`,
    `worker_up() {`,
    `  for i in $(seq ${WORKER_SETTLE_SECONDS}); do`,
    `    sleep 1`,
    `    ${running} || return 1`,
    `  done`,
    `}`,
    `worker_failed() {`,
    `  echo "worker $1 of ${app.name} is not running after its start on ${sha.slice(0, 12)}: $(worker_state "$1")" >&2`,
    `  echo "last log lines of $1:" >&2`,
    `  ${logs}`,
    `  if [ -z "$2" ]; then`,
    `    echo "workers of ${app.name}: ${failedOn}; no earlier $1 was running, there is none to bring back" >&2`,
    `    nostromo_event worker-failed app=${quote(app.name)} worker="\${1%.service}" sha=${quote(sha)} back=""`,
    `    exit 1`,
    `  fi`,
    `  was=$(basename "$2")`,
    `  echo "bringing back the old worker $1 on release $(printf '%.12s' "$was")" >&2`,
    ...back,
    `  if worker_up "$1" && ${onRelease}; then`,
    `    echo "workers of ${app.name}: ${failedOn}; the old one runs again on release $(printf '%.12s' "$was") (${seen})" >&2`,
    `    nostromo_event worker-failed app=${quote(app.name)} worker="\${1%.service}" sha=${quote(sha)} back="$was"`,
    `  else`,
    `    echo "old worker $1 on release $(printf '%.12s' "$was"): $(worker_state "$1")" >&2`,
    `    ${logs}`,
    `    echo "workers of ${app.name}: ${failedOn}, and the old one could not be brought back either on release $(printf '%.12s' "$was"): $1 is not running" >&2`,
    `    nostromo_event worker-failed app=${quote(app.name)} worker="\${1%.service}" sha=${quote(sha)} back=""`,
    `  fi`,
    ...(pm2 ? [`  pm2 save --force >/dev/null 2>&1 || true`] : []),
    `  exit 1`,
    `}`,
  ];
}

/** Reads `pm2 jlist` on stdin; prints `<status> <restarts>` of the process named argv[1] (or `missing`). */
const PM2_STATE = `let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let l=[];try{l=JSON.parse(s)}catch{}const p=l.find(p=>p.name===process.argv[1]);console.log(p?p.pm2_env.status+" "+p.pm2_env.restart_time:"missing")})`;

/**
 * Reads `pm2 jlist` on stdin; when the process named argv[1] is online, keeps its command
 * (argv[2].cmd) and kill timeout (argv[2].kill) and prints its folder: what brings it back.
 */
const PM2_KEEP = `let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let l=[];try{l=JSON.parse(s)}catch{}const p=l.find(p=>p.name===process.argv[1]);const e=p&&p.pm2_env;const a=e&&[].concat(e.args||[]);if(!e||e.status!=="online"||a[0]!=="-c")return;const fs=require("fs");fs.writeFileSync(process.argv[2]+".cmd",a.slice(1).join(" "));fs.writeFileSync(process.argv[2]+".kill",String(e.kill_timeout||1600));console.log(e.pm_cwd)})`;

/**
 * The lines that retire the workers an earlier deploy started for `app` (its record,
 * `slots/<app>/workers`) and its config no longer names: each stopped gracefully (the stop
 * timeout it was started with) and its unit or PM2 process removed. Then the record names the
 * configured ones. Needs `nostromo_event`.
 */
export function workersRetireLines(cfg: DeployConfig, app: AppConfig): string[] {
  const L = layout(cfg.server.root, app.name);
  const names = app.workers.map((w) => workerUnit(app.name, w.name));
  const retire =
    app.manager === "pm2"
      ? [
          `    echo "retiring worker $w of ${app.name} (not in the config any more): stopping it (up to its kill timeout for the work in flight)"`,
          `    pm2 delete "$w" >/dev/null 2>&1 || true`,
          `    pm2 save --force >/dev/null`,
        ]
      : [
          `    echo "retiring worker $w of ${app.name} (not in the config any more): stopping $w.service (SIGTERM, up to $(systemctl show -p TimeoutStopUSec --value "$w.service") for the work in flight)"`,
          `    systemctl stop "$w.service" 2>/dev/null || true`,
          `    systemctl disable --quiet "$w.service" 2>/dev/null || true`,
          `    rm -f ${quote(SYSTEMD_UNIT_DIR)}/"$w.service"`,
          `    systemctl daemon-reload`,
          `    systemctl reset-failed "$w.service" 2>/dev/null || true`,
        ];
  return [
    `if [ -f ${quote(L.workers)} ]; then`,
    // fd 3: systemctl and pm2 in the loop must not read the record as their stdin.
    `  while IFS= read -r w <&3; do`,
    `    case ${quote(` ${names.join(" ")} `)} in *" $w "*) continue;; esac`,
    `    [ -n "$w" ] || continue`,
    ...retire,
    `    nostromo_event worker-retired app=${quote(app.name)} worker="$w"`,
    `    echo "retired worker $w of ${app.name}"`,
    `  done 3< ${quote(L.workers)}`,
    `fi`,
    names.length > 0
      ? `mkdir -p ${quote(L.slots)} && printf '%s\\n' ${names.map(quote).join(" ")} > ${quote(`${L.workers}.new`)} && mv -f ${quote(`${L.workers}.new`)} ${quote(L.workers)}`
      : `rm -f ${quote(L.workers)}`,
  ];
}

/**
 * Moves every worker of `app` to release `sha` (after the cutover): the recorded workers the
 * config no longer names retired first; then each old process stopped, gracefully, the new one
 * started and checked for WORKER_SETTLE_SECONDS, else the old one brought back and the step
 * failed. Result: workers (their process names).
 */
export function workersScript(cfg: DeployConfig, app: AppConfig, sha: string): string {
  const release = `${layout(cfg.server.root, app.name).releases}/${sha}`;
  return stepScript(
    cfg,
    `[ -f ${quote(`${release}/.nostromo-built`)} ] || { echo "workers of ${app.name}: release ${sha.slice(0, 12)} is not built" >&2; exit 1; }`,
    eventFunction(cfg.server.root),
    ...workersRetireLines(cfg, app),
    ...workerFunctions(app, sha),
    ...app.workers.flatMap((w) => workerLines(cfg.server, app, w, sha, release)),
    app.manager === "pm2" && `pm2 save --force >/dev/null`,
    `nostromo_result workers=${quote(app.workers.map((w) => workerUnit(app.name, w.name)).join(" "))}`,
  );
}

/**
 * `pulumi refresh`'s question for an app's workers: does each run, on release `sha`? Exit 0: yes;
 * exit 3 (drift): no, naming them; the next `up` starts them again.
 */
export function workersCheckScript(cfg: DeployConfig, app: AppConfig, sha: string): string {
  const release = `${layout(cfg.server.root, app.name).releases}/${sha}`;
  const test = (w: WorkerConfig) => {
    const name = workerUnit(app.name, w.name);
    return app.manager === "pm2"
      ? `[ "$(pm2 jlist | node -e ${quote(PM2_CWD)} ${quote(name)})" = ${quote(`online ${release}`)} ] || drift="$drift ${name}"`
      : `{ systemctl is-active --quiet ${quote(`${name}.service`)} && [ "$(systemctl show -p WorkingDirectory --value ${quote(`${name}.service`)})" = ${quote(release)} ]; } || drift="$drift ${name}"`;
  };
  return script(
    prelude(cfg.server),
    `drift=""`,
    ...app.workers.map(test),
    `if [ -n "$drift" ]; then echo "${app.name}: workers not running ${sha.slice(0, 12)}:$drift"; exit 3; fi`,
    `echo "${app.name}: every worker runs ${sha.slice(0, 12)}"`,
  );
}

/** Reads `pm2 jlist` on stdin; prints `<status> <cwd>` of the process named argv[1]. */
const PM2_CWD = `let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let l=[];try{l=JSON.parse(s)}catch{}const p=l.find(p=>p.name===process.argv[1]);console.log(p?p.pm2_env.status+" "+p.pm2_env.pm_cwd:"missing")})`;
