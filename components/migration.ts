import * as pulumi from "@pulumi/pulumi";
import { AppConfig } from "../lib/config";
import { migrateScript } from "../lib/scripts";
import { COMPONENT_TYPE, STEP } from "../lib/steps";
import { Command } from "./command";
import { ServerTarget, serverStep } from "./step";

export interface MigrationArgs {
  readonly target: ServerTarget;
  readonly app: AppConfig;
  readonly sha: string;
  /** Digest of the app's DATABASE_URL: a new database is migrated too. */
  readonly databaseDigest: pulumi.Input<string>;
  /** The backup taken just before (named in the error if the migration fails). */
  readonly backupPath?: pulumi.Input<string>;
}

/** The app's migration, in the new release, after the backup and before any traffic. */
export class Migration extends pulumi.ComponentResource {
  readonly step: Command;

  constructor(name: string, args: MigrationArgs, opts?: pulumi.ComponentResourceOptions) {
    super(COMPONENT_TYPE.migration, name, {}, opts);
    this.step = serverStep(
      this,
      name,
      args.target,
      STEP.migration,
      {
        app: args.app.name,
        create: pulumi.output(args.backupPath).apply((backupPath) => migrateScript(args.target.config, args.app, args.sha, backupPath)),
        triggers: [args.sha, args.databaseDigest],
      },
      opts?.dependsOn,
    );
    this.registerOutputs({});
  }
}
