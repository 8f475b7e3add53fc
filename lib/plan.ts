/**
 * What a deploy will do, for a reviewer: per app the version and commit it brings (and the ones it
 * replaces), and the steps that will run. Exported as the stack output `plan`, so `pulumi preview`
 * in a pull request shows it as a diff (`1.2.2 (ab12cd34ef56) → 1.2.3 (0123456789ab)`).
 * Pure: config and SHAs in, a plain object out.
 */
import { DeployConfig, versionOfRef } from "./config";

export type PlanStep = "build" | "backup" | "migrate" | "start + health check" | "switch";

export interface AppPlan {
  ref: string;
  sha: string;
  version?: string;
  /** What the stack served before this deploy (from its last outputs), when known. */
  previous?: { sha: string; version?: string };
  /** new: first deploy of the app; upgrade: another commit; unchanged: nothing runs for it. */
  change: "new" | "upgrade" | "unchanged";
  steps: PlanStep[];
  /** One line: `orchestrator: 1.2.2 (ab12cd34ef56) → 1.2.3 (0123456789ab): build, backup, migrate, …`. */
  summary: string;
}

export interface DeployPlan {
  stack: string;
  apps: Record<string, AppPlan>;
}

/** A previous deploy's app → { sha, version }, as this module's own output holds it. */
export type PreviousShas = Record<string, { sha: string; version?: string }>;

const short = (sha: string) => sha.slice(0, 12);
const label = (v: { sha: string; version?: string }) => (v.version ? `${v.version} (${short(v.sha)})` : short(v.sha));

/**
 * The plan of a deploy of `config` at `shas` (app → resolved commit), over `previous` (the last
 * deploy's; none: every app is listed as new). An app whose commit is unchanged runs nothing.
 */
export function deployPlan(config: DeployConfig, shas: Record<string, string>, previous?: PreviousShas): DeployPlan {
  const apps: Record<string, AppPlan> = {};
  for (const app of config.apps) {
    const sha = shas[app.name];
    const before = previous?.[app.name];
    const change = !before ? "new" : before.sha === sha ? "unchanged" : "upgrade";
    const steps: PlanStep[] = [];
    if (change !== "unchanged") {
      steps.push("build");
      if (app.migrate) {
        if (config.backup.enabled) steps.push("backup");
        steps.push("migrate");
      }
      if (app.kind === "node") steps.push("start + health check");
      steps.push("switch");
    }
    const version = app.version ?? versionOfRef(app.ref);
    const now = { sha, version };
    const what = before ? (change === "unchanged" ? `${label(now)}, unchanged` : `${label(before)} → ${label(now)}`) : `new: ${label(now)}`;
    apps[app.name] = {
      ref: app.ref,
      sha,
      ...(version ? { version } : {}),
      ...(before ? { previous: before } : {}),
      change,
      steps,
      summary: `${app.name}: ${what}${steps.length > 0 ? `: ${steps.join(", ")}` : ""}`,
    };
  }
  return { stack: config.stack, apps };
}

/** The previous deploy's SHAs from this stack's last `plan` output (anything else: none). */
export function previousShasOf(lastPlan: unknown): PreviousShas | undefined {
  const apps = (lastPlan as { apps?: Record<string, { sha?: unknown; version?: unknown }> } | undefined)?.apps;
  if (!apps || typeof apps !== "object") return undefined;
  const out: PreviousShas = {};
  for (const [name, a] of Object.entries(apps)) {
    if (typeof a?.sha === "string") out[name] = { sha: a.sha, ...(typeof a.version === "string" ? { version: a.version } : {}) };
  }
  return out;
}
