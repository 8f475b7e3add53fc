import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../lib/config";
import { renderEnvFile } from "../lib/scripts";
import { AppRelease } from "./appRelease";
import { DatabaseBackup } from "./databaseBackup";
import { DeployRecord } from "./deployRecord";
import { GeneratedSecret } from "./generatedSecret";
import { Migration } from "./migration";
import { Server } from "./server";
import { Service } from "./service";
import { Cutover, CutoverApp } from "./cutover";
import { NginxSite } from "./nginxSite";
import { Notification } from "./notification";
import { notificationPayload } from "../lib/notify";

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
  /** Slack-compatible incoming webhook (secret), told of the deploy's start and success. */
  readonly notifyWebhookUrl?: pulumi.Input<string>;
}

export interface AppOutputs {
  ref: string;
  sha: string;
  version?: string;
  slot?: string;
  changelog: string[];
}

/**
 * One deploy of the whole system:
 * server (preflight, lock) → backup → per app: release → migration → new slot + health gate
 * → cutover (switch every app, smoke tests, switch back on failure) → journal line (and unlock).
 */
// A component's dependsOn does not reach its children: each component passes it on to its steps.
export class Deployment extends pulumi.ComponentResource {
  readonly apps: pulumi.Output<Record<string, AppOutputs>>;
  readonly backup?: pulumi.Output<unknown>;
  readonly smokePassed: pulumi.Output<string[]>;
  readonly url: string;

  constructor(name: string, args: DeploymentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nostromo:deployment:Deployment", name, {}, opts);
    const { config, shas } = args;
    const child = { parent: this };
    const server = new Server(`${name}-server`, { config, privateKey: args.sshPrivateKey, refs: shas }, child);
    const connection = server.connection;

    const migrating = config.apps.filter((a) => a.migrate);
    const backup =
      config.backup.enabled && migrating.length > 0
        ? new DatabaseBackup(
            `${name}-backup`,
            {
              config,
              connection,
              databaseUrl: args.databaseUrl!,
              before: Object.fromEntries(migrating.map((a) => [a.name, shas[a.name]])),
            },
            { parent: this, dependsOn: [server.locked] },
          )
        : undefined;

    const jwtSecret = args.jwtSecret ?? new GeneratedSecret(`${name}-jwt-secret`, { bytes: 48 }, child).value;
    const site = config.nginx.site
      ? new NginxSite(`${name}-nginx`, { config, connection }, { parent: this, dependsOn: [server.locked] })
      : undefined;

    const ready: pulumi.Resource[] = site ? [site.step] : [];
    const cutoverApps: CutoverApp[] = [];
    const appOutputs: Record<string, pulumi.Output<AppOutputs>> = {};
    for (const app of config.apps) {
      const sha = shas[app.name];
      const envFile = pulumi.secret(
        app.usesDatabase
          ? pulumi
              .all([args.databaseUrl!, jwtSecret])
              .apply(([DATABASE_URL, JWT_SECRET]) => renderEnvFile(app, { DATABASE_URL, JWT_SECRET }))
          : pulumi.output(renderEnvFile(app, {})),
      );
      const release = new AppRelease(
        `${name}-${app.name}-release`,
        { config, app, connection, sha, envFile },
        { parent: this, dependsOn: [server.locked] },
      );
      let last: pulumi.Resource = release.step;
      if (app.migrate) {
        last = new Migration(
          `${name}-${app.name}-migration`,
          { config, app, connection, sha, backupPath: backup?.info.path },
          { parent: this, dependsOn: [release.step, ...(backup ? [backup.step] : [])] },
        ).step;
      }
      let service: Service | undefined;
      if (app.kind === "node") {
        service = new Service(`${name}-${app.name}-service`, { config, app, connection, sha }, { parent: this, dependsOn: [last] });
        last = service.step;
      }
      ready.push(last);
      cutoverApps.push({ app, sha, slot: service?.slot, port: service?.port });
      appOutputs[app.name] = pulumi.all([release.changelog, service?.slot]).apply(([changelog, slot]) => ({
        ref: app.ref,
        sha,
        version: app.version,
        slot,
        changelog,
      }));
    }

    const cutover = new Cutover(`${name}-cutover`, { config, connection, apps: cutoverApps }, { parent: this, dependsOn: ready });
    this.apps = pulumi.all(appOutputs);
    this.backup = backup?.info;
    const entry = pulumi.all([this.apps, backup?.info]).apply(([apps, b]) => ({
      stack: config.stack,
      deployer: args.deployer,
      result: "succeeded",
      apps: Object.fromEntries(Object.entries(apps).map(([n, a]) => [n, { ref: a.ref, sha: a.sha, version: a.version, slot: a.slot }])),
      backup: b?.path ?? null,
    }));
    const record = new DeployRecord(
      `${name}-record`,
      { config, connection, entry, refs: shas },
      { parent: this, dependsOn: [cutover.step] },
    );
    if (args.notifyWebhookUrl) {
      const versions = Object.fromEntries(config.apps.map((a) => [a.name, a.version ?? a.ref]));
      const common = { stack: config.stack, versions, by: args.deployer, url: `http://${config.server.host}:${config.nginx.port}/` };
      const triggers = [JSON.stringify(shas)];
      new Notification(
        `${name}-notify-start`,
        { webhookUrl: args.notifyWebhookUrl, payload: notificationPayload({ kind: "start", ...common }), triggers },
        { parent: this, dependsOn: [server.locked] },
      );
      const done = pulumi.all([record.durationSeconds, this.apps]).apply(([durationSeconds, apps]) =>
        notificationPayload({
          kind: "success",
          ...common,
          durationSeconds,
          changelog: Object.fromEntries(Object.entries(apps).map(([n, a]) => [n, a.changelog])),
        }),
      );
      new Notification(
        `${name}-notify-success`,
        { webhookUrl: args.notifyWebhookUrl, payload: done, triggers },
        { parent: this, dependsOn: [record.step] },
      );
    }
    this.smokePassed = cutover.smokePassed;
    this.url = `http://${config.server.host}:${config.nginx.port}/`;
    this.registerOutputs({ apps: this.apps, backup: this.backup, smokePassed: this.smokePassed, url: this.url });
  }
}
