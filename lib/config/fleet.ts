/**
 * `hosts`, `loadBalancer` and `rolling`: more than one server. Each host names its roles (`web`
 * hosts run the apps' slots behind the load balancer, `worker` hosts the apps' workers, the one
 * `primary` the database backup and the migrations); `server` holds what the hosts share (user,
 * root, path, env) and each host its own address, port, user and host key.
 */
import { AppConfig, AppKind, AppRole, DeployConfig, FleetConfig, FleetHost, HostRole, LoadBalancerConfig, NginxRoute } from "./types";
import { parseServer } from "./server";
import { Raw, Reader } from "./reader";

/** A host's own keys: any of `server`'s (over its defaults), its roles, and nginx's paths and commands where they differ. */
export const HOST_KEYS = [
  "host",
  "port",
  "user",
  "root",
  "hostKey",
  "insecureIgnoreHostKey",
  "path",
  "env",
  "minFreeMiB",
  "roles",
  "nginx",
] as const;
export const HOST_NGINX_KEYS = ["sitesDir", "reloadCommand", "testCommand", "errorLog"] as const;
export const LOAD_BALANCER_KEYS = [
  "host",
  "port",
  "user",
  "hostKey",
  "insecureIgnoreHostKey",
  "listen",
  "sshPort",
  "sitesDir",
  "reloadCommand",
  "testCommand",
] as const;
export const ROLLING_KEYS = ["batch", "maxFailPercent", "connections"] as const;
const ROLES: readonly HostRole[] = ["web", "worker", "primary"];
const HOST_NAME = /^[a-z][a-z0-9-]{0,39}$/;

/** Parses the fleet keys; `shared` is the `server` block, every host's defaults. */
export function parseFleet(r: Reader, raw: Raw, shared: Raw): FleetConfig {
  const rawHosts = r.object(raw.hosts, "hosts") ?? {};
  if (Object.keys(rawHosts).length === 0) r.fail("hosts", "must name at least one host");
  const hosts: FleetHost[] = [];
  const addresses = new Map<string, string>();
  for (const [name, v] of Object.entries(rawHosts)) {
    const at = `hosts.${name}`;
    if (!HOST_NAME.test(name)) r.fail(at, "host names are lower-case letters, digits and '-', starting with a letter");
    const h = r.object(v, at) ?? {};
    r.knownKeys(h, at, HOST_KEYS);
    const roles = r.stringList(h.roles, `${at}.roles`) as HostRole[];
    for (const role of roles) if (!ROLES.includes(role)) r.fail(`${at}.roles`, `unknown role "${role}" (roles: ${ROLES.join(", ")})`);
    if (roles.length === 0) r.fail(`${at}.roles`, `must name at least one role (${ROLES.join(", ")})`);
    const { roles: _roles, nginx: rawNginx, ...own } = h;
    const server = parseServer(r, { ...shared, host: undefined, hostKey: undefined, ...own }, at);
    const top = (r.object(raw.nginx, "nginx") ?? {}) as Raw;
    const n = r.object(rawNginx, `${at}.nginx`) ?? {};
    r.knownKeys(n, `${at}.nginx`, HOST_NGINX_KEYS);
    const nginx: FleetHost["nginx"] = {
      // Under the host's own root unless set (for the fleet, or for this host).
      sitesDir:
        r.string(n.sitesDir ?? top.sitesDir, `${at}.nginx.sitesDir`, {
          pattern: /^\/[A-Za-z0-9._/-]*$/,
          patternText: "must be an absolute path",
        }) ?? `${server.root}/nginx`,
      ...(n.reloadCommand !== undefined ? { reloadCommand: r.command(n.reloadCommand, `${at}.nginx.reloadCommand`) } : {}),
      ...(n.testCommand !== undefined ? { testCommand: r.command(n.testCommand, `${at}.nginx.testCommand`) } : {}),
      ...(n.errorLog !== undefined
        ? {
            errorLog: r.string(n.errorLog, `${at}.nginx.errorLog`, {
              pattern: /^\/[A-Za-z0-9._/-]*$/,
              patternText: "must be an absolute path",
            }),
          }
        : {}),
    };
    const where = `${server.host}:${server.port}`;
    if (addresses.has(where)) r.fail(`${at}.host`, `${where} is already ${addresses.get(where)}`);
    addresses.set(where, at);
    hosts.push({ name, roles: [...new Set(roles)], server, nginx });
  }
  const primaries = hosts.filter((h) => h.roles.includes("primary"));
  if (hosts.length > 0 && primaries.length !== 1)
    r.fail(
      "hosts",
      `exactly one host must have the role primary (it runs the backup and the migrations); ${primaries.length === 0 ? "none has" : `${primaries.map((h) => h.name).join(", ")} have`}`,
    );
  const web = hosts.filter((h) => h.roles.includes("web"));
  if (hosts.length > 0 && web.length === 0) r.fail("hosts", "at least one host must have the role web");

  const loadBalancer = parseLoadBalancer(r, raw.loadBalancer, shared);
  if (!loadBalancer && web.length > 1) r.fail("loadBalancer", `is required in front of ${web.length} web hosts`);

  const g = r.object(raw.rolling, "rolling") ?? {};
  r.knownKeys(g, "rolling", ROLLING_KEYS);
  const batchSize = parseBatch(r, g.batch, web.length);
  const maxFailPercent = r.int(g.maxFailPercent, "rolling.maxFailPercent", 0, 100, 0) ?? 0;
  const connections = r.int(g.connections, "rolling.connections", 1, 1000, 16) ?? 16;
  if (loadBalancer && web.length > 1 && batchSize >= web.length)
    r.fail("rolling.batch", `takes every web host (${web.length}) out of the load balancer at once: at most ${web.length - 1}`);
  return { hosts, ...(loadBalancer ? { loadBalancer } : {}), rolling: { batchSize, maxFailPercent, connections } };
}

