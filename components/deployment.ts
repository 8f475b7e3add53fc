import * as pulumi from "@pulumi/pulumi";
import { DeployConfig, appSecretValues, smokeSecretRefs, smokeSecretsLine } from "../lib/config";
import { entryDigests, hmacHex } from "../lib/digest";
import { envEntries, renderEnvFile, sha256 } from "../lib/scripts";
import { COMPONENT_TYPE, STEP } from "../lib/steps";
import { AppRelease } from "./appRelease";
import { Command } from "./command";
import { DatabaseBackup } from "./databaseBackup";
import { DeployRecord } from "./deployRecord";
import { GeneratedSecret } from "./generatedSecret";
import { Migration } from "./migration";
import { ConfigBackupInfo, Server } from "./server";
import { Service } from "./service";
import { Workers } from "./workers";
import { Cutover, CutoverApp } from "./cutover";
import { NginxSite } from "./nginxSite";
import { Notification } from "./notification";
import { notificationPayload } from "../lib/notify";
import { redactionList } from "../lib/redact";
import { BakeVerdict, bakeSummary } from "../lib/scripts/bake";
import { HostOutputs, deployFleet } from "./fleet";

export interface DeploymentArgs {
  readonly config: DeployConfig;
  /** app → commit SHA its ref resolved to. */
  readonly shas: Record<string, string>;
  readonly sshPrivateKey: pulumi.Input<string>;
  readonly databaseUrl?: pulumi.Input<string>;
  /** JWT secret for the apps; generated once and kept in the state when absent. */
  readonly jwtSecret?: pulumi.Input<string>;
  /** Who runs the deploy (user@host), for the journal. */
  readonly deployer: string;
  /** The secret `smokeSecrets` (JSON: name → value) the smoke steps' placeholders name. */
  readonly smokeSecrets?: pulumi.Input<string>;
  /** The secret `appSecrets` (JSON: app → { ENV_KEY: value }), merged into each app's .env. */
  readonly appSecrets?: pulumi.Input<string>;
  /** Slack-compatible incoming webhook (secret), told of the deploy's start and success. */
  readonly notifyWebhookUrl?: pulumi.Input<string>;
  /** This update's lease on the server lock (`<stack>/<unique id>`), new on every run. */
  readonly lease: string;
}

export interface AppOutputs {
  ref: string;
  sha: string;
  version?: string;
  slot?: string;
  changelog: string[];
}

/** What reaches an app's server beside its commit, as digests (values never leave the secret path). */
export interface AppDigests {
  /** Of the whole .env: re-runs the steps that use it. */
  env: string;
  /** Per .env key, and per app config field: the plan names what changed. */
  envKeys: Record<string, string>;
  configKeys: Record<string, string>;
}

/**
 * One deploy of the whole system:
 * server (preflight, lock) → config backup (before anything changes nginx, units or .env) →
 * database backup → per app: release → migration → new slot + health gate
 * → cutover (verify every app, switch every app, smoke tests, switch back on failure) → workers
 * (started on the new release, the old ones stopped gracefully) → journal
 * line (and unlock). Each app's desired state is its commit plus the digest of its .env and of
 * its config; a change of any of it goes through the same lock, gate, cutover and journal.
 */
// A component's dependsOn does not reach its children: each component passes it on to its steps.
export class Deployment extends pulumi.ComponentResource {
  readonly apps: pulumi.Output<Record<string, AppOutputs>>;
  readonly digests: pulumi.Output<Record<string, AppDigests>>;
  readonly backup?: pulumi.Output<unknown>;
  /** The archive of the server's config as it was before this deploy changed it. */
  readonly configBackup: pulumi.Output<ConfigBackupInfo>;
  readonly smokePassed: pulumi.Output<string[]>;
  /** The bake's verdict and figures (none when no bake ran). */
  readonly bake: pulumi.Output<BakeVerdict | undefined>;
  readonly url: string;
  /** The journal lines' steps (one per host), the deploy's last: what runs after a successful deploy waits for them. */
  readonly recorded: pulumi.Resource[];
  /** Per host of a fleet: roles, slots, batch and what its cutover did (none for a single server). */
  readonly hosts?: pulumi.Output<Record<string, HostOutputs>>;

