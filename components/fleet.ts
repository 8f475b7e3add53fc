/**
 * The deploy of a fleet (`hosts`): what a single server does, per host, with the order a fleet
 * needs. Preflight and the lock on every host before anything changes anywhere; releases built
 * on every host side by side; the database backup and the migrations once, on the primary,
 * before any slot starts; the web hosts' switch in rolling batches through the load balancer
 * (FleetCutover); workers after every web host serves; the journal line (and unlock) per host.
 */
import * as pulumi from "@pulumi/pulumi";
import { DeployConfig, FleetHost } from "../lib/config";
import { appOnWeb, hostApps, hostConfig, workerHostsOf } from "../lib/config/fleet";
import { CutoverTarget } from "../lib/scripts";
import { BakeVerdict, fleetBakeVerdict, parseBakeVerdict } from "../lib/scripts/bake";
import { AppRelease } from "./appRelease";
import { Command } from "./command";
import { DatabaseBackup } from "./databaseBackup";
import { DeployRecord } from "./deployRecord";
import { FleetCutover, HostCutover } from "./fleetCutover";
import { LoadBalancer } from "./loadBalancer";
import { Migration } from "./migration";
import { NginxSite } from "./nginxSite";
import { ConfigBackupInfo, Server } from "./server";
import { Service } from "./service";
import { Workers } from "./workers";

export interface FleetArgs {
  readonly config: DeployConfig;
  readonly shas: Record<string, string>;
  readonly sshPrivateKey: pulumi.Input<string>;
  readonly databaseUrl?: pulumi.Input<string>;
  readonly lease: string;
  readonly deployer: string;
  /** Digest of all the deploy brings (Deployment's): a change takes every host's lock. */
  readonly desired: pulumi.Input<string>;
  readonly redact: pulumi.Input<string[]>;
  readonly envFiles: Record<string, pulumi.Input<string>>;
  readonly envDigest: (app: string) => pulumi.Input<string>;
  readonly databaseDigest: (app: string) => pulumi.Input<string>;
  readonly smokeSecrets?: { readonly stdin: pulumi.Input<string>; readonly digest: pulumi.Input<string> };
}

/** One host as the stack outputs it: its roles, its apps' slots and what its cutover did. */
export interface HostOutputs {
  roles: string[];
  address: string;
  slots: Record<string, string>;
  cutover?: HostCutover;
  /** Why its cutover failed, when the fleet went on without it (rolling.maxFailPercent). */
  lagging?: string;
  /** The archive of its config as it was before this deploy (restore-config --host). */
  configBackup: string;
  /** Its cutover's bake: verdict and figures (none when the stack sets no bake). */
  bake?: BakeVerdict;
}

export interface FleetResult {
  readonly hosts: pulumi.Output<Record<string, HostOutputs>>;
  readonly changelogs: Record<string, pulumi.Output<string[]>>;
  /** Each app's slot on the first web host (a single server's `slot`). */
  readonly slots: Record<string, pulumi.Output<string> | undefined>;
  readonly backup?: pulumi.Output<unknown>;
  readonly configBackup: pulumi.Output<ConfigBackupInfo>;
  readonly smokePassed: pulumi.Output<string[]>;
  /** Every web host's bake as one verdict (lib/scripts/bake.ts fleetBakeVerdict). */
  readonly bake: pulumi.Output<BakeVerdict | undefined>;
  readonly locked: Command;
  /** Every host's journal line: what runs after a deploy waits for them all. */
  readonly records: DeployRecord[];
}