/** `rolling.batch`: a count (2) or a percentage of the web hosts ("25%"), at least one host; default one. */
function parseBatch(r: Reader, v: unknown, webHosts: number): number {
  if (v === undefined) return 1;
  const percent = typeof v === "string" ? /^(\d{1,3})%$/.exec(v) : null;
  if (percent) {
    const p = Number(percent[1]);
    if (p < 1 || p > 100) return r.fail("rolling.batch", "a percentage must be from 1% to 100%") ?? 1;
    return Math.max(1, Math.floor((webHosts * p) / 100));
  }
  if (typeof v === "string" && !/^\d+$/.test(v))
    return r.fail("rolling.batch", 'must be a count of hosts (2) or a percentage ("25%")') ?? 1;
  return r.int(v, "rolling.batch", 1, 10_000, 1) ?? 1;
}

function parseLoadBalancer(r: Reader, v: unknown, shared: Raw): LoadBalancerConfig | undefined {
  const l = r.object(v, "loadBalancer");
  if (!l) return undefined;
  r.knownKeys(l, "loadBalancer", LOAD_BALANCER_KEYS);
  const server = parseServer(
    r,
    {
      ...shared,
      host: l.host,
      port: l.sshPort,
      user: l.user ?? shared.user,
      hostKey: l.hostKey,
      insecureIgnoreHostKey: l.insecureIgnoreHostKey,
    },
    "loadBalancer",
  );
  const port = r.int(l.port, "loadBalancer.port", 1, 65535, 80) ?? 80;
  const listen =
    r.string(l.listen, "loadBalancer.listen", {
      pattern: /^([0-9.]+:|\[[0-9a-f:]+\]:)?\d{1,5}$/,
      patternText: "must be PORT or ADDRESS:PORT",
    }) ?? String(port);
  if (!listen.endsWith(`:${port}`) && listen !== String(port)) r.fail("loadBalancer.listen", `must use loadBalancer.port (${port})`);
  return {
    server,
    port,
    listen,
    sitesDir:
      r.string(l.sitesDir, "loadBalancer.sitesDir", { pattern: /^\/[A-Za-z0-9._/-]*$/, patternText: "must be an absolute path" }) ??
      `${server.root}/nginx`,
    reloadCommand: r.command(l.reloadCommand, "loadBalancer.reloadCommand") ?? "nginx -s reload",
    testCommand: r.command(l.testCommand, "loadBalancer.testCommand") ?? "nginx -t",
  };
}

