/** The nginx site file. */
import { DeployConfig, NginxRoute } from "../config";
import { quote } from "../shell";
import { layout } from "./layout";
import { stepScript } from "./lock";

const upstreamName = (app: string) => `nostromo_${app.replace(/-/g, "_")}`;

/**
 * The access log format the bake reads (lib/scripts/bake.ts): end time (s.ms), status, upstream
 * address (the slot's port; "-" for files), request time. Named per stack: log_format names are
 * global to nginx, and two stacks may share one.
 */
export const bakeLogFormat = (stack: string) => `nostromo_bake_${stack.replace(/[^A-Za-z0-9]/g, "_")}`;
export const BAKE_LOG_FIELDS = "$msec $status $upstream_addr $request_time";

/** The web apps the site proxies to (each through its upstream include), by name. */
function upstreamApps(cfg: DeployConfig): string[] {
  return [...new Set(cfg.nginx.routes.filter((r) => r.serve === "slot").map((r) => r.app))].sort();
}

/** Locations in a stable order: by path, the catch-all `/` last (nginx picks the longest prefix whatever the order). */
function sortedRoutes(routes: NginxRoute[]): NginxRoute[] {
  const key = (r: NginxRoute) => (r.path === "/" && !r.exact ? "\uffff" : r.path);
  return [...routes].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : Number(!a.exact) - Number(!b.exact)));
}

/** One location block. */
function location(cfg: DeployConfig, route: NginxRoute, rootApp: string | undefined): string[] {
  const head = `    location ${route.exact ? "= " : ""}${route.path} {`;
  if (route.serve === "slot" && route.exact) {
    // The shorthand's health path, as it has always been written.
    return [
      head,
      `        proxy_pass http://${upstreamName(route.app)};`,
      `        proxy_http_version 1.1;`,
      `        proxy_set_header Connection "";`,
      `    }`,
    ];
  }
  if (route.serve === "slot") {
    return [
      head,
      `        proxy_pass http://${upstreamName(route.app)};`,
      `        proxy_http_version 1.1;`,
      `        proxy_set_header Connection "";`,
      `        proxy_set_header Host $host;`,
      `        proxy_next_upstream error timeout;`,
      `    }`,
    ];
  }
  if (route.serve === "folder") return [head, `        alias ${route.folder}/;`, `    }`];
  // A static app's current release: the server's root when it is at /, else an alias.
  if (route.path === "/" && route.app === rootApp) return [head, `        try_files $uri $uri/ /index.html;`, `    }`];
  const app = cfg.apps.find((a) => a.name === route.app)!;
  return [
    head,
    `        alias ${cfg.server.root}/current/${app.name}/${app.output}/;`,
    `        try_files $uri $uri/ ${route.path}index.html;`,
    `    }`,
  ];
}

/**
 * The nginx site, from the config's routes: an upstream per web app routed to (its live slot in
 * `<root>/nginx-upstreams/<app>.conf`, switched by the cutover), a static app routed at / as the
 * server's root (try_files … /index.html), other static apps and shared folders as aliases.
 */
export function nginxSite(cfg: DeployConfig): string {
  const up = layout(cfg.server.root).upstreams;
  const upstreams = upstreamApps(cfg);
  const rootRoute = cfg.nginx.routes.find((r) => r.path === "/" && r.serve === "release");
  const rootApp = rootRoute && cfg.apps.find((a) => a.name === rootRoute.app)!;
  const includes = upstreams.map((a) => `${up}/${a}.conf`);
  const header =
    includes.length === 0
      ? `# Written by nostromo-deploy (stack ${cfg.stack})`
      : `# Written by nostromo-deploy (stack ${cfg.stack}); the live slot${includes.length > 1 ? "s are" : " is"} in ${includes.join(", ")}`;
  return [
    header,
    ...upstreams.flatMap((a) => [`upstream ${upstreamName(a)} {`, `    include ${up}/${a}.conf;`, `    keepalive 16;`, `}`]),
    ...(cfg.bake ? [`log_format ${bakeLogFormat(cfg.stack)} '${BAKE_LOG_FIELDS}';`] : []),
    `server {`,
    `    listen ${cfg.nginx.listen};`,
    ...(cfg.bake ? [`    access_log ${layout(cfg.server.root).accessLog} ${bakeLogFormat(cfg.stack)};`] : []),
    ...(rootApp ? [`    root ${cfg.server.root}/current/${rootApp.name}/${rootApp.output};`] : []),
    ...sortedRoutes(cfg.nginx.routes).flatMap((r) => location(cfg, r, rootApp?.name)),
    `}`,
    ``,
  ].join("\n");
}

/** Installs the nginx site (kept if unchanged) with a first upstream per web app, tested before reload. */
export function nginxSiteScript(cfg: DeployConfig): string {
  const apps = upstreamApps(cfg).map((name) => cfg.apps.find((a) => a.name === name)!);
  const upstreams = layout(cfg.server.root).upstreams;
  const site = `${cfg.nginx.sitesDir}/nostromo.conf`;
  return stepScript(
    cfg,
    `mkdir -p ${quote(upstreams)} ${quote(cfg.nginx.sitesDir)}${cfg.bake ? ` ${quote(`${cfg.server.root}/logs`)}` : ""}`,
    ...apps.map((app) => {
      const up = `${upstreams}/${app.name}.conf`;
      return `[ -f ${quote(up)} ] || printf 'server 127.0.0.1:%s;\\n' ${app.ports!.blue} > ${quote(up)}`;
    }),
    `[ -f ${quote(site)} ] && cp -p ${quote(site)} ${quote(`${site}.previous`)} || true`,
    `printf '%s' ${quote(nginxSite(cfg))} > ${quote(`${site}.new`)} && mv -f ${quote(`${site}.new`)} ${quote(site)}`,
    `if ! ${cfg.nginx.testCommand} >"$nostromo_tmp/nginx" 2>&1; then`,
    `  cat "$nostromo_tmp/nginx" >&2`,
    `  if [ -f ${quote(`${site}.previous`)} ]; then mv -f ${quote(`${site}.previous`)} ${quote(site)}; else rm -f ${quote(site)}; fi`,
    `  echo "nginx rejected the site; the previous one was put back" >&2; exit 1`,
    `fi`,
    cfg.nginx.reloadCommand,
    `echo "nginx site installed: ${site}"`,
    `nostromo_result site=${quote(site)}`,
  );
}