  constructor(name: string, args: DeploymentArgs, opts?: pulumi.ComponentResourceOptions) {
    super(COMPONENT_TYPE.deployment, name, {}, opts);
    const { config, shas } = args;
    const child = { parent: this };
    const jwtSecret = args.jwtSecret ?? new GeneratedSecret(`${name}-jwt-secret`, { bytes: 48 }, child).value;
    const digestKey = new GeneratedSecret(`${name}-digest-key`, { bytes: 32 }, child).value;

    // Per app: the rendered .env (secret) and the digests of what reaches its server.
    const envFiles: Record<string, pulumi.Output<string>> = {};
    const digests: Record<string, pulumi.Output<AppDigests>> = {};
    for (const app of config.apps) {
      const database = app.usesDatabase ? pulumi.all({ DATABASE_URL: args.databaseUrl!, JWT_SECRET: jwtSecret }) : pulumi.output({});
      const secrets = pulumi
        .all([database, pulumi.output(args.appSecrets)])
        .apply(([d, json]) => ({ ...appSecretValues(json, app.name), ...(d as Record<string, string>) }));
      const entries = secrets.apply((s) => envEntries(app, s as Record<string, string>));
      envFiles[app.name] = pulumi.secret(secrets.apply((s) => renderEnvFile(app, s as Record<string, string>)));
      const { env: _env, ...appConfig } = app;
      digests[app.name] = pulumi.unsecret(
        pulumi.all([digestKey, entries, envFiles[app.name]]).apply(([key, e, file]) => ({
          env: hmacHex(key, file).slice(0, 32),
          envKeys: entryDigests(key, e),
          configKeys: entryDigests(key, appConfig),
        })),
      );
    }
    const envDigest = (app: string) => digests[app].apply((d) => d.env);
    // Migrations run again for a new commit or a new database, not for every rotated secret.
    const databaseDigest = (app: string) => digests[app].apply((d) => d.envKeys.DATABASE_URL ?? "");
    // Only the smoke secrets the steps name reach the server (cutover stdin); a change of them, seen
    // by its keyed digest, runs the cutover again through the lock and the journal.
    const smokeNames = smokeSecretRefs(config.smoke);
    const smokeStdin = pulumi.secret(pulumi.output(args.smokeSecrets).apply((json) => smokeSecretsLine(smokeNames, json)));
    const smokeDigest = pulumi.unsecret(pulumi.all([digestKey, smokeStdin]).apply(([key, line]) => hmacHex(key, line).slice(0, 32)));
    const desired = pulumi
      .all([pulumi.all(digests), pulumi.output(shas), smokeNames.length > 0 ? smokeDigest : ""])
      .apply(([d, s, smoke]) =>
        sha256(
          JSON.stringify({
            shas: s,
            env: Object.fromEntries(Object.entries(d).map(([n, v]) => [n, v.env])),
            config,
            ...(smoke ? { smoke } : {}),
          }),
        ),
      );

    // Every secret value of the config, hidden wherever a step's output shows it (a log line, an answer).
    const redact = pulumi
      .all([args.databaseUrl, jwtSecret, args.appSecrets, args.smokeSecrets, args.notifyWebhookUrl])
      .apply(([databaseUrl, jwt, appJson, smokeJson, webhook]) =>
        redactionList([
          databaseUrl,
          jwt,
          webhook,
          ...Object.values((appJson ? JSON.parse(appJson) : {}) as Record<string, Record<string, string>>).flatMap((v) => Object.values(v)),
          ...Object.values((smokeJson ? JSON.parse(smokeJson) : {}) as Record<string, string>),
        ]),
      );
    if (config.fleet) {
      const f = deployFleet(this, name, {
        config,
        shas,
        sshPrivateKey: args.sshPrivateKey,
        databaseUrl: args.databaseUrl,
        lease: args.lease,
        deployer: args.deployer,
        desired,
        redact,
        envFiles,
        envDigest,
        databaseDigest,
        ...(smokeNames.length > 0 ? { smokeSecrets: { stdin: smokeStdin, digest: smokeDigest } } : {}),
      });
      this.apps = pulumi.all(
        Object.fromEntries(
          config.apps.map((app) => [
            app.name,
            pulumi
              .all([f.changelogs[app.name], f.slots[app.name]])
              .apply(([changelog, slot]) => ({ ref: app.ref, sha: shas[app.name], version: app.version, slot, changelog })),
          ]),
        ),
      );
      this.digests = pulumi.all(digests);
      this.backup = f.backup;
      this.configBackup = f.configBackup;
      this.smokePassed = f.smokePassed;
      this.bake = f.bake;
      this.hosts = f.hosts;
      this.recorded = f.records.map((r) => r.step);
      const lb = config.fleet.loadBalancer;
      this.url = lb ? `http://${lb.server.host}:${lb.port}/` : `http://${config.server.host}:${config.nginx.port}/`;
      this.notify(name, args, desired, f.locked, f.records[0], this.bake);
      this.registerOutputs({
        apps: this.apps,
        hosts: this.hosts,
        backup: this.backup,
        configBackup: this.configBackup,
        smokePassed: this.smokePassed,
        bake: this.bake,
        url: this.url,
      });
      return;
    }
    const server = new Server(`${name}-server`, { config, privateKey: args.sshPrivateKey, lease: args.lease, desired, redact }, child);
    const target = server.target;
    // After the lock step, which archived the server's config as it was (components/server.ts).
    const after = { parent: this, dependsOn: [server.locked] };

    const migrating = config.apps.filter((a) => a.migrate);
    const backup =
      config.backup.enabled && migrating.length > 0
        ? new DatabaseBackup(
            `${name}-backup`,
            {
              target,
              databaseUrl: args.databaseUrl!,
              before: pulumi.all(
                Object.fromEntries(migrating.map((a) => [a.name, pulumi.interpolate`${shas[a.name]}:${databaseDigest(a.name)}`])),
              ),
              shas: Object.fromEntries(migrating.map((a) => [a.name, shas[a.name]])),
            },
            after,
          )
        : undefined;

    const site = config.nginx.routes.length > 0 ? new NginxSite(`${name}-nginx`, { target }, after) : undefined;
    const steps: Command[] = [server.locked, ...(backup ? [backup.step] : []), ...(site ? [site.step] : [])];
    const ready: pulumi.Resource[] = site ? [site.step] : [];
    const cutoverApps: CutoverApp[] = [];
    const appOutputs: Record<string, pulumi.Output<AppOutputs>> = {};
    for (const app of config.apps) {
      const sha = shas[app.name];
      const release = new AppRelease(`${name}-${app.name}-release`, { target, app, sha, envFile: envFiles[app.name] }, after);
      steps.push(release.step);
      let last: Command = release.step;
      if (app.migrate) {
        last = new Migration(
          `${name}-${app.name}-migration`,
          { target, app, sha, databaseDigest: databaseDigest(app.name), backupPath: backup?.info.path },
          { parent: this, dependsOn: [release.step, ...(backup ? [backup.step] : [])] },
        ).step;
        steps.push(last);
      }
      let service: Service | undefined;
      if (app.kind !== "static") {
        service = new Service(
          `${name}-${app.name}-service`,
          { target, app, sha, envDigest: envDigest(app.name) },
          { parent: this, dependsOn: [last] },
        );
        last = service.step;
        steps.push(last);
      }
      ready.push(last);
      cutoverApps.push({ app, sha, envDigest: envDigest(app.name), slot: service?.slot, port: service?.port });
      appOutputs[app.name] = pulumi.all([release.changelog, service?.slot]).apply(([changelog, slot]) => ({
        ref: app.ref,
        sha,
        version: app.version,
        slot,
        changelog,
      }));
    }

    const cutover = new Cutover(
      `${name}-cutover`,
      { target, apps: cutoverApps, ...(smokeNames.length > 0 ? { smokeSecrets: { stdin: smokeStdin, digest: smokeDigest } } : {}) },
      { parent: this, dependsOn: ready },
    );
    steps.push(cutover.step);
    // Workers (no port) move to the new release once web traffic has: each old one stopped
    // gracefully first, so no task runs on code that no longer serves, before the record.
    const workerSteps = config.apps
      .filter((app) => app.workers.length > 0)
      .map(
        (app) =>
          new Workers(
            `${name}-${app.name}-workers`,
            { target, app, sha: shas[app.name], envDigest: envDigest(app.name) },
            { parent: this, dependsOn: [cutover.step] },
          ).step,
      );
    steps.push(...workerSteps);
    this.apps = pulumi.all(appOutputs);
    this.digests = pulumi.all(digests);
    this.backup = backup?.info;
    this.configBackup = server.configBackup;
    const entry = pulumi.all([this.apps, backup?.info, cutover.serving, cutover.bake]).apply(([apps, b, serving, bake]) => ({
      stack: config.stack,
      deployer: args.deployer,
      result: "succeeded",
      apps: Object.fromEntries(Object.entries(apps).map(([n, a]) => [n, { ref: a.ref, sha: a.sha, version: a.version, slot: a.slot }])),
      serving,
      backup: b?.path ?? null,
      ...(bake ? { bake } : {}),
    }));
    const record = new DeployRecord(
      `${name}-record`,
      { target, entry, steps },
      { parent: this, dependsOn: [cutover.step, ...workerSteps] },
    );
    this.recorded = [record.step];
    this.url = `http://${config.server.host}:${config.nginx.port}/`;
    this.notify(name, args, desired, server.locked, record, cutover.bake);
    this.smokePassed = cutover.smokePassed;
    this.bake = cutover.bake;
    this.registerOutputs({
      apps: this.apps,
      backup: this.backup,
      configBackup: this.configBackup,
      smokePassed: this.smokePassed,
      bake: this.bake,
      url: this.url,
    });
  }

