/** Where things live on the server, and the lines every remote script starts with. */
import { createHash } from "crypto";
import { DeployConfig, ServerConfig } from "../config";
import { quote } from "../shell";

/** Where things live under the deploy root (DESIGN: server layout). */
export function layout(root: string, app?: string) {
  return {
    releases: `${root}/releases/${app}`,
    current: `${root}/current/${app}`,
    shared: `${root}/shared/${app}`,
    slots: `${root}/slots/${app}`,
    /** The workers the deploy started for the app, one process name a line (the next deploy retires the others). */
    workers: `${root}/slots/${app}/workers`,
    mirror: `${root}/repos/${app}.git`,
    backups: `${root}/backups`,
    lock: `${root}/.lock`,
    journal: `${root}/deploys.jsonl`,
    upstreams: `${root}/nginx-upstreams`,
    /**
     * The app's live slot as nginx reads it on every request: a link to `<app>.blue` or
     * `<app>.green` beside it (nginx.ts), switched by renaming a new link over it, no reload.
     */
    liveLink: `${root}/nginx-upstreams/${app}`,
    /** nginx's access log of the site in the bake's format (bake.ts): written only with a bake window. */
    accessLog: `${root}/logs/access.log`,
    /**
     * A web host of a fleet out of its load balancer: while this file exists the host's nginx
     * answers 503 to every request but its own (nginx.ts), and the load balancer sends it on to
     * another web host. The cutover makes it before its switch and removes it once checked.
     */
    drain: `${root}/.drain`,
  };
}

/**
 * The drain file of a web host of this config (its server), when it has one: behind a load
 * balancer with other web hosts to take its traffic. A lone web host is never taken out.
 */
export function drainFile(cfg: DeployConfig): string | undefined {
  const web = cfg.fleet?.hosts.filter((h) => h.roles.includes("web")) ?? [];
  return cfg.fleet?.loadBalancer && web.length > 1 ? layout(cfg.server.root).drain : undefined;
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * `nostromo_json_string VALUE`: VALUE as a JSON string, in `$nostromo_json` (no subshell): backslash,
 * quote and control characters escaped; other bytes (UTF-8) as they are.
 */
const JSON_STRING_FUNCTION = [
  `nostromo_json_string() {`,
  `  local s=$1 i c hex`,
  `  s=\${s//\\\\/\\\\\\\\}; s=\${s//\\"/\\\\\\"}; s=\${s//$'\\n'/\\\\n}; s=\${s//$'\\r'/\\\\r}; s=\${s//$'\\t'/\\\\t}`,
  `  case $s in *[$'\\001'-$'\\037']*)`,
  `    for i in 1 2 3 4 5 6 7 8 11 12 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31; do`,
  `      printf -v c "\\\\$(printf '%03o' "$i")"; printf -v hex '\\\\u%04x' "$i"; s=\${s//"$c"/$hex}`,
  `    done;;`,
  `  esac`,
  `  nostromo_json="\\"$s\\""`,
  `}`,
].join("\n");

/**
 * The step's one machine-readable result line, its last line of output: `nostromo-result {…}`,
 * from `key=value` arguments (values are strings), with the lease of the update that ran it.
 * Every step ends with it, so it is bash: a node start costs 0.05 s on a server, 0.1 s under
 * load. Past 4 KB of arguments (a long changelog) node writes it: bash's replacements slow down
 * on long text (0.2 s for 100 KB).
 */
export const RESULT_FUNCTION = [
  JSON_STRING_FUNCTION,
  `nostromo_result() {`,
  `  local out="" a k all="$*"`,
  `  if [ "\${#all}" -gt 4096 ]; then`,
  `    node -e 'const o={};for(const a of process.argv.slice(1)){const i=a.indexOf("=");o[a.slice(0,i)]=a.slice(i+1)}console.log("nostromo-result "+JSON.stringify(o))' lease="\${NOSTROMO_LEASE:-}" "$@"`,
  `    return`,
  `  fi`,
  `  for a in lease="\${NOSTROMO_LEASE:-}" "$@"; do`,
  `    nostromo_json_string "\${a%%=*}"; k=$nostromo_json`,
  `    nostromo_json_string "\${a#*=}"; out="$out\${out:+,}$k:$nostromo_json"`,
  `  done`,
  `  printf 'nostromo-result {%s}\\n' "$out"`,
  `}`,
].join("\n");

/** PATH and environment every remote script starts with, and the result function. */
export function prelude(server: ServerConfig): string {
  const lines = ["umask 022"];
  if (server.path.length > 0) lines.push(`export PATH=${server.path.map(quote).join(":")}:"$PATH"`);
  for (const [k, v] of Object.entries(server.env)) lines.push(`export ${k}=${quote(v)}`);
  lines.push(RESULT_FUNCTION);
  return lines.join("\n");
}
