/**
 * What a deploy will do, for a reviewer: per app the version and commit it brings (and the ones it
 * replaces), what else changed on its way to the server (environment keys, config fields: names,
 * never values) and the steps that will run. Exported as the stack output `plan`, so `pulumi
 * preview` in a pull request shows it as a diff:
 *   `orchestrator: 1.2.2 (ab12cd34ef56) → 1.2.3 (0123456789ab): build, backup, migrate, …`
 *   `orchestrator: restart with new environment (JWT_SECRET, NODE_ENV changed): start + health check, switch`
 * Pure: config, SHAs and digests in, a plain object out.
 */
import { DeployConfig, versionOfRef, workerUnit } from "./config";
import { changedKeys } from "./digest";

export type PlanStep = "build" | "backup" | "migrate" | "start + health check" | "switch" | "workers";

/** Digests of what reaches an app's server beside its commit (components/deployment.ts). */
export interface PlanDigests {
  envKeys: Record<string, string>;
  configKeys: Record<string, string>;
}

export interface AppPlan {
  ref: string;
  sha: string;
  version?: string;
  /** What the stack served before this deploy (from its last outputs), when known. */
  previous?: { sha: string; version?: string };
  /** new: first deploy; upgrade: another commit; restart: same commit, new environment or config. */
  change: "new" | "upgrade" | "restart" | "unchanged";
  /** .env keys and config fields whose value changed since the last deploy (names only). */
  envChanged: string[];
  configChanged: string[];
  steps: PlanStep[];
  /** The processes this deploy starts anew: the web process (in the idle slot) and each worker. */
  restarts?: string[];
  /** Migration files this deploy brings (added since the serving commit; apps.<app>.migrationFiles). */
  migrations?: string[];
  /** Digests the next deploy compares with. */
  envKeys?: Record<string, string>;
  configKeys?: Record<string, string>;
  /** One line: `orchestrator: 1.2.2 (ab12cd34ef56) → 1.2.3 (0123456789ab): build, backup, migrate, …`. */
  summary: string;
}

export interface DeployPlan {
  stack: string;
  apps: Record<string, AppPlan>;
}

/** A previous deploy's app → { sha, version, digests }, as this module's own output holds it. */
export type PreviousApps = Record<
  string,
  { sha: string; version?: string; envKeys?: Record<string, string>; configKeys?: Record<string, string> }
>;

const short = (sha: string) => sha.slice(0, 12);
const label = (v: { sha: string; version?: string }) => (v.version ? `${v.version} (${short(v.sha)})` : short(v.sha));

/**
 * The plan of a deploy of `config` at `shas` (app → resolved commit) with `digests` (unknown at a
 * first preview), over `previous` (the last deploy's; none: every app is listed as new), with
 * `migrations` (app → the migration files its new commit adds, or why they are not known).
 */
export function deployPlan(
  config: DeployConfig,
  shas: Record<string, string>,
  digests: Record<string, PlanDigests> = {},
  previous?: PreviousApps,
  migrations: Record<string, string[] | string> = {},
): DeployPlan {
  const apps: Record<string, AppPlan> = {};
  for (const app of config.apps) {
    const sha = shas[app.name];
    const before = previous?.[app.name];
    const now = digests[app.name];
    // APP_VERSION follows the version, which the summary shows already; likewise ref and version.
    const envChanged = now ? changedKeys(before?.envKeys, now.envKeys).filter((k) => k !== "APP_VERSION") : [];
    const configChanged = now ? changedKeys(before?.configKeys, now.configKeys).filter((k) => k !== "ref" && k !== "version") : [];
    const change = !before
      ? "new"
      : before.sha !== sha
        ? "upgrade"
        : envChanged.length + configChanged.length > 0
          ? "restart"
          : "unchanged";
    const steps: PlanStep[] = [];
    if (change !== "unchanged") {
      if (change !== "restart") steps.push("build");
      // Migrations run again for a new commit, or against a new database.
      if (app.migrate && (change !== "restart" || envChanged.includes("DATABASE_URL"))) {
        if (config.backup.enabled) steps.push("backup");
        steps.push("migrate");
      }
      if (app.kind !== "static") steps.push("start + health check");
      steps.push("switch");
      if (app.workers.length > 0) steps.push("workers");
    }
    const version = app.version ?? versionOfRef(app.ref);
    const current = { sha, version };
    const why = [
      envChanged.length > 0 ? `new environment (${envChanged.join(", ")} changed)` : "",
      configChanged.length > 0 ? `new config (${configChanged.join(", ")} changed)` : "",
    ]
      .filter(Boolean)
      .join(", ");
    const what = !before
      ? `new: ${label(current)}`
      : change === "upgrade"
        ? `${label(before)} → ${label(current)}${why ? `, ${why}` : ""}`
        : change === "restart"
          ? `${label(current)}, restart with ${why}`
          : `${label(current)}, unchanged`;
    const restarts = [
      ...(steps.includes("start + health check") ? [`${app.name} web (idle slot)`] : []),
      ...(steps.includes("workers") ? app.workers.map((w) => workerUnit(app.name, w.name)) : []),
    ];
    const added = steps.includes("migrate") ? migrations[app.name] : undefined;
    const migrationText =
      added === undefined
        ? ""
        : typeof added === "string"
          ? `; migrations: ${added}`
          : `; migrations ${added.length ? added.join(", ") : "none new"}`;
    apps[app.name] = {
      ref: app.ref,
      sha,
      ...(version ? { version } : {}),
      ...(before ? { previous: { sha: before.sha, ...(before.version ? { version: before.version } : {}) } } : {}),
      change,
      envChanged,
      configChanged,
      steps,
      ...(now ? { envKeys: now.envKeys, configKeys: now.configKeys } : {}),
      ...(restarts.length > 0 ? { restarts } : {}),
      ...(Array.isArray(added) ? { migrations: added } : {}),
      summary: `${app.name}: ${what}${steps.length > 0 ? `: ${steps.join(", ")}` : ""}${restarts.length > 0 ? `; restarts ${restarts.join(", ")}` : ""}${migrationText}`,
    };
  }
  return { stack: config.stack, apps };
}

/** The previous deploy's apps from this stack's last `plan` output (anything else: none). */
export function previousOf(lastPlan: unknown): PreviousApps | undefined {
  const apps = (lastPlan as { apps?: Record<string, Record<string, unknown>> } | undefined)?.apps;
  if (!apps || typeof apps !== "object") return undefined;
  const isMap = (v: unknown): v is Record<string, string> => !!v && typeof v === "object" && !Array.isArray(v);
  const out: PreviousApps = {};
  for (const [name, a] of Object.entries(apps)) {
    if (typeof a?.sha !== "string") continue;
    out[name] = {
      sha: a.sha,
      ...(typeof a.version === "string" ? { version: a.version } : {}),
      ...(isMap(a.envKeys) ? { envKeys: a.envKeys } : {}),
      ...(isMap(a.configKeys) ? { configKeys: a.configKeys } : {}),
    };
  }
  return out;
}
