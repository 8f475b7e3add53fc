import * as pulumi from "@pulumi/pulumi";
import { DeployConfig, ServerConfig } from "../lib/config";
import { lockScript } from "../lib/scripts";
import { COMPONENT_TYPE, STEP } from "../lib/steps";
import { Command, SshConnection } from "./command";
import { ServerTarget, resultField, serverStep } from "./step";

export interface ServerArgs {
  /** The validated deploy config. */
  readonly config: DeployConfig;
  /** SSH private key of the deploy user (a Pulumi secret). */
  readonly privateKey: pulumi.Input<string>;
  /** This update's lease on the server lock. */
  readonly lease: string;
  /** Digest of everything this deploy brings to the server: a change takes the lock first. */
  readonly desired: pulumi.Input<string>;
  /** The secret values of this deploy, hidden in every step's output (lib/redact.ts). */
  readonly redact?: pulumi.Input<string[]>;
}

/** The config archive the lock step took (lib/scripts/configBackup.ts); `npm run restore-config` puts one back. */
export interface ConfigBackupInfo {
  path: string;
  sha256: string;
  /** How many files the archive holds. */
  files: number;
  time: string;
}

/** How to reach `server` with the deploy user's key (a Pulumi secret). */
export function sshConnectionTo(server: ServerConfig, privateKey: pulumi.Input<string>): pulumi.Output<SshConnection> {
  return pulumi.secret(
    pulumi.output(privateKey).apply((key) => ({
      host: server.host,
      port: server.port,
      user: server.user,
      privateKey: key,
      hostKey: server.hostKey,
      insecureIgnoreHostKey: server.insecureIgnoreHostKey,
    })),
  );
}

/**
 * The target server: how to reach it, and the first step of a deploy, preflight checks and the
 * server-side lock for this update, then the archive of the server's config as it was, before
 * any step writes the nginx site, a unit or a .env (whenever this update changes anything: the
 * digest of all it brings). Every later step checks the lock too (lib/scripts/lock.ts), so a
 * step re-run alone (a retry, an env change) is locked and checked all the same; the
 * DeployRecord releases it at the end.
 */
export class Server extends pulumi.ComponentResource {
  readonly connection: pulumi.Output<SshConnection>;
  readonly target: ServerTarget;
  /** Depend on this to run after preflight, the lock and the config backup. */
  readonly locked: Command;
  readonly configBackup: pulumi.Output<ConfigBackupInfo>;

  constructor(name: string, args: ServerArgs, opts?: pulumi.ComponentResourceOptions) {
    super(COMPONENT_TYPE.server, name, {}, opts);
    this.connection = sshConnectionTo(args.config.server, args.privateKey);
    const redact = args.redact === undefined ? undefined : pulumi.secret(args.redact);
    const maxConcurrent = args.config.fleet?.rolling.connections;
    this.target = {
      config: args.config,
      connection: this.connection,
      lease: args.lease,
      redact,
      ...(maxConcurrent ? { maxConcurrent } : {}),
    };
    this.locked = serverStep(this, name, this.target, STEP.lock, { create: lockScript(args.config), triggers: [args.desired] });
    const field = (f: string) => resultField(this.locked, this, f);
    this.configBackup = pulumi
      .all([field("path"), field("sha256"), field("files"), field("time")])
      .apply(([path, sha256, files, time]) => ({ path, sha256, files: Number(files), time }));
    this.registerOutputs({ connection: this.connection, configBackup: this.configBackup });
  }
}
