import { randomBytes } from "crypto";
import * as os from "os";
import * as pulumi from "@pulumi/pulumi";
import { Deployment, PlanRecord } from "./components";
import {
  APP_SECRETS_KEY,
  ConfigError,
  SMOKE_SECRETS_KEY,
  appSecretNames,
  parseDeployConfig,
  projectConfig,
  smokeSecretNames,
} from "./lib/config";
import { addedFiles, resolveRef } from "./lib/git";
import { deployPlan, PreviousApps, previousOf } from "./lib/plan";

// Config is read and validated once, before any resource exists: a bad value stops preview here.
const cfg = new pulumi.Config();
const sshPrivateKey = cfg.getSecret("sshPrivateKey");
const databaseUrl = cfg.getSecret("databaseUrl");
const jwtSecret = cfg.getSecret("jwtSecret");
const notifyWebhookUrl = cfg.getSecret("notifyWebhookUrl");
const smokeSecrets = cfg.getSecret(SMOKE_SECRETS_KEY);
const appSecrets = cfg.getSecret(APP_SECRETS_KEY);

function load() {
  try {
    // Every key of this project's namespace, so a mistyped one (`smok:`) is refused, not ignored.
    const all = pulumi.runtime.allConfig();
    const raw = projectConfig(pulumi.getProject(), all);
    const config = parseDeployConfig(pulumi.getStack(), raw, {
      sshPrivateKey: !!sshPrivateKey,
      databaseUrl: !!databaseUrl,
      // Names only: the smoke steps' placeholders are checked against them; the values stay secret.
      smokeSecrets: smokeSecretNames(all[`${pulumi.getProject()}:${SMOKE_SECRETS_KEY}`]),
      appSecrets: appSecretNames(all[`${pulumi.getProject()}:${APP_SECRETS_KEY}`]),
    });
    const shas: Record<string, string> = {};
    for (const app of config.apps) {
      try {
        shas[app.name] = resolveRef(app.repo, app.ref);
      } catch (err) {
        throw new ConfigError([`apps.${app.name}.ref: ${(err as Error).message}`]);
      }
    }
    return { config, shas };
  } catch (err) {
    if (err instanceof ConfigError) throw new pulumi.RunError(err.message);
    throw err;
  }
}

const { config, shas } = load();
// This run's hold on the server lock: every step checks it, so nothing changes a server without
// this update holding its lock (a retry takes it again).
const lease = `${pulumi.getStack()}/${new Date().toISOString()}-${randomBytes(4).toString("hex")}`;
const deployment = new Deployment("nostromo", {
  config,
  shas,
  sshPrivateKey: sshPrivateKey!,
  databaseUrl,
  jwtSecret,
  deployer: `${os.userInfo().username}@${os.hostname()}`,
  notifyWebhookUrl,
  smokeSecrets,
  appSecrets,
  lease,
});

export const url = deployment.url;
export const apps = deployment.apps;
export const backup = deployment.backup;
export const configBackup = deployment.configBackup;
export const smokeTests = deployment.smokePassed;
/** Per host of a fleet (`hosts`): roles, address, slots, its batch and what its cutover did; null for a single server. */
export const hosts = deployment.hosts ?? null;
/** The bake window's verdict and figures (requests, 5xx rate, p95 before/after), when one ran. */
// null, not undefined: the engine warns of an undefined output on every update without a bake.
export const bake = deployment.bake.apply((b) => b ?? null);
// What this deploy brings and runs, per app, and why, beside what the stack's last successful
// deploy brought (kept in the state by PlanRecord, written after the journal line): a new commit,
// environment keys or config fields (names only), and the migration files it adds.
const record = new PlanRecord(
  "nostromo-plan",
  { current: deployment.digests.apply((digests) => previousOf(deployPlan(config, shas, digests))!), lease },
  { dependsOn: deployment.recorded },
);
export const plan = pulumi
  .all([record.since(lease), deployment.digests])
  .apply(([previous, digests]) => deployPlan(config, shas, digests, previous, newMigrations(previous)));

/** Per app with migrationFiles and a new commit: the migration files it adds (read from its repo). */
function newMigrations(previous: PreviousApps | undefined): Record<string, string[] | string> {
  const out: Record<string, string[] | string> = {};
  for (const app of config.apps) {
    const from = previous?.[app.name]?.sha;
    if (!app.migrationFiles || from === shas[app.name]) continue;
    try {
      out[app.name] = addedFiles(app.repo, from, shas[app.name], app.migrationFiles);
    } catch (err) {
      out[app.name] = `not known (${(err as Error).message.split("\n")[0]})`;
    }
  }
  return out;
}
