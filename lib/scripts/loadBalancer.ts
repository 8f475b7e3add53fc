/**
 * The load balancer of a fleet: nginx on a host of its own, one upstream of every web host's
 * nginx. Its list of hosts is fixed; a host leaves it and comes back by its drain file (layout.ts),
 * never by a reload here: a reload drops kept-alive clients' requests (bench/loadBalancer.ts).
 */
import { DeployConfig, LoadBalancerConfig } from "../config";
import { quote, script } from "../shell";
import { prelude } from "./layout";

/** nginx names are global to its config: one upstream per stack. */
export const loadBalancerUpstream = (stack: string) => `nostromo_fleet_${stack.replace(/[^A-Za-z0-9]/g, "_")}`;

/** Where the site goes on the load balancer. */
export const loadBalancerSitePath = (lb: LoadBalancerConfig, stack: string) => `${lb.sitesDir}/nostromo-${stack}.conf`;

/**
 * Seconds a web host that failed a request (a drained one's 503 included) is left alone. The
 * rolling switch waits this long between batches: hosts drained one batch after the other, each
 * left alone for its fail_timeout, once left no live upstream at all (502 to every client).
 */
export const LB_FAIL_TIMEOUT_SECONDS = 1;

/**
 * The site: every web host in one upstream. A host answering 503 (drained) or not answering
 * (connect within 2 s) has the request sent on to the next one, POSTs included: a drained host
 * answers before its app sees anything; a failed one is left alone for LB_FAIL_TIMEOUT_SECONDS.
 */
export function loadBalancerSite(cfg: DeployConfig): string {
  const lb = cfg.fleet!.loadBalancer!;
  const upstream = loadBalancerUpstream(cfg.stack);
  const web = cfg.fleet!.hosts.filter((h) => h.roles.includes("web"));
  return [
    `# Written by nostromo-deploy (stack ${cfg.stack}): the load balancer of the web hosts ${web.map((h) => h.name).join(", ")}`,
    `upstream ${upstream} {`,
    ...web.map((h) => `    server ${h.server.host}:${cfg.nginx.port} max_fails=1 fail_timeout=${LB_FAIL_TIMEOUT_SECONDS}s;`),
    `    keepalive 32;`,
    `}`,
    `server {`,
    `    listen ${lb.listen};`,
    `    location / {`,
    `        proxy_pass http://${upstream};`,
    `        proxy_http_version 1.1;`,
    `        proxy_set_header Connection "";`,
    `        proxy_set_header Host $host;`,
    `        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`,
    `        proxy_connect_timeout 2s;`,
    `        proxy_next_upstream error timeout http_502 http_503 non_idempotent;`,
    `    }`,
    `}`,
    ``,
  ].join("\n");
}

/** Installs the site when it differs (tested first, the previous one put back if nginx refuses it), then reloads. */
export function loadBalancerScript(cfg: DeployConfig): string {
  const lb = cfg.fleet!.loadBalancer!;
  const site = loadBalancerSitePath(lb, cfg.stack);
  const text = loadBalancerSite(cfg);
  return script(
    prelude(lb.server),
    `mkdir -p ${quote(lb.sitesDir)}`,
    `if [ -f ${quote(site)} ] && [ "$(cat ${quote(site)})" = ${quote(text.trimEnd())} ]; then`,
    `  echo "load balancer site unchanged: ${site}"`,
    `else`,
    `  [ -f ${quote(site)} ] && cp -p ${quote(site)} ${quote(`${site}.previous`)} || rm -f ${quote(`${site}.previous`)}`,
    `  printf '%s' ${quote(text)} > ${quote(`${site}.new`)} && mv -f ${quote(`${site}.new`)} ${quote(site)}`,
    `  if ! ${lb.testCommand} > /tmp/nostromo-lb-test.$$ 2>&1; then`,
    `    cat /tmp/nostromo-lb-test.$$ >&2; rm -f /tmp/nostromo-lb-test.$$`,
    `    if [ -f ${quote(`${site}.previous`)} ]; then mv -f ${quote(`${site}.previous`)} ${quote(site)}; else rm -f ${quote(site)}; fi`,
    `    echo "nginx on the load balancer rejected the site; the previous one was put back" >&2; exit 1`,
    `  fi`,
    `  rm -f /tmp/nostromo-lb-test.$$`,
    `  ${lb.reloadCommand}`,
    `  echo "load balancer site installed: ${site}"`,
    `fi`,
    `nostromo_result site=${quote(site)}`,
  );
}

/** `pulumi refresh`: is the site still what the deploy wrote? Exit 3 names the drift. */
export function loadBalancerCheckScript(cfg: DeployConfig): string {
  const lb = cfg.fleet!.loadBalancer!;
  const site = loadBalancerSitePath(lb, cfg.stack);
  return script(
    prelude(lb.server),
    `[ "$(cat ${quote(site)} 2>/dev/null)" = ${quote(loadBalancerSite(cfg).trimEnd())} ] || { echo "the load balancer's site ${site} was changed or removed"; exit 3; }`,
    `echo "load balancer site as written"`,
  );
}