export function deployFleet(parent: pulumi.ComponentResource, name: string, args: FleetArgs): FleetResult {
  const { config, shas } = args;
  const fleet = config.fleet!;
  const child = (dependsOn: pulumi.Resource[]) => ({ parent, dependsOn });
  const base = (host: FleetHost) => `${name}@${host.name}/`;
  const apps = fleet.hosts.map((h) => hostApps(config, h));
  const webApps = config.apps.filter(appOnWeb);
  const servers = fleet.hosts.map(
    (h, i) =>
      new Server(
        `${base(h)}server`,
        {
          config: hostConfig(config, h, apps[i]),
          privateKey: args.sshPrivateKey,
          lease: args.lease,
          desired: args.desired,
          redact: args.redact,
        },
        { parent },
      ),
  );
  // Nothing changes on any host before every host passed its preflight, holds its lock and
  // archived its config (the lock step takes the archive: an archive changes nothing that runs).
  const locks = servers.map((s) => s.locked);
  const releases = fleet.hosts.map((h, i) =>
    Object.fromEntries(
      apps[i].map((app) => [
        app.name,
        new AppRelease(
          `${base(h)}${app.name}-release`,
          { target: servers[i].target, app, sha: shas[app.name], envFile: args.envFiles[app.name] },
          child(locks),
        ),
      ]),
    ),
  );

  // Backup and migrations: once, on the primary, before any host starts a slot of the new release.
  const p = fleet.hosts.findIndex((h) => h.roles.includes("primary"));
  const migrating = config.apps.filter((a) => a.migrate);
  const backup =
    config.backup.enabled && migrating.length > 0
      ? new DatabaseBackup(
          `${base(fleet.hosts[p])}backup`,
          {
            target: servers[p].target,
            databaseUrl: args.databaseUrl!,
            before: pulumi.all(
              Object.fromEntries(migrating.map((a) => [a.name, pulumi.interpolate`${shas[a.name]}:${args.databaseDigest(a.name)}`])),
            ),
            shas: Object.fromEntries(migrating.map((a) => [a.name, shas[a.name]])),
          },
          child(locks),
        )
      : undefined;
  const migrations = migrating.map(
    (app) =>
      new Migration(
        `${base(fleet.hosts[p])}${app.name}-migration`,
        {
          target: servers[p].target,
          app,
          sha: shas[app.name],
          databaseDigest: args.databaseDigest(app.name),
          backupPath: backup?.info.path,
        },
        child([releases[p][app.name].step, ...(backup ? [backup.step] : [])]),
      ).step,
  );

  const web = fleet.hosts.map((h, i) => ({ h, i })).filter(({ h }) => h.roles.includes("web"));
  const sites = web.map(({ h, i }) => new NginxSite(`${base(h)}nginx`, { target: servers[i].target }, child(locks)).step);
  const lb = fleet.loadBalancer
    ? new LoadBalancer(
        `${name}-load-balancer`,
        { config, privateKey: args.sshPrivateKey, redact: args.redact },
        child([...locks, ...sites]),
      ).step
    : undefined;
  const services = web.map(({ h, i }) =>
    Object.fromEntries(
      webApps
        .filter((a) => a.kind !== "static")
        .map((app) => [
          app.name,
          new Service(
            `${base(h)}${app.name}-service`,
            { target: servers[i].target, app, sha: shas[app.name], envDigest: args.envDigest(app.name) },
            child([releases[i][app.name].step, ...migrations]),
          ),
        ]),
    ),
  );

  const cutover = new FleetCutover(
    `${name}-cutover`,
    {
      hosts: web.map(({ h, i }, w) => ({
        name: h.name,
        config: hostConfig(config, h, webApps),
        connection: servers[i].connection,
        targets: pulumi.all(
          webApps.map((app) => {
            const s = services[w][app.name];
            return pulumi
              .all([s?.slot, s?.port, args.envDigest(app.name)])
              .apply(([slot, port, envDigest]): CutoverTarget => ({ app, sha: shas[app.name], slot, port, envDigest }));
          }),
        ),
      })),
      lease: args.lease,
      redact: args.redact,
      smokeSecrets: args.smokeSecrets,
      triggers: [pulumi.all(webApps.map((a) => pulumi.all([a.name, shas[a.name], args.envDigest(a.name)])))],
    },
    child([
      ...releases.flatMap((r) => Object.values(r).map((x) => x.step)),
      ...sites,
      ...services.flatMap((s) => Object.values(s).map((x) => x.step)),
      ...(lb ? [lb] : []),
    ]),
  );

  // A host whose cutover failed within rolling.maxFailPercent lags: its workers and journal line wait for the next `up`.
  const lags = (h: FleetHost) => cutover.lagging.apply((l) => (l?.[h.name] ? `${h.name} lags: ${l[h.name].split("\n")[0]}` : ""));
  // Workers move once every web host serves the new release.
  const workerSteps = fleet.hosts.map((h, i) =>
    config.apps
      .filter((a) => a.workers.length > 0 && workerHostsOf(fleet, a).includes(h))
      .map(
        (app) =>
          new Workers(
            `${base(h)}${app.name}-workers`,
            { target: servers[i].target, app, sha: shas[app.name], envDigest: args.envDigest(app.name), skip: lags(h) },
            child([cutover.step]),
          ).step,
      ),
  );
  // Each web host's bake verdict, read once from its cutover's result (none without a bake).
  const bakes = cutover.results.apply((r) =>
    Object.fromEntries(Object.entries(r ?? {}).map(([host, c]) => [host, parseBakeVerdict(c.bake)])),
  );
  const records = fleet.hosts.map((h, i) => {
    // What ran on this host: when any of it ran in this update, its journal line is written.
    const w = web.findIndex((x) => x.i === i);
    const hostSteps: Command[] = [
      locks[i],
      ...Object.values(releases[i]).map((r) => r.step),
      ...(i === p ? [...(backup ? [backup.step] : []), ...migrations] : []),
      ...(w >= 0 ? [sites[w], ...Object.values(services[w]).map((x) => x.step)] : []),
      ...workerSteps[i],
    ];
    const entry = pulumi.all([cutover.results, bakes, i === p ? backup?.info : undefined]).apply(([results, hostBakes, b]) => {
      const bake = hostBakes[h.name];
      return {
        stack: config.stack,
        host: h.name,
        deployer: args.deployer,
        result: "succeeded",
        apps: Object.fromEntries(config.apps.map((a) => [a.name, { ref: a.ref, sha: shas[a.name], version: a.version }])),
        ...(results?.[h.name] ? { serving: results[h.name].serving, batch: results[h.name].batch } : {}),
        backup: b?.path ?? null,
        ...(bake ? { bake } : {}),
      };
    });
    // A host's record waits for the cutover: its changes are the fleet's (the cutover's lease is in no step result of its own).
    return new DeployRecord(
      `${base(h)}record`,
      { target: servers[i].target, entry, steps: hostSteps, skip: lags(h) },
      child([cutover.step as pulumi.Resource, ...workerSteps[i]]),
    );
  });
  const hosts = pulumi
    .all([
      cutover.results,
      bakes,
      cutover.lagging,
      pulumi.all(web.map((_, w) => pulumi.all(Object.fromEntries(Object.entries(services[w]).map(([a, s]) => [a, s.slot]))))),
      pulumi.all(servers.map((s) => s.configBackup.apply((c) => c.path))),
    ])
    .apply(([results, hostBakes, lagging, slots, archives]) =>
      Object.fromEntries(
        fleet.hosts.map((h, i) => {
          const w = web.findIndex((x) => x.h === h);
          const out: HostOutputs = {
            roles: h.roles,
            address: h.server.host,
            slots: w >= 0 ? (slots[w] as Record<string, string>) : {},
            configBackup: archives[i],
          };
          if (results?.[h.name]) out.cutover = results[h.name];
          if (hostBakes[h.name]) out.bake = hostBakes[h.name];
          if (lagging?.[h.name]) out.lagging = lagging[h.name];
          return [h.name, out];
        }),
      ),
    );
  return {
    hosts,
    // Each app's changelog from the first host that builds it.
    changelogs: Object.fromEntries(config.apps.map((a) => [a.name, releases.find((r) => r[a.name])![a.name].changelog])),
    slots: Object.fromEntries(config.apps.map((a) => [a.name, services[0][a.name]?.slot])),
    backup: backup?.info,
    configBackup: servers[p].configBackup,
    smokePassed: cutover.results.apply((r) => (Object.values(r ?? {})[0]?.smoke ?? "").split("\n").filter(Boolean)),
    bake: bakes.apply(fleetBakeVerdict),
    locked: locks[p],
    records,
  };
}
