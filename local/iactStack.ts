// A stack config for IACT as runbook 003 runs it (Django under gunicorn, a Celery worker, both
// under systemd; PostgreSQL; Redis as cache and broker; nginx in front) on a local target: the
// tests deploy examples/iact to the systemd host with it. Pulumi.iact-staging.yaml is the same
// shape for the staging server.
import { StackTarget, targetNginx, targetServer } from "./stack";

export interface IactStackOptions {
  target: StackTarget;
  /** The git repository of examples/iact (local/iactRepo.ts) and the ref to deploy. */
  repo: string;
  ref: string;
  /** Free loopback ports for the web process's two slots. */
  slotPorts: { blue: number; green: number };
  /** Added to server.env (e.g. pip's CA bundle). */
  serverEnv?: Record<string, string>;
  /** How long the health gate waits for a new slot (default 60 s). */
  healthTimeoutSeconds?: number;
  /** Extra top-level config keys (without the project prefix). */
  extra?: Record<string, unknown>;
}

/** What IACT needs in its .env besides DATABASE_URL, set as the stack secret `appSecrets`. */
export interface IactSecrets {
  secretKey: string;
  smokePassword: string;
  /** redis://:password@host:port/0: Django's cache and the Celery broker. */
  redisUrl: string;
}

/** The health checks of runbook 003 (PASO 4.1): /api/health with the version, the database, the cache. */
export const IACT_HEALTH_CHECKS = [
  { path: "/api/health", expect: { status: "healthy" }, versionField: "version" },
  { path: "/api/db-check", expect: { database: "connected" } },
  { path: "/api/cache-check", expect: { cache: "connected" } },
];

/** The smoke tests of runbook 003 (PASO 4.2): login → token → a protected endpoint. */
export const IACT_SMOKE = [
  {
    name: "login returns a token",
    method: "POST",
    path: "/api/auth/login",
    body: { username: "smoke", password: "${secret:smokePassword}" },
    expectFields: ["token"],
    captureToken: "token",
  },
  { name: "protected endpoint with the token", path: "/api/users/me", auth: true, expectValues: { username: "smoke" } },
  { name: "protected endpoint refuses no token", path: "/api/users/me", expectStatus: 401 },
];

/** The stack config of IACT on a local target (systemd host). */
export function iactConfig(o: IactStackOptions): Record<string, unknown> {
  return {
    server: targetServer(o.target, o.serverEnv),
    nginx: {
      ...targetNginx(o.target),
      routes: [
        { path: "/", app: "iact" },
        { path: "/api/", app: "iact" },
        { path: "/static/", app: "iact", static: "static" },
      ],
    },
    backup: { keep: 5 },
    apps: {
      iact: {
        repo: o.repo,
        ref: o.ref,
        kind: "python",
        manager: "systemd",
        build: "python manage.py collectstatic --noinput",
        migrate: "python manage.py migrate --noinput",
        migrateCheck: "python manage.py migrate --check",
        migrationFiles: "*/migrations/0*.py",
        start: "gunicorn iact.wsgi --bind 127.0.0.1:$PORT",
        ports: o.slotPorts,
        health: { checks: IACT_HEALTH_CHECKS, timeoutSeconds: o.healthTimeoutSeconds ?? 60 },
        workers: { "celery-worker": { command: "celery -A iact worker --loglevel=INFO", stopTimeoutSeconds: 60 } },
      },
    },
    smoke: IACT_SMOKE,
    ...o.extra,
  };
}

/** The stack's secrets: the SSH key, the database, the smoke login's password and IACT's .env secrets. */
export function iactSecrets(sshPrivateKey: string, databaseUrl: string, s: IactSecrets): Record<string, string> {
  return {
    sshPrivateKey,
    databaseUrl,
    smokeSecrets: JSON.stringify({ smokePassword: s.smokePassword }),
    appSecrets: JSON.stringify({ iact: { SECRET_KEY: s.secretKey, SMOKE_PASSWORD: s.smokePassword, REDIS_URL: s.redisUrl } }),
  };
}
