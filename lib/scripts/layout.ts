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
 * The step's one machine-readable result line, its last line of output: `nostromo-result {…}`,
 * from `key=value` arguments (values are strings), with the lease of the update that ran it.
 */
export const RESULT_FUNCTION = `nostromo_result() { node -e 'const o={};for(const a of process.argv.slice(1)){const i=a.indexOf("=");o[a.slice(0,i)]=a.slice(i+1)}console.log("nostromo-result "+JSON.stringify(o))' lease="\${NOSTROMO_LEASE:-}" "$@"; }`;

/** PATH and environment every remote script starts with, and the result function. */
export function prelude(server: ServerConfig): string {
  const lines = ["umask 022"];
  if (server.path.length > 0) lines.push(`export PATH=${server.path.map(quote).join(":")}:"$PATH"`);
  for (const [k, v] of Object.entries(server.env)) lines.push(`export ${k}=${quote(v)}`);
  lines.push(RESULT_FUNCTION);
  return lines.join("\n");
}
