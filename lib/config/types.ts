/** The deploy's configuration as the program uses it, once parsed and validated (./index.ts). */
import { DeployWindow } from "../deployWindow";
import { BakeConfig } from "./bake";

export type ServiceManager = "pm2" | "systemd";
export type AppKind = "node" | "python" | "static";

export interface ServerConfig {
  host: string;
  port: number;
  user: string;
  /** Deploy root: releases/, current/, shared/, backups/, deploys.jsonl, .lock/. */
  root: string;
  /** The server's SSH host key, `type base64` as in known_hosts. */
  hostKey?: string;
  insecureIgnoreHostKey: boolean;
  /** Dirs prepended to PATH in every remote script (pm2, node, pg tools). */
  path: string[];
  /** Extra environment for every remote script (e.g. PM2_HOME). */
  env: Record<string, string>;
  /** Free disk needed under root before anything changes, in MiB. */
  minFreeMiB: number;
}

/** One path of an app's health check: it must answer HTTP 200 with these JSON fields. */
export interface HealthCheck {
  path: string;
  /** Fields the JSON answer must hold with exactly these values (none: any 200 answer will do). */
  expect: Record<string, string>;
  /** JSON field that must equal the version being deployed (none: not checked); one check of an app at most. */
  versionField?: string;
}

/**
 * An app's health check, as the scripts use it: every path in order, each with its own fields
 * (`/api/health` with status and version, `/api/db-check` with database: connected…), all
 * answered before the deadline. The config's shorthand (path, expect, versionField, extraPaths)
 * is one first check and 200-only ones.
 */
export interface HealthConfig {
  checks: HealthCheck[];
  timeoutSeconds: number;
}

/**
 * A process of an app with no port (a Celery worker): `<app>-<name>` under the app's manager, in
 * the new release, started after the cutover switched web traffic, the old one stopped first.
 */
export interface WorkerConfig {
  name: string;
  command: string;
  /** How long a stop waits after SIGTERM (a task in flight finishing) before SIGKILL. */
  stopTimeoutSeconds: number;
}

export interface AppConfig {
  name: string;
  repo: string;
  ref: string;
  /** The version the release must report (default: from a `vX.Y.Z` ref). */
  version?: string;
  kind: AppKind;
  manager: ServiceManager;
  install: string;
  build?: string;
  migrate?: string;
  /**
   * Exits 0 when the database's recorded migrations are exactly the release's (none pending, none
   * unknown); run by `rollback --restore-db` in the serving release after a restore.
   */
  migrateCheck?: string;
  /**
   * The migration files in the repository, as a git glob (`migrations/*.sql`, `core/migrations/0*.py`):
   * the preview lists those added between the serving commit and the new one.
   */
  migrationFiles?: string;
  /** Command that starts the app in its release dir (node and python apps). */
  start?: string;
  /** Ports of the two slots, blue and green (node and python apps). */
  ports?: { blue: number; green: number };
  /** Folder of the built site, relative to the release (static apps). */
  output?: string;
  health?: HealthConfig;
  /** Non-secret environment written to the app's .env. */
  env: Record<string, string>;
  /** Gets DATABASE_URL and JWT_SECRET in its .env. */
  usesDatabase: boolean;
  /** Processes with no port (node and python apps), by name, in config order. */
  workers: WorkerConfig[];
  /**
   * Folders shared by the app's releases that nginx serves (routes with `static`), each named to
   * the app in its .env (`STATIC_ROOT`, `STATIC_URL`). Absent when no route has one.
   */
  staticFolders?: StaticFolder[];
  /**
   * Where a fleet runs the app (`hosts`; unset: both): `web`, its slots on every web host;
   * `worker`, its workers on the worker hosts (without it, on the web hosts).
   */
  roles?: AppRole[];
}

/** The host roles an app can be placed on (`apps.<app>.roles`). */
export type AppRole = "web" | "worker";

/** A folder of an app shared by its releases (collectstatic's), served by nginx at `url`. */
export interface StaticFolder {
  /** Absolute: `<root>/shared/<app>/<name>`. */
  dir: string;
  /** The route's path (`/static/`). */
  url: string;
  /** The .env names of dir and url: `STATIC_ROOT`, `STATIC_URL` for the folder `static`. */
  dirVar: string;
  urlVar: string;
}

