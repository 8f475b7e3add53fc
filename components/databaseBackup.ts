import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../lib/config";
import { backupScript } from "../lib/scripts";
import { Command, SshConnection } from "./command";

export interface DatabaseBackupArgs {
  readonly config: DeployConfig;
  readonly connection: pulumi.Input<SshConnection>;
  /** Database URL (a Pulumi secret): reaches the server on stdin only. */
  readonly databaseUrl: pulumi.Input<string>;
  /** SHAs of the apps whose migrations follow: a new one takes a new backup. */
  readonly before: Record<string, string>;
}

export interface BackupInfo {
  path: string;
  size: number;
  sha256: string;
  time: string;
}

/** pg_dump before any migration of this deploy, verified and rotated (newest N kept). */
export class DatabaseBackup extends pulumi.ComponentResource {
  readonly info: pulumi.Output<BackupInfo>;
  readonly step: Command;

  constructor(name: string, args: DatabaseBackupArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nostromo:databaseBackup:DatabaseBackup", name, {}, opts);
    const label =
      Object.values(args.before)
        .map((sha) => sha.slice(0, 12))
        .join("-") || "manual";
    this.step = new Command(
      `${name}-dump`,
      {
        connection: args.connection,
        create: backupScript(args.config, label),
        stdin: pulumi.interpolate`${args.databaseUrl}\n`,
        triggers: [JSON.stringify(args.before)],
      },
      { parent: this, dependsOn: opts?.dependsOn },
    );
    this.info = this.step.stdout.apply((out) => JSON.parse(out.split("\n").pop() ?? "{}") as BackupInfo);
    this.registerOutputs({ info: this.info });
  }
}
