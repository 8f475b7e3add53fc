import * as pulumi from "@pulumi/pulumi";
import { AppConfig } from "../lib/config";
import { releaseScript } from "../lib/scripts";
import { COMPONENT_TYPE, STEP } from "../lib/steps";
import { Command } from "./command";
import { ServerTarget, resultField, serverStep } from "./step";

export interface AppReleaseArgs {
  readonly target: ServerTarget;
  readonly app: AppConfig;
  /** The commit the app's ref resolved to. */
  readonly sha: string;
  /** The app's .env (secret): written 0600 into shared/<app>/ and linked into the release; a change re-runs the step. */
  readonly envFile: pulumi.Input<string>;
}

/** releases/<app>/<sha>: fetched, linked to shared files, installed and built (once per SHA). */
export class AppRelease extends pulumi.ComponentResource {
  readonly step: Command;
  /** Commits since the release that served before (`<short sha> <subject>`). */
  readonly changelog: pulumi.Output<string[]>;
  /** The SHA that served before (empty: none). */
  readonly previousSha: pulumi.Output<string>;

  constructor(name: string, args: AppReleaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super(COMPONENT_TYPE.release, name, {}, opts);
    this.step = serverStep(
      this,
      name,
      args.target,
      STEP.release,
      { app: args.app.name, create: releaseScript(args.target.config, args.app, args.sha), stdin: args.envFile, triggers: [args.sha] },
      opts?.dependsOn,
    );
    this.changelog = resultField(this.step, this, "changelog").apply((c) => c.split("\n").filter(Boolean));
    this.previousSha = resultField(this.step, this, "previous");
    this.registerOutputs({ changelog: this.changelog, previousSha: this.previousSha });
  }
}
