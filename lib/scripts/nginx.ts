/** The nginx site file. */
import { AppConfig, DeployConfig, NginxRoute } from "../config";
import { quote } from "../shell";
import { drainFile, layout } from "./layout";
import { stepScript } from "./lock";

const nginxName = (app: string) => `nostromo_${app.replace(/-/g, "_")}`;
/** The upstream of one slot of an app. */
const upstreamName = (app: string, slot: string) => `${nginxName(app)}_${slot}`;
/** The variable naming the upstream of the app's live slot, set for every request (liveSlotLines). */
const liveVariable = (app: string) => `$${nginxName(app)}`;
/** Where nginx answers, to this machine only, the upstream it routes the app's requests to now (liveSlotLines). */
export const liveAnswerPath = (app: string) => `/.nostromo/live/${app}`;
/** What that answer is when the app's `slot` takes its traffic. */
export const liveAnswer = (app: string, slot: string) => upstreamName(app, slot);
/** The target of the app's live link (layout's liveLink) for a slot: `<app>.<slot>`, a folder holding a file named `<slot>`. */
export const liveLinkTarget = (app: string, slot: string) => `${app}.${slot}`;

/**
 * The access log format the bake reads (lib/scripts/bake.ts): end time (s.ms), status, upstream
 * address (the slot's port; "-" for files), request time. Named per stack: log_format names are
 * global to nginx, and two stacks may share one.
 */
export const bakeLogFormat = (stack: string) => `nostromo_bake_${stack.replace(/[^A-Za-z0-9]/g, "_")}`;
export const BAKE_LOG_FIELDS = "$msec $status $upstream_addr $request_time";

