import * as pulumi from "@pulumi/pulumi";
import { backupScript } from "../lib/scripts";
import { COMPONENT_TYPE, STEP } from "../lib/steps";
import { Command } from "./command";
import { ServerTarget, resultField, serverStep } from "./step";

export interface DatabaseBackupArgs {
  readonly target: ServerTarget;
  /** Database URL (a Pulumi secret): reaches the server on stdin only. */
  readonly databaseUrl: pulumi.Input<string>;
  /** What each migration that follows runs for (app → SHA and env digest): a change takes a new backup. */
  readonly before: pulumi.Input<Record<string, string>>;
  /** The SHAs about to migrate (app → SHA): name the backup file and go in its journal event. */
  readonly shas: Record<string, string>;
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
    super(COMPONENT_TYPE.backup, name, {}, opts);
    this.step = serverStep(
      this,
      name,
      args.target,
      STEP.backup,
      {
        create: backupScript(
          args.target.config,
          Object.values(args.shas)
            .map((s) => s.slice(0, 12))
            .join("-") || "manual",
          args.shas,
        ),
        stdin: pulumi.interpolate`${args.databaseUrl}\n`,
        triggers: [pulumi.output(args.before).apply((b) => JSON.stringify(b))],
      },
      opts?.dependsOn,
    );
    const field = (f: string) => resultField(this.step, this, f);
    this.info = pulumi.all([field("path"), field("size"), field("sha256"), field("time")]).apply(([path, size, sha256, time]) => ({
      path,
      size: Number(size),
      sha256,
      time,
    }));
    this.registerOutputs({ info: this.info });
  }
}
