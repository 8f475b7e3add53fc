import * as pulumi from "@pulumi/pulumi";
import { configBackupScript } from "../lib/scripts";
import { COMPONENT_TYPE, STEP } from "../lib/steps";
import { Command } from "./command";
import { ServerTarget, resultField, serverStep } from "./step";

export interface ConfigBackupArgs {
  readonly target: ServerTarget;
  /** Digest of everything this deploy brings to the server: a change takes a new config backup first. */
  readonly desired: pulumi.Input<string>;
}

export interface ConfigBackupInfo {
  path: string;
  sha256: string;
  /** How many files the archive holds. */
  files: number;
  time: string;
}

/**
 * The server's configuration (nginx site and upstreams, systemd units, PM2's process list, the
 * apps' shared .env) archived before this deploy changes any of it: verified, 0600, newest N kept.
 * `npm run restore-config` puts an archive back.
 */
export class ConfigBackup extends pulumi.ComponentResource {
  readonly info: pulumi.Output<ConfigBackupInfo>;
  readonly step: Command;

  constructor(name: string, args: ConfigBackupArgs, opts?: pulumi.ComponentResourceOptions) {
    super(COMPONENT_TYPE.configBackup, name, {}, opts);
    this.step = serverStep(
      this,
      name,
      args.target,
      STEP.configBackup,
      { create: configBackupScript(args.target.config), triggers: [args.desired] },
      opts?.dependsOn,
    );
    const field = (f: string) => resultField(this.step, this, f);
    this.info = pulumi.all([field("path"), field("sha256"), field("files"), field("time")]).apply(([path, sha256, files, time]) => ({
      path,
      sha256,
      files: Number(files),
      time,
    }));
    this.registerOutputs({ info: this.info });
  }
}
