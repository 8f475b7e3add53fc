/**
 * The deploy's configuration: parsed once from the stack's config into a typed object and
 * validated with path-style errors (`apps.orchestrator.health.path: must start with "/"`)
 * before any resource is created. No @pulumi runtime import: plain values in, plain values out.
 */
import { DeployWindow, WEEKDAYS, Weekday, isTimeZone, minutesOf } from "../deployWindow";
import { Raw, Reader } from "./reader";

export { commandLineProblem, levenshtein, suggestKey } from "./reader";
export { APP_SECRETS_KEY, appSecretNames, appSecretValues } from "./appSecrets";
export { SECRET_REF, SMOKE_SECRETS_KEY, secretRefs, smokeSecretNames, smokeSecretRefs, smokeSecretsLine } from "./smoke";

export * from "./types";
export type { BakeConfig } from "./bake";
import { APP_SECRETS_KEY, checkAppSecrets } from "./appSecrets";
import { parseBake } from "./bake";
import { checkAppRoles, parseAppRoles, parseFleet } from "./fleet";
import { ABS_PATH, parseServer } from "./server";
export { normaliseRoot, parseServer } from "./server";
import { HEALTH_CHECK_KEYS, HEALTH_SHORTHAND_KEYS, parseHealthChecks } from "./health";
import { ROUTE_KEYS, SITE_KEYS, parseRoutes } from "./routes";
import { EXPECT_EVERY_KEYS, SMOKE_KEYS, SMOKE_SECRETS_KEY, parseSmoke } from "./smoke";
import { AppConfig, ConfigError, DeployConfig, DeploySecretsPresence, NginxConfig, ServerConfig, WorkerConfig } from "./types";