/**
 * One nginx location. `slot`: proxied to the app's live web slot through its upstream include;
 * `release`: a static app's current release (its output, try_files … /index.html); `folder`: an
 * alias to `folder`. `exact` (`location = /health`) only comes from the `site` shorthand.
 */
export interface NginxRoute {
  path: string;
  app: string;
  serve: "slot" | "release" | "folder";
  folder?: string;
  exact?: boolean;
}

export interface NginxConfig {
  /** Port nginx serves the system on. */
  port: number;
  /** nginx `listen` value (default: the port, on every address). */
  listen: string;
  /** Where our site file goes (the operator's nginx.conf includes it). */
  sitesDir: string;
  reloadCommand: string;
  testCommand: string;
  /** nginx's error log, whose last lines a failed check shows (Debian's default path). */
  errorLog: string;
  /**
   * What the site serves, by path: `nginx.routes`, or the shorthand `nginx.site` (static app at /,
   * API app at /api/ and /health) turned into routes. Empty: no site.
   */
  routes: NginxRoute[];
}

export interface SmokeStep {
  name: string;
  method: "GET" | "POST";
  path: string;
  /** JSON body; its strings may hold `${secret:NAME}` placeholders (lib/config/smoke.ts). */
  body?: unknown;
  /** Extra request headers; values may hold `${secret:NAME}` placeholders. */
  headers: Record<string, string>;
  /** Send the token captured by an earlier step. */
  auth: boolean;
  expectStatus: number;
  /** Dotted JSON paths that must be present (`UF`, `items.0.name`). */
  expectFields: string[];
  /** Dotted JSON path → value it must equal. */
  expectValues: Record<string, string>;
  /** Every element of this array field must have `field` equal to `value` (tenant scoping). */
  expectEvery?: { array: string; field: string; value: string };
  /** JSON field holding a token to send on later steps. */
  captureToken?: string;
}

export interface DeployConfig {
  stack: string;
  server: ServerConfig;
  apps: AppConfig[];
  nginx: NginxConfig;
  backup: { keep: number; enabled: boolean };
  releasesToKeep: number;
  smoke: SmokeStep[];
  /** When deploys may run (enforced by the policy pack at `pulumi up`); none: any time. */
  deployWindow?: DeployWindow;
  /** The watch after the switch that sends traffic back on its own; none: no bake window. */
  bake?: BakeConfig;
  /** More than one server (`hosts`); none: the single `server`, a fleet of one. */
  fleet?: FleetConfig;
}

export type HostRole = "web" | "worker" | "primary";

/** One host of a fleet: its own address, port, user and host key; root, path and env from `server`. */
export interface FleetHost {
  name: string;
  roles: HostRole[];
  server: ServerConfig;
  /** nginx's site folder on this host, and its commands and error log where they differ from `nginx`'s. */
  nginx: { sitesDir: string } & Partial<Pick<NginxConfig, "reloadCommand" | "testCommand" | "errorLog">>;
}

/** nginx on a host of its own in front of the web hosts, written by the deploy. */
export interface LoadBalancerConfig {
  server: ServerConfig;
  /** Port it serves the system on (the web hosts are reached on nginx.port). */
  port: number;
  listen: string;
  sitesDir: string;
  reloadCommand: string;
  testCommand: string;
}

export interface FleetConfig {
  /** In config order; exactly one has the role `primary` (database backup and migrations). */
  hosts: FleetHost[];
  loadBalancer?: LoadBalancerConfig;
  rolling: {
    /** Web hosts switched at once (from a count or a percentage of the web hosts). */
    batchSize: number;
    /** Web hosts that may fail their switch, in percent of the web hosts, before every switched host goes back. */
    maxFailPercent: number;
    /** Scripts run over SSH at once, all hosts together (releases built side by side, batches). */
    connections: number;
  };
}

/** Secrets, read separately so they never sit in the plain config object. */
export interface DeploySecretsPresence {
  sshPrivateKey: boolean;
  databaseUrl: boolean;
  /**
   * The names `smokeSecrets` holds (never its values; see smokeSecretNames), none when it is not
   * set. Absent: the placeholders are not checked against it (tools that run no smoke step).
   */
  smokeSecrets?: { names: string[]; problem?: string };
  /** The keys `appSecrets` holds per app (never its values; see appSecretNames). */
  appSecrets?: { names: Record<string, string[]>; problem?: string };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid stack configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}
