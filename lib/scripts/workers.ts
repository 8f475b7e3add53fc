/**
 * An app's workers: processes with no port (a Celery worker), one per name, `<app>-<name>` under
 * the app's manager. They run the release that serves: started after the cutover switched web
 * traffic to it, each old one stopped gracefully first (SIGTERM, then up to its stop timeout for
 * the work in flight: Celery's warm shutdown).
 */
import { AppConfig, DeployConfig, ServerConfig, WorkerConfig, workerUnit } from "../config";
import { quote, script } from "../shell";
import { layout, prelude } from "./layout";
import { stepScript } from "./lock";
import { SYSTEMD_UNIT_DIR, startCommand, systemdQuote } from "./slot";

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

/** The lines that stop worker `w`'s old process (gracefully), start it on `release` and check it. */
function workerLines(server: ServerConfig, app: AppConfig, w: WorkerConfig, sha: string, release: string): string[] {
  const name = workerUnit(app.name, w.name);
  if (app.manager === "pm2") {
    return [
      `name=${quote(name)}`,
      // PM2 stops with its kill signal (SIGINT unless PM2_KILL_SIGNAL says otherwise: Celery's
      // warm shutdown too), SIGKILL after the old process's --kill-timeout.
      `if pm2 describe "$name" >/dev/null 2>&1; then echo "stopping $name (up to ${w.stopTimeoutSeconds} s for the work in flight)"; pm2 delete "$name" >/dev/null; fi`,
      `pm2 start bash --name "$name" --cwd ${quote(release)} --time --kill-timeout ${w.stopTimeoutSeconds * 1000} -- -c ${quote(startCommand(app, w.command))} >/dev/null`,
      `worker_up "$name"`,
    ];
  }
  return [
    `unit=${quote(`${name}.service`)}`,
    `if systemctl is-active --quiet "$unit"; then echo "stopping $unit (SIGTERM, up to ${w.stopTimeoutSeconds} s for the work in flight)"; fi`,
    `systemctl stop "$unit" 2>/dev/null || true`,
    `printf '%s' ${quote(workerSystemdUnit(server, app, w, sha))} > ${quote(SYSTEMD_UNIT_DIR)}/"$unit.new" && mv -f ${quote(SYSTEMD_UNIT_DIR)}/"$unit.new" ${quote(SYSTEMD_UNIT_DIR)}/"$unit"`,
    `systemctl daemon-reload`,
    `systemctl enable --quiet "$unit"`,
    `since=$(date +%s)`,
    `systemctl start "$unit"`,
    `worker_up "$unit"`,
  ];
}

/** `worker_up NAME`: NAME stays running for WORKER_SETTLE_SECONDS, else the step fails with its state and last log lines. */
function workerUpFunction(app: AppConfig, sha: string): string[] {
  const fail =
    app.manager === "pm2"
      ? [
          `      echo "worker $1 of ${app.name} is not running after its start on ${sha.slice(0, 12)}: $state" >&2`,
          `      echo "last log lines of $1:" >&2`,
          `      pm2 logs "$1" --lines 20 --nostream --raw >&2 2>&1 || true`,
        ]
      : [
          `      echo "worker $1 of ${app.name} is not running after its start on ${sha.slice(0, 12)}: $(systemctl show -p ActiveState,SubState,Result,NRestarts,ExecMainStatus "$1" 2>&1 | tr '\\n' ' ')" >&2`,
          `      echo "last log lines of $1:" >&2`,
          `      journalctl _SYSTEMD_UNIT="$1" --since "@$since" -n 20 --no-pager -o cat >&2 || true`,
        ];
  const running =
    app.manager === "pm2"
      ? // Online and not restarted since its start (PM2 restarts a crashing process at once).
        `{ state=$(pm2 jlist | node -e ${quote(PM2_STATE)} "$1"); [ "$state" = "online 0" ]; }`
      : `systemctl is-active --quiet "$1"`;
  return [
    `worker_up() {`,
    `  for i in $(seq ${WORKER_SETTLE_SECONDS}); do`,
    `    sleep 1`,
    `    if ! ${running}; then`,
    ...fail,
    `      exit 1`,
    `    fi`,
    `  done`,
    `  echo "worker $1 runs ${app.name}@${sha.slice(0, 12)}"`,
    `}`,
  ];
}

/** Reads `pm2 jlist` on stdin; prints `<status> <restarts>` of the process named argv[1] (or `missing`). */
const PM2_STATE = `let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let l=[];try{l=JSON.parse(s)}catch{}const p=l.find(p=>p.name===process.argv[1]);console.log(p?p.pm2_env.status+" "+p.pm2_env.restart_time:"missing")})`;

/**
 * Starts every worker of `app` on release `sha` (after the cutover): each old process stopped
 * first, gracefully, then the new one started and checked for WORKER_SETTLE_SECONDS. Result:
 * workers (their process names).
 */
export function workersScript(cfg: DeployConfig, app: AppConfig, sha: string): string {
  const release = `${layout(cfg.server.root, app.name).releases}/${sha}`;
  return stepScript(
    cfg,
    `[ -f ${quote(`${release}/.nostromo-built`)} ] || { echo "workers of ${app.name}: release ${sha.slice(0, 12)} is not built" >&2; exit 1; }`,
    ...workerUpFunction(app, sha),
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
