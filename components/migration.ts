import * as pulumi from "@pulumi/pulumi";
import { AppConfig, DeployConfig } from "../lib/config";
import { migrateScript } from "../lib/scripts";
import { Command, SshConnection } from "./command";

export interface MigrationArgs {
  readonly config: DeployConfig;
  readonly app: AppConfig;
  readonly connection: pulumi.Input<SshConnection>;
  readonly sha: string;
  /** The backup taken just before (named in the error if the migration fails). */
  readonly backupPath?: pulumi.Input<string>;
}

/** The app's migration, in the new release, after the backup and before any traffic. */
export class Migration extends pulumi.ComponentResource {
  readonly step: Command;

  constructor(name: string, args: MigrationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nostromo:migration:Migration", name, {}, opts);
    this.step = new Command(
      `${name}-run`,
      {
        connection: args.connection,
        create: pulumi.output(args.backupPath).apply((backupPath) => migrateScript(args.config, args.app, args.sha, backupPath)),
        triggers: [args.sha],
      },
      { parent: this, dependsOn: opts?.dependsOn },
    );
    this.registerOutputs({});
  }
}
