// The `local` stack (and the tests' stacks): its config for the example system on a local target,
// and its stack file at the project root.
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { TempBackend, REPO_ROOT, RunResult } from "./backend";
import { LocalTarget } from "./target";

/** What the stack config needs of a target: the PM2 LocalTarget or the SystemdHost. */
export interface StackTarget {
  root: string;
  ssh: Pick<LocalTarget["ssh"], "port" | "user" | "hostKey"> & { host?: string };
  nginx: Pick<LocalTarget["nginx"], "port" | "sitesDir" | "reloadCommand" | "testCommand"> & { errorLog?: string };
  binPath: string[];
  env: Record<string, string>;
}

export interface LocalStackOptions {
  target: StackTarget;
  /** Service manager of Orchestrator (default pm2). */
  manager?: "pm2" | "systemd";
  databaseUrl: string;
  repos: { orchestrator: string; sevastopol: string };
  refs: { orchestrator: string; sevastopol: string };
  /** Free loopback ports for Orchestrator's two slots. */
  slotPorts: { blue: number; green: number };
  /** Extra top-level config keys (without the project prefix). */
  extra?: Record<string, unknown>;
  /**
   * Sevastopol as runbook 000 runs it: a PM2 web process (`npm start`, its server-rendered page)
   * on these slot ports, routed at / (with /api/ and /health to Orchestrator). Default: static files.
   */
  sevastopolWeb?: { blue: number; green: number };
}

/**
 * The smoke login's secrets (the example app's demo password, set by its first migration), set as
 * the stack secret `smokeSecrets`: the smoke steps name them as `${secret:NAME}`.
 */
export const LOCAL_SMOKE_SECRETS = { smokePassword: "special-order-937" };

/** The secrets every local stack sets: the smoke login's ones, as the secret `smokeSecrets`. */
export function localSecrets(
  sshPrivateKey: string,
  databaseUrl: string,
): { sshPrivateKey: string; databaseUrl: string; smokeSecrets: string } {
  return { sshPrivateKey, databaseUrl, smokeSecrets: JSON.stringify(LOCAL_SMOKE_SECRETS) };
}

/** The `server` config of a local target (SSH on loopback, its PATH and environment). */
export function targetServer(t: StackTarget, env: Record<string, string> = {}): Record<string, unknown> {
  return {
    host: t.ssh.host ?? "127.0.0.1",
    port: t.ssh.port,
    user: t.ssh.user,
    root: t.root,
    hostKey: t.ssh.hostKey,
    path: t.binPath,
    env: { ...t.env, ...env },
    minFreeMiB: 64,
  };
}

/** The `nginx` config of a local target, without what it serves (site or routes). */
export function targetNginx(t: StackTarget): Record<string, unknown> {
  return {
    port: t.nginx.port,
    // A fleet host's nginx answers on its address and its own loopback (where the smoke steps ask).
    listen: `${(t.ssh.host ?? "127.0.0.1") === "127.0.0.1" ? "127.0.0.1" : "0.0.0.0"}:${t.nginx.port}`,
    sitesDir: t.nginx.sitesDir,
    reloadCommand: t.nginx.reloadCommand,
    testCommand: t.nginx.testCommand,
    ...(t.nginx.errorLog ? { errorLog: t.nginx.errorLog } : {}),
  };
}

/** The stack config of a local deploy: the example system on the local target. */
export function localConfig(o: LocalStackOptions): Record<string, unknown> {
  return {
    server: targetServer(o.target),
    nginx: {
      ...targetNginx(o.target),
      ...(o.sevastopolWeb
        ? {
            routes: [
              { path: "/", app: "sevastopol" },
              { path: "/api/", app: "orchestrator" },
              { path: "/health", app: "orchestrator" },
            ],
          }
        : { site: { staticApp: "sevastopol", apiApp: "orchestrator" } }),
    },
    backup: { keep: 5 },
    apps: {
      orchestrator: {
        repo: o.repos.orchestrator,
        ref: o.refs.orchestrator,
        kind: "node",
        manager: o.manager ?? "pm2",
        install: "npm ci --no-audit --no-fund",
        build: "npm run build",
        migrate: "npm run migrate:production",
        migrateCheck: "npm run --silent migrate:check",
        migrationFiles: "migrations/*.sql",
        start: "node dist/server.js",
        ports: o.slotPorts,
        health: { path: "/health", expect: { status: "ok" }, versionField: "version", extraPaths: ["/health/db"], timeoutSeconds: 30 },
        env: { NODE_ENV: "production" },
      },
      sevastopol: {
        repo: o.repos.sevastopol,
        ref: o.refs.sevastopol,
        install: "npm ci --no-audit --no-fund",
        build: "npm run build",
        ...(o.sevastopolWeb
          ? {
              kind: "node",
              manager: "pm2",
              start: "npm start",
              ports: o.sevastopolWeb,
              health: { path: "/health", expect: { status: "ok" }, versionField: "version", timeoutSeconds: 30 },
            }
          : { kind: "static", output: "dist" }),
      },
    },
    smoke: [
      {
        name: "login returns a JWT",
        method: "POST",
        path: "/api/command/auth/login",
        body: { username: "admin", password: "${secret:smokePassword}" },
        expectFields: ["token"],
        captureToken: "token",
      },
      {
        name: "protected endpoint with the JWT",
        path: "/api/command/me",
        auth: true,
        expectValues: { username: "admin", tenant: "weyland" },
      },
      { name: "protected endpoint refuses no JWT", path: "/api/command/me", expectStatus: 401 },
      { name: "indicadores has UF and UTM", path: "/api/common/indicadores", expectFields: ["UF", "UTM"] },
      {
        name: "tenant query returns only that tenant",
        path: "/api/tenant/items",
        auth: true,
        expectEvery: { array: "items", field: "tenant", value: "weyland" },
      },
    ],
    ...o.extra,
  };
}

/**
 * Creates (or updates) a stack of the project at the repo root with this config, secrets set
 * through the CLI (never written in clear to the stack file).
 */
export function writeStack(backend: TempBackend, stack: string, config: Record<string, unknown>, secrets: Record<string, string>): void {
  const file = path.join(REPO_ROOT, `Pulumi.${stack}.yaml`);
  if (!fs.existsSync(file)) backend.pulumiOk(REPO_ROOT, ["stack", "init", stack]);
  setPlainConfig(stack, config);
  for (const [key, value] of Object.entries(secrets)) {
    backend.pulumiOk(REPO_ROOT, ["config", "set", "--secret", key, "--stack", stack], undefined, value);
  }
}

/** Rewrites the stack file's plain config, keeping its encryption salt and secrets. */
export function setPlainConfig(stack: string, config: Record<string, unknown>): void {
  const file = path.join(REPO_ROOT, `Pulumi.${stack}.yaml`);
  const doc = ((fs.existsSync(file) ? yaml.load(fs.readFileSync(file, "utf8")) : null) ?? {}) as { config?: Record<string, unknown> };
  doc.config = doc.config ?? {};
  for (const [k, v] of Object.entries(config)) doc.config[`nostromo-deploy:${k}`] = v;
  fs.writeFileSync(file, yaml.dump(doc));
}

export function removeStackFile(stack: string): void {
  fs.rmSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), { force: true });
}

export function outputOf(r: RunResult): string {
  return `${r.stdout}\n${r.stderr}`;
}