const NAME = /^[a-z][a-z0-9-]{0,39}$/;
// What git accepts as a ref name, narrowed: no "..", no leading "-", no control chars or spaces.
const REF = /^(?!-)(?!.*\.\.)(?!.*\/\/)(?!.*@\{)[A-Za-z0-9._/-]{1,200}(?<![./])$/;
const ENV_KEY = /^[A-Z_][A-Z0-9_]*$/;

/** The config keys of this project the deploy reads, at each level; any other key is refused. */
export const KNOWN_KEYS = {
  top: ["server", "apps", "nginx", "backup", "smoke", "releasesToKeep", "deployWindow", "bake", "hosts", "loadBalancer", "rolling"],
  /** Secrets, read by index.ts through pulumi.Config.getSecret, never into the plain config. */
  secrets: ["sshPrivateKey", "databaseUrl", "jwtSecret", "notifyWebhookUrl", SMOKE_SECRETS_KEY, APP_SECRETS_KEY],
  server: ["host", "port", "user", "root", "hostKey", "insecureIgnoreHostKey", "path", "env", "minFreeMiB"],
  app: [
    "repo",
    "ref",
    "version",
    "kind",
    "manager",
    "install",
    "build",
    "migrate",
    "migrateCheck",
    "migrationFiles",
    "start",
    "ports",
    "output",
    "health",
    "env",
    "usesDatabase",
    "workers",
    "roles",
  ],
  ports: ["blue", "green"],
  worker: ["command", "stopTimeoutSeconds"],
  health: ["path", "expect", "versionField", "extraPaths", "checks", "timeoutSeconds"],
  healthShorthand: HEALTH_SHORTHAND_KEYS,
  healthCheck: HEALTH_CHECK_KEYS,
  nginx: ["port", "listen", "sitesDir", "reloadCommand", "testCommand", "errorLog", "site", "routes"],
  site: SITE_KEYS,
  route: ROUTE_KEYS,
  backup: ["keep", "enabled"],
  smoke: SMOKE_KEYS,
  expectEvery: EXPECT_EVERY_KEYS,
  deployWindow: ["days", "start", "end", "timezone"],
} as const;

/**
 * This project's keys from the whole config map (`pulumi.runtime.allConfig()`: `project:key` →
 * string), prefix dropped and JSON values parsed as `pulumi.Config.getObject` does (a value that is
 * not JSON stays the string). Secrets are left out (their values never enter the plain config);
 * other projects' namespaces (`aws:region`) are not ours to check.
 */
export function projectConfig(project: string, all: Record<string, string>): Raw {
  const out: Raw = {};
  for (const [fullKey, value] of Object.entries(all)) {
    if (!fullKey.startsWith(`${project}:`)) continue;
    const key = fullKey.slice(project.length + 1);
    if ((KNOWN_KEYS.secrets as readonly string[]).includes(key)) continue;
    try {
      out[key] = JSON.parse(value);
    } catch {
      out[key] = value;
    }
  }
  return out;
}

/** The version a ref names: `v1.2.3` → `1.2.3`; other refs name none. */
export function versionOfRef(ref: string): string | undefined {
  const m = /^v?(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?)$/.exec(ref);
  return m ? m[1] : undefined;
}

/**
 * Parses the stack's config values (keys without the project prefix, objects already parsed from
 * YAML, as `projectConfig` or `pulumi.Config.getObject` returns them) into a DeployConfig, or throws
 * ConfigError listing every problem with its path. A key the deploy does not read, at any level, is
 * a problem (`apps.orchestrator.migrat: unknown key (did you mean "migrate"?)`); the secrets' names
 * are accepted at the top level (their values are read apart, see DeploySecretsPresence).
 */
export function parseDeployConfig(stack: string, raw: Raw, secrets: DeploySecretsPresence): DeployConfig {
  const r = new Reader();
  r.knownKeys(raw, "", [...KNOWN_KEYS.top, ...KNOWN_KEYS.secrets]);

  const fleetRaw = raw.hosts !== undefined;
  const s = r.object(raw.server, "server") ?? (fleetRaw ? {} : (r.fail("server", "is required"), {} as Raw));
  r.knownKeys(s, "server", KNOWN_KEYS.server);
  const fleet = fleetRaw ? parseFleet(r, raw, s) : undefined;
  // A fleet's `server` is its hosts' shared defaults; the primary stands for "the server" where one is meant.
  const server: ServerConfig = fleet
    ? (fleet.hosts.find((h) => h.roles.includes("primary")) ?? fleet.hosts[0]).server
    : parseServer(r, s, "server");
  if (!secrets.sshPrivateKey) r.fail("sshPrivateKey", "is required (pulumi config set --secret sshPrivateKey < key)");

  const rawApps = r.object(raw.apps, "apps") ?? {};
  if (Object.keys(rawApps).length === 0) r.fail("apps", "must name at least one app");
  const apps: AppConfig[] = Object.entries(rawApps).map(([name, v]) => parseApp(r, name, v));

  const usedPorts = new Map<number, string>();
  for (const app of apps) {
    for (const [slot, port] of Object.entries(app.ports ?? {})) {
      const other = usedPorts.get(port);
      if (other) r.fail(`apps.${app.name}.ports.${slot}`, `port ${port} is already used by ${other}`);
      usedPorts.set(port, `apps.${app.name}.ports.${slot}`);
    }
  }
  // Worker and PM2 slot processes share one name space (`<app>-<name>`): no two may meet in it.
  const processNames = new Map<string, string>();
  for (const app of apps) {
    if (app.kind !== "static" && app.manager === "pm2")
      for (const slot of ["blue", "green"]) processNames.set(`${app.name}-${slot}`, `apps.${app.name} (slot ${slot})`);
  }
  for (const app of apps) {
    for (const w of app.workers.filter((w) => w.name !== "blue" && w.name !== "green")) {
      const unit = workerUnit(app.name, w.name);
      const other = processNames.get(unit);
      if (other) r.fail(`apps.${app.name}.workers.${w.name}`, `its process name ${unit} is already used by ${other}`);
      processNames.set(unit, `apps.${app.name}.workers.${w.name}`);
    }
  }
  if (apps.some((a) => a.usesDatabase) && !secrets.databaseUrl) {
    r.fail("databaseUrl", "is required by an app with a database (pulumi config set --secret databaseUrl postgres://…)");
  }

  const n = r.object(raw.nginx, "nginx") ?? {};
  r.knownKeys(n, "nginx", KNOWN_KEYS.nginx);
  const nginx: NginxConfig = {
    port: r.int(n.port, "nginx.port", 1, 65535, 80) ?? 80,
    listen:
      r.string(n.listen, "nginx.listen", {
        pattern: /^([0-9.]+:|\[[0-9a-f:]+\]:)?\d{1,5}$/,
        patternText: "must be PORT or ADDRESS:PORT",
      }) ?? "",
    sitesDir:
      r.string(n.sitesDir, "nginx.sitesDir", { pattern: ABS_PATH, patternText: "must be an absolute path" }) ?? `${server.root}/nginx`,
    reloadCommand: r.command(n.reloadCommand, "nginx.reloadCommand") ?? "nginx -s reload",
    testCommand: r.command(n.testCommand, "nginx.testCommand") ?? "nginx -t",
    errorLog:
      r.string(n.errorLog, "nginx.errorLog", { pattern: ABS_PATH, patternText: "must be an absolute path" }) ?? "/var/log/nginx/error.log",
    routes: parseRoutes(r, n, apps, server.root),
  };
  nginx.listen = nginx.listen || String(nginx.port);
  if (!nginx.listen.endsWith(`:${nginx.port}`) && nginx.listen !== String(nginx.port))
    r.fail("nginx.listen", `must use nginx.port (${nginx.port})`);
  if (usedPorts.has(nginx.port)) r.fail("nginx.port", `port ${nginx.port} is already used by ${usedPorts.get(nginx.port)}`);

  checkAppRoles(r, apps, fleet, nginx.routes);

  const b = r.object(raw.backup, "backup") ?? {};
  r.knownKeys(b, "backup", KNOWN_KEYS.backup);
  const backup = { keep: r.int(b.keep, "backup.keep", 1, 1000, 10) ?? 10, enabled: r.bool(b.enabled, "backup.enabled", true) };
  if (apps.some((a) => a.migrate) && !backup.enabled && stack === "production") {
    r.fail("backup.enabled", "must be true in production: every migration is preceded by a backup");
  }

  const releasesToKeep = r.int(raw.releasesToKeep, "releasesToKeep", 2, 100, 5) ?? 5;
  if (secrets.smokeSecrets?.problem) r.fail(SMOKE_SECRETS_KEY, secrets.smokeSecrets.problem);
  const smoke = parseSmoke(r, raw.smoke, secrets.smokeSecrets?.names);
  const deployWindow = parseDeployWindow(r, raw.deployWindow);
  const bake = parseBake(r, raw.bake);
  if (secrets.appSecrets?.problem) r.fail(APP_SECRETS_KEY, secrets.appSecrets.problem);
  checkAppSecrets(r, secrets.appSecrets?.names ?? {}, apps);

  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return {
    stack,
    server,
    apps,
    nginx,
    backup,
    releasesToKeep,
    smoke,
    ...(deployWindow ? { deployWindow } : {}),
    ...(bake ? { bake } : {}),
    ...(fleet ? { fleet } : {}),
  };
}

function parseApp(r: Reader, name: string, v: unknown): AppConfig {
  const at = `apps.${name}`;
  if (!NAME.test(name)) r.fail(at, "app names are lower-case letters, digits and '-', starting with a letter");
  const a = r.object(v, at) ?? {};
  r.knownKeys(a, at, KNOWN_KEYS.app);
  const kind = r.oneOf(a.kind, `${at}.kind`, ["node", "python", "static"] as const, "node");
  const app: AppConfig = {
    name,
    repo:
      r.string(a.repo, `${at}.repo`, {
        required: true,
        pattern: /^(\/[^\s]+|(https?|ssh|git|file):\/\/[^\s]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+)$/,
        patternText: "must be a git URL (https://, ssh://, git@host:path) or an absolute path",
      }) ?? "",
    ref: r.string(a.ref, `${at}.ref`, { required: true, pattern: REF, patternText: "must be a git tag, branch or commit SHA" }) ?? "",
    version: r.string(a.version, `${at}.version`, { pattern: /^[0-9A-Za-z.+-]{1,64}$/, patternText: "must be a version such as 1.2.3" }),
    kind,
    manager: r.oneOf(a.manager, `${at}.manager`, ["pm2", "systemd"] as const, "pm2"),
    install: r.string(a.install, `${at}.install`) ?? (kind === "python" ? PIP_INSTALL : "npm ci"),
    build: r.string(a.build, `${at}.build`),
    migrate: r.string(a.migrate, `${at}.migrate`),
    migrateCheck: r.string(a.migrateCheck, `${at}.migrateCheck`),
    migrationFiles: r.string(a.migrationFiles, `${at}.migrationFiles`, {
      pattern: /^(?!\/)(?!.*\.\.)[A-Za-z0-9._*?/[\]-]+$/,
      patternText: "must be a glob of paths in the repository, such as migrations/*.sql or core/migrations/0*.py",
    }),
    start: r.string(a.start, `${at}.start`),
    output: r.string(a.output, `${at}.output`, {
      pattern: /^(?!\/)(?!.*\.\.)[A-Za-z0-9._/-]+$/,
      patternText: "must be a relative path inside the release",
    }),
    env: r.stringMap(a.env, `${at}.env`, ENV_KEY),
    usesDatabase: r.bool(a.usesDatabase, `${at}.usesDatabase`, a.migrate !== undefined),
    workers: parseWorkers(r, a.workers, `${at}.workers`),
  };
  const roles = a.roles !== undefined ? parseAppRoles(r, a.roles, `${at}.roles`, kind, app.workers.length) : undefined;
  if (roles) app.roles = roles;
  if (app.roles && !app.roles.includes("web")) {
    // No slot anywhere: the app is its workers only.
    for (const key of ["start", "ports", "health"] as const)
      if (a[key] !== undefined) r.fail(`${at}.${key}`, `the app runs on no web host (roles: [worker]): it has no slots`);
    app.version = app.version ?? versionOfRef(app.ref);
  } else if (kind !== "static") {
    if (!app.start) r.fail(`${at}.start`, `is required for a ${kind} app`);
    const p = r.object(a.ports, `${at}.ports`);
    if (!p) r.fail(`${at}.ports`, `is required for a ${kind} app: { blue: <port>, green: <port> }`);
    r.knownKeys(p, `${at}.ports`, KNOWN_KEYS.ports);
    const blue = r.int(p?.blue, `${at}.ports.blue`, 1024, 65535);
    const green = r.int(p?.green, `${at}.ports.green`, 1024, 65535);
    if (blue !== undefined && green !== undefined) {
      if (blue === green) r.fail(`${at}.ports`, "blue and green must differ");
      app.ports = { blue, green };
    }
    const h = r.object(a.health, `${at}.health`);
    if (!h) r.fail(`${at}.health`, `is required for a ${kind} app: nothing takes traffic unchecked`);
    r.knownKeys(h, `${at}.health`, KNOWN_KEYS.health);
    app.health = {
      checks: parseHealthChecks(r, h, `${at}.health`),
      timeoutSeconds: r.int(h?.timeoutSeconds, `${at}.health.timeoutSeconds`, 1, 3600, 60) ?? 60,
    };
    app.version = app.version ?? versionOfRef(app.ref);
    const versionField = app.health.checks.find((c) => c.versionField)?.versionField;
    if (!app.version && versionField && app.ref) {
      r.fail(`${at}.version`, `is required when ref is not a version tag: the health check compares ${versionField} with it`);
    }
  } else {
    app.output = app.output ?? "dist";
    if (app.migrate) r.fail(`${at}.migrate`, "a static app has no migration");
    if (a.ports !== undefined) r.fail(`${at}.ports`, "a static app is served by nginx from its files: it has no ports");
    if (app.workers.length > 0) r.fail(`${at}.workers`, "a static app has no processes");
  }
  if (app.migrateCheck && !app.migrate) r.fail(`${at}.migrateCheck`, "checks the migrations of `migrate`, which is not set");
  if (app.migrationFiles && !app.migrate) r.fail(`${at}.migrationFiles`, "names the files `migrate` applies, which is not set");
  if (app.manager === "systemd" && kind === "static") r.fail(`${at}.manager`, "a static app has no service");
  return app;
}

/**
 * A python app's default install: the release's .venv (made by the release step) gets
 * requirements.txt from the wheelhouse shared by the app's releases, offline; only what it lacks
 * is downloaded (see PIP_INSTALL_FUNCTION in lib/scripts/release.ts).
 */
export const PIP_INSTALL = "nostromo_pip_install requirements.txt";

/** The name of worker `worker` of `app`: its PM2 process, and its systemd unit without `.service`. */
export function workerUnit(app: string, worker: string): string {
  return `${app}-${worker}`;
}

/** `apps.<app>.workers`: name → { command, stopTimeoutSeconds }, in config order. */
function parseWorkers(r: Reader, v: unknown, at: string): WorkerConfig[] {
  const o = r.object(v, at);
  return Object.entries(o ?? {}).map(([name, wv]) => {
    const wat = `${at}.${name}`;
    if (!NAME.test(name)) r.fail(wat, "worker names are lower-case letters, digits and '-', starting with a letter");
    if (name === "blue" || name === "green") r.fail(wat, "blue and green name the app's slots");
    const w = r.object(wv, wat) ?? {};
    r.knownKeys(w, wat, KNOWN_KEYS.worker);
    return {
      name,
      command: r.command(w.command, `${wat}.command`, { required: true }) ?? "",
      stopTimeoutSeconds: r.int(w.stopTimeoutSeconds, `${wat}.stopTimeoutSeconds`, 1, 86400, 60) ?? 60,
    };
  });
}

function parseDeployWindow(r: Reader, v: unknown): DeployWindow | undefined {
  const w = r.object(v, "deployWindow");
  if (!w) return undefined;
  r.knownKeys(w, "deployWindow", KNOWN_KEYS.deployWindow);
  const days = r.stringList(
    w.days,
    "deployWindow.days",
    new RegExp(`^(${WEEKDAYS.join("|")})$`),
    `must be one of ${WEEKDAYS.join(", ")}`,
  ) as Weekday[];
  if (days.length === 0) r.fail("deployWindow.days", "must name at least one day");
  const time = { pattern: /^\d\d:\d\d$/, patternText: "must be a time HH:MM (00:00 to 24:00)" };
  const start = r.string(w.start, "deployWindow.start", { required: true, ...time }) ?? "";
  const end = r.string(w.end, "deployWindow.end", { required: true, ...time }) ?? "";
  for (const [key, value] of [
    ["start", start],
    ["end", end],
  ]) {
    if (value && minutesOf(value) === undefined) r.fail(`deployWindow.${key}`, time.patternText);
  }
  if (start && start === end) r.fail("deployWindow.end", "must differ from start");
  const timezone = r.string(w.timezone, "deployWindow.timezone", { required: true }) ?? "";
  if (timezone && !isTimeZone(timezone)) r.fail("deployWindow.timezone", "must be an IANA time zone such as America/Santiago or UTC");
  return { days, start, end, timezone };
}