const APP_ROLES: readonly AppRole[] = ["web", "worker"];

/** `apps.<app>.roles`: a subset of web and worker that runs something (a worker-only app has workers); undefined when refused. */
export function parseAppRoles(r: Reader, v: unknown, at: string, kind: AppKind, workers: number): AppRole[] | undefined {
  const roles = [...new Set(r.stringList(v, at))] as AppRole[];
  const unknown = roles.find((role) => !APP_ROLES.includes(role));
  const problem = unknown
    ? `unknown role "${unknown}" (an app runs on: ${APP_ROLES.join(", ")})`
    : roles.length === 0
      ? `must name at least one role (${APP_ROLES.join(", ")})`
      : roles.includes("web")
        ? undefined
        : kind === "static"
          ? "a static app is served by the web hosts: it needs the role web"
          : workers === 0
            ? "without web the app runs only its workers, and it has none"
            : undefined;
  if (problem) r.fail(at, problem);
  return problem ? undefined : roles;
}

/** The app is served from the web hosts' slots (or files): every app unless its roles leave web out. */
export const appOnWeb = (app: AppConfig): boolean => !app.roles || app.roles.includes("web");

/** Its workers run on the worker hosts (when there are any), not on the web hosts. */
export const appWorkersOnWorkerHosts = (app: AppConfig): boolean => !app.roles || app.roles.includes("worker");

/** What app roles need of the hosts: a fleet, a worker host for a worker-only app, no route to an app the web hosts lack. */
export function checkAppRoles(r: Reader, apps: AppConfig[], fleet: FleetConfig | undefined, routes: NginxRoute[]): void {
  for (const app of apps.filter((a) => a.roles)) {
    const at = `apps.${app.name}.roles`;
    if (!fleet) {
      r.fail(at, "places the app on the hosts of a fleet (hosts); a single server runs every app");
      continue;
    }
    if (!appOnWeb(app) && !fleet.hosts.some((h) => h.roles.includes("worker")))
      r.fail(at, "runs the app on worker hosts only, and no host has the role worker");
    const i = routes.findIndex((x) => x.app === app.name);
    if (!appOnWeb(app) && i >= 0) r.fail(at, `leaves out web, but nginx routes ${routes[i].path} to ${app.name}`);
  }
}

/** The fleet's config as one host's deploy sees it: its own server and nginx, and the apps it holds. */
export function hostConfig(config: DeployConfig, host: FleetHost, apps: AppConfig[]): DeployConfig {
  // A host that is not web has no site: no nginx needed there, none archived.
  const routes = host.roles.includes("web") ? config.nginx.routes : [];
  return { ...config, server: host.server, nginx: { ...config.nginx, ...host.nginx, routes }, apps };
}

/** The hosts that run an app's workers: the worker hosts (the web hosts when there are none), or the web hosts when its roles say so. */
export function workerHostsOf(fleet: FleetConfig, app: AppConfig): FleetHost[] {
  const workers = fleet.hosts.filter((h) => h.roles.includes("worker"));
  return appWorkersOnWorkerHosts(app) && workers.length > 0 ? workers : fleet.hosts.filter((h) => h.roles.includes("web"));
}

/** The apps a host holds releases of: the apps on web on a web host, the apps whose workers it runs, the migrating ones on the primary. */
export function hostApps(config: DeployConfig, host: FleetHost): AppConfig[] {
  return config.apps.filter(
    (a) =>
      (host.roles.includes("web") && appOnWeb(a)) ||
      (a.workers.length > 0 && workerHostsOf(config.fleet!, a).includes(host)) ||
      (!!a.migrate && host.roles.includes("primary")),
  );
}