  /** The start and success notifications, when a webhook is set. */
  private notify(
    name: string,
    args: DeploymentArgs,
    desired: pulumi.Output<string>,
    locked: Command,
    record: DeployRecord,
    bakeVerdict: pulumi.Output<BakeVerdict | undefined>,
  ): void {
    const { config } = args;
    if (args.notifyWebhookUrl) {
      const versions = Object.fromEntries(config.apps.map((a) => [a.name, a.version ?? a.ref]));
      const common = { stack: config.stack, versions, by: args.deployer, url: this.url };
      new Notification(
        `${name}-notify-start`,
        {
          kind: STEP.notifyStart,
          webhookUrl: args.notifyWebhookUrl,
          payload: notificationPayload({ kind: "start", ...common }),
          triggers: [desired],
        },
        { parent: this, dependsOn: [locked] },
      );
      const done = pulumi.all([record.durationSeconds, this.apps, bakeVerdict]).apply(([durationSeconds, apps, bake]) =>
        notificationPayload({
          kind: "success",
          ...common,
          durationSeconds,
          ...(bake ? { bake: bakeSummary(bake) } : {}),
          changelog: Object.fromEntries(Object.entries(apps).map(([n, a]) => [n, a.changelog])),
        }),
      );
      new Notification(
        `${name}-notify-success`,
        {
          kind: STEP.notifySuccess,
          webhookUrl: args.notifyWebhookUrl,
          payload: done,
          triggers: [record.step.result.apply((r) => JSON.stringify(r))],
        },
        { parent: this, dependsOn: [record.step] },
      );
    }
  }
}
