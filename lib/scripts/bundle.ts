/**
 * What a failed check shows beside its own message, on stderr: the slot's last log lines (PM2's
 * files or the journal) and the warnings and errors at the end of nginx's error log. The step
 * runner redacts every secret value from it (lib/redact.ts).
 */
import { AppConfig, DeployConfig } from "../config";
import { quote } from "../shell";

/** Lines shown per log. */
const LOG_LINES = 12;

/** PM2's log file of process `name` for `stream` (PM2's default names, under PM2_HOME). */
const pm2LogFile = (name: string, stream: "out" | "error") => `"\${PM2_HOME:-$HOME/.pm2}/logs/"${name}${quote(`-${stream}.log`)}`;

/**
 * Before a PM2 slot `name` (a shell word) starts: where its log files end now, so a failure shows
 * only what this start wrote (PM2 appends to a slot's files across starts).
 */
export function pm2LogMark(name: string): string {
  return [
    `log_out_at=$(stat -c %s ${pm2LogFile(name, "out")} 2>/dev/null || echo 0)`,
    `log_err_at=$(stat -c %s ${pm2LogFile(name, "error")} 2>/dev/null || echo 0)`,
  ].join("; ");
}

/**
 * Prints the last log lines of slot `slot` (a shell word: "$target", blue) of `app`: under PM2
 * each stream from the mark (pm2LogMark; none: the whole file); under systemd the unit's
 * processes' lines since `$since` when set (epoch seconds), else the last ones.
 */
export function slotLogLines(app: AppConfig, slot: string): string {
  if (app.manager === "pm2") {
    const name = `${quote(`${app.name}-`)}${slot}`;
    return [
      `echo "last log lines of "${name}" (pm2):" >&2`,
      `tail -c +$(( \${log_out_at:-0} + 1 )) ${pm2LogFile(name, "out")} 2>/dev/null | tail -n ${LOG_LINES} | sed 's/^/  out: /' >&2 || true`,
      `tail -c +$(( \${log_err_at:-0} + 1 )) ${pm2LogFile(name, "error")} 2>/dev/null | tail -n ${LOG_LINES} | sed 's/^/  err: /' >&2 || true`,
    ].join("\n");
  }
  const unit = `${quote(`nostromo-${app.name}-`)}${slot}.service`;
  return [
    `echo "last log lines of "${unit}":" >&2`,
    `journalctl _SYSTEMD_UNIT=${unit} \${since:+--since "@$since"} -n ${LOG_LINES} --no-pager -o cat 2>/dev/null | sed 's/^/  /' >&2 || true`,
  ].join("\n");
}

/** Prints the warnings and errors at the end of nginx's error log (cfg.nginx.errorLog). */
export function nginxErrorLines(cfg: DeployConfig): string {
  const file = quote(cfg.nginx.errorLog);
  return [
    `if [ -r ${file} ]; then`,
    `  echo "last warnings and errors in nginx's error log ("${file}"):" >&2`,
    `  ngx_errors=$(tail -n 2000 ${file} | grep -E '\\[(warn|error|crit|alert|emerg)\\]' | tail -n ${LOG_LINES} || true)`,
    `  if [ -n "$ngx_errors" ]; then printf '%s\\n' "$ngx_errors" | sed 's/^/  /' >&2; else echo "  (none)" >&2; fi`,
    `else echo "nginx's error log "${file}" cannot be read (nginx.errorLog)" >&2; fi`,
  ].join("\n");
}
