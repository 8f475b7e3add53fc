/** `nginx.routes` (and its shorthand `nginx.site`): what the nginx site serves, by path. */
import { Raw, Reader } from "./reader";
import { AppConfig, NginxRoute } from "./types";

export const SITE_KEYS = ["staticApp", "apiApp"] as const;
export const ROUTE_KEYS = ["path", "app", "static"] as const;

/**
 * A location: a prefix that starts and ends with "/", or an exact path without the last "/"
 * (`/health`); no "." or ".." segment (nginx never matches them).
 */
const ROUTE_PATH = /^\/(?:(?!\.\.?(?:\/|$))[A-Za-z0-9._~-]+(?:\/|$))*$/;
/** A folder under the app's shared folder; its .env names are its name in capitals + _ROOT, _URL. */
const STATIC_FOLDER = /^[a-z][a-z0-9_]{0,39}$/;
/** Folders of shared/<app> the deploy itself uses (lib/scripts/release.ts). */
const SHARED_RESERVED = ["wheelhouse"];

/**
 * What the nginx site serves, by path: `nginx.routes` (each `{ path, app }` to a web app's live
 * slot or a static app's current release, or `{ path, app, static }` to a folder shared by the
 * app's releases), or the shorthand `nginx.site` (static app at /, API app at /api/ and the exact
 * /health) turned into the same routes. Both at once are refused. Fills the routed apps'
 * staticFolders (their .env names).
 */
export function parseRoutes(r: Reader, n: Raw, apps: AppConfig[], root: string): NginxRoute[] {
  const byName = new Map(apps.map((a) => [a.name, a]));
  const site = r.object(n.site, "nginx.site");
  r.knownKeys(site, "nginx.site", SITE_KEYS);
  if (n.routes !== undefined && n.routes !== null) {
    if (site) {
      r.fail(
        "nginx.routes",
        "cannot be combined with site (the shorthand for a static app at / and an API app at /api/ and /health): give every path in routes",
      );
    }
    if (!Array.isArray(n.routes)) return r.fail("nginx.routes", "must be a list of { path, app, static }") ?? [];
    if (n.routes.length === 0) r.fail("nginx.routes", "must name at least one path");
    const routes: NginxRoute[] = [];
    const folders = new Map<string, string>();
    n.routes.forEach((v: unknown, i: number) => {
      const at = `nginx.routes[${i}]`;
      const o = v === undefined || v === null ? r.fail(at, "must be an object") : r.object(v, at);
      if (!o) return;
      r.knownKeys(o, at, ROUTE_KEYS);
      const path = r.string(o.path, `${at}.path`, {
        required: true,
        pattern: ROUTE_PATH,
        patternText:
          "must start with \"/\": a prefix ending with \"/\" (/api/, or /) or an exact path (/health), of letters, digits, '.', '_', '-', '~'",
      });
      const name = r.string(o.app, `${at}.app`, { required: true });
      const folder = r.string(o.static, `${at}.static`, {
        pattern: STATIC_FOLDER,
        patternText: "must be a folder name (lower-case letters, digits, '_'), kept in the app's shared folder",
      });
      const first = routes.findIndex((x) => x.path === path);
      if (path && first >= 0) r.fail(`${at}.path`, `${path} is already routed by nginx.routes[${first}]`);
      const app = name === undefined ? undefined : byName.get(name);
      if (name !== undefined && !app) r.fail(`${at}.app`, `no app named ${JSON.stringify(name)}`);
      if (!path || !app) return;
      // Without the last "/" a path is matched exactly: an app's own endpoint, such as /health.
      const exact = !path.endsWith("/");
      if (exact && (app.kind === "static" || (o.static !== undefined && o.static !== null)))
        return r.fail(`${at}.path`, `an exact path (no last "/") goes to a web app's slot: end ${path} with "/" to serve files there`);
      if (o.static !== undefined && o.static !== null) {
        if (!folder) return;
        if (app.kind === "static") return r.fail(`${at}.static`, `${app.name} is a static app: route its output without static`);
        if (SHARED_RESERVED.includes(folder)) return r.fail(`${at}.static`, `${folder} is the deploy's own folder of shared/${app.name}`);
        const key = `${app.name}/${folder}`;
        if (folders.has(key)) return r.fail(`${at}.static`, `${folder} of ${app.name} is already routed by ${folders.get(key)}`);
        folders.set(key, at);
        const dir = `${root}/shared/${app.name}/${folder}`;
        const base = folder.toUpperCase();
        const entry = { dir, url: path, dirVar: `${base}_ROOT`, urlVar: `${base}_URL` };
        for (const v of [entry.dirVar, entry.urlVar]) {
          if (app.env[v] !== undefined) r.fail(`apps.${app.name}.env.${v}`, `is set by ${at} (the folder nginx serves): remove it here`);
        }
        app.staticFolders = [...(app.staticFolders ?? []), entry];
        routes.push({ path, app: app.name, serve: "folder", folder: dir });
      } else if (app.kind === "static") {
        routes.push({ path, app: app.name, serve: "release" });
      } else if (!app.ports) {
        r.fail(`${at}.app`, `${app.name} has no web slot (ports) to send requests to`);
      } else {
        routes.push({ path, app: app.name, serve: "slot", ...(exact ? { exact } : {}) });
      }
    });
    return routes;
  }
  if (!site) return [];
  const staticApp = r.string(site.staticApp, "nginx.site.staticApp", { required: true }) ?? "";
  const apiApp = r.string(site.apiApp, "nginx.site.apiApp", { required: true }) ?? "";
  if (byName.get(staticApp)?.kind !== "static") r.fail("nginx.site.staticApp", "must name an app of kind static");
  if (!["node", "python"].includes(byName.get(apiApp)?.kind ?? "")) r.fail("nginx.site.apiApp", "must name an app of kind node or python");
  return [
    { path: "/", app: staticApp, serve: "release" },
    { path: "/api/", app: apiApp, serve: "slot" },
    { path: "/health", app: apiApp, serve: "slot", exact: true },
  ];
}