/** The web apps the site proxies to (each through its slots' upstreams), by name. */
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
      `        proxy_pass http://${liveVariable(route.app)};`,
      `        proxy_http_version 1.1;`,
      `        proxy_set_header Connection "";`,
      `    }`,
    ];
  }
  if (route.serve === "slot") {
    return [
      head,
      `        proxy_pass http://${liveVariable(route.app)};`,
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
 * Which slot takes the app's traffic, decided per request: green when the live link leads to a
 * folder holding `green`, else blue. The cutover renames a new link over the old one: new
 * requests go to the new slot, requests under way finish on the old one, and no reload closes a
 * client's kept-alive connection.
 */
function liveSlotLines(cfg: DeployConfig, app: string): string[] {
  const link = layout(cfg.server.root, app).liveLink;
  return [
    `    set ${liveVariable(app)} ${upstreamName(app, "blue")};`,
    `    if (-e ${link}/green) {`,
    `        set ${liveVariable(app)} ${upstreamName(app, "green")};`,
    `    }`,
  ];
}

/**
 * A fleet's web host, out of the load balancer while its drain file exists (layout.ts): every
 * request but this host's own (the cutover's checks and smoke tests) gets 503, which the load
 * balancer's `proxy_next_upstream … http_503` sends on to another web host. Decided per request,
 * no reload: a kept-alive connection from the load balancer is never closed under a request.
 */
function drainLines(cfg: DeployConfig): string[] {
  const drain = drainFile(cfg);
  if (!drain) return [];
  return [
    `    set $nostromo_drain $remote_addr;`,
    `    if (!-e ${drain}) {`,
    `        set $nostromo_drain 127.0.0.1;`,
    `    }`,
    `    if ($nostromo_drain !~ ^(127\\.0\\.0\\.1|::1)$) {`,
    `        return 503;`,
    `    }`,
  ];
}

/**
 * nginx's own word on the switch: the cutover asks it which upstream it picks for the app
 * (a worker that cannot read the link picks blue whatever the link says).
 */
function liveAnswerLocation(app: string): string[] {
  return [
    `    location = ${liveAnswerPath(app)} {`,
    `        allow 127.0.0.1;`,
    `        allow ::1;`,
    `        deny all;`,
    `        default_type text/plain;`,
    `        return 200 "${liveVariable(app)}\\n";`,
    `    }`,
  ];
}

/**
 * The nginx site, from the config's routes: an upstream per slot of each web app routed to (the
 * live one chosen per request by its link, liveSlotLines), a static app routed at / as the
 * server's root (try_files … /index.html), other static apps and shared folders as aliases.
 */
export function nginxSite(cfg: DeployConfig): string {
  const upstreams = upstreamApps(cfg).map((name) => cfg.apps.find((a) => a.name === name)!);
  const rootRoute = cfg.nginx.routes.find((r) => r.path === "/" && r.serve === "release");
  const rootApp = rootRoute && cfg.apps.find((a) => a.name === rootRoute.app)!;
  const links = upstreams.map((a) => layout(cfg.server.root, a.name).liveLink);
  const header =
    links.length === 0
      ? `# Written by nostromo-deploy (stack ${cfg.stack})`
      : `# Written by nostromo-deploy (stack ${cfg.stack}); the live slot${links.length > 1 ? "s are" : " is"} the link${links.length > 1 ? "s" : ""} ${links.join(", ")}`;
  return [
    header,
    ...upstreams.flatMap((a) =>
      (["blue", "green"] as const).flatMap((slot) => [
        `upstream ${upstreamName(a.name, slot)} {`,
        `    server 127.0.0.1:${a.ports![slot]};`,
        `    keepalive 16;`,
        `}`,
      ]),
    ),
    ...(cfg.bake ? [`log_format ${bakeLogFormat(cfg.stack)} '${BAKE_LOG_FIELDS}';`] : []),
    `server {`,
    `    listen ${cfg.nginx.listen};`,
    ...(cfg.bake ? [`    access_log ${layout(cfg.server.root).accessLog} ${bakeLogFormat(cfg.stack)};`] : []),
    ...drainLines(cfg),
    ...upstreams.flatMap((a) => liveSlotLines(cfg, a.name)),
    ...(rootApp ? [`    root ${cfg.server.root}/current/${rootApp.name}/${rootApp.output};`] : []),
    ...sortedRoutes(cfg.nginx.routes).flatMap((r) => location(cfg, r, rootApp?.name)),
    ...upstreams.flatMap((a) => liveAnswerLocation(a.name)),
    `}`,
    ``,
  ].join("\n");
}

/**
 * Each web app's slot folders and live link: a link already there is kept; a new one names the
 * slot the app's `live` file names (a server deployed before the link existed), else blue.
 */
function liveLinkLines(cfg: DeployConfig, app: AppConfig): string[] {
  const L = layout(cfg.server.root, app.name);
  const folder = (slot: string) => `${L.upstreams}/${liveLinkTarget(app.name, slot)}`;
  return [
    `mkdir -p ${quote(folder("blue"))} ${quote(folder("green"))} && : > ${quote(`${folder("blue")}/blue`)} && : > ${quote(`${folder("green")}/green`)}`,
    `if [ ! -L ${quote(L.liveLink)} ]; then`,
    `  live=$(cat ${quote(`${L.slots}/live`)} 2>/dev/null || true); [ "$live" = green ] || live=blue`,
    `  ln -sfn ${quote(`${app.name}.`)}"$live" ${quote(L.liveLink)}`,
    `fi`,
  ];
}

/** Installs the nginx site (kept if unchanged) with each web app's live link, tested before reload. */
export function nginxSiteScript(cfg: DeployConfig): string {
  const apps = upstreamApps(cfg).map((name) => cfg.apps.find((a) => a.name === name)!);
  const upstreams = layout(cfg.server.root).upstreams;
  const site = `${cfg.nginx.sitesDir}/nostromo.conf`;
  return stepScript(
    cfg,
    `mkdir -p ${quote(upstreams)} ${quote(cfg.nginx.sitesDir)}${cfg.bake ? ` ${quote(`${cfg.server.root}/logs`)}` : ""}`,
    ...apps.flatMap((app) => liveLinkLines(cfg, app)),
    `[ -f ${quote(site)} ] && cp -p ${quote(site)} ${quote(`${site}.previous`)} || true`,
    `printf '%s' ${quote(nginxSite(cfg))} > ${quote(`${site}.new`)} && mv -f ${quote(`${site}.new`)} ${quote(site)}`,
    `if ! ${cfg.nginx.testCommand} >"$nostromo_tmp/nginx" 2>&1; then`,
    `  cat "$nostromo_tmp/nginx" >&2`,
    `  if [ -f ${quote(`${site}.previous`)} ]; then mv -f ${quote(`${site}.previous`)} ${quote(site)}; else rm -f ${quote(site)}; fi`,
    `  echo "nginx rejected the site; the previous one was put back" >&2; exit 1`,
    `fi`,
    cfg.nginx.reloadCommand,
    // The upstream includes of sites written before the live link: nothing reads them now.
    ...apps.map((app) => `rm -f ${quote(`${upstreams}/${app.name}.conf`)} ${quote(`${upstreams}/${app.name}.conf.previous`)}`),
    `echo "nginx site installed: ${site}"`,
    `nostromo_result site=${quote(site)}`,
  );
}
