import * as pulumi from "@pulumi/pulumi";
import { AppConfig } from "../lib/config";
import { workersCheckScript, workersScript } from "../lib/scripts";
import { COMPONENT_TYPE, STEP } from "../lib/steps";
import { Command } from "./command";
import { ServerTarget, serverStep } from "./step";

export interface WorkersArgs {
  readonly target: ServerTarget;
  readonly app: AppConfig;
  readonly sha: string;
  /** Digest of the app's .env: a new environment restarts the workers (they read it at start). */
  readonly envDigest: pulumi.Input<string>;
  /** Why the workers are not moved in this update (a fleet's host that lags: the next `up` moves them). */
  readonly skip?: pulumi.Input<string>;
}

/**
 * An app's workers (no port: a Celery worker) on the release that serves, started once the
 * cutover switched web traffic to it; each old one is stopped gracefully first, and brought back
 * on its release when the new one does not stay up. Workers an earlier deploy started that the
 * config no longer names are retired first. A new SHA, a new environment or a changed worker
 * config starts them again; `pulumi refresh` asks whether they still run that release.
 */
export class Workers extends pulumi.ComponentResource {
  readonly step: Command;

  constructor(name: string, args: WorkersArgs, opts?: pulumi.ComponentResourceOptions) {
    super(COMPONENT_TYPE.workers, name, {}, opts);
    const { config } = args.target;
    this.step = serverStep(
      this,
      name,
      args.target,
      STEP.workers,
      {
        app: args.app.name,
        create: workersScript(config, args.app, args.sha),
        triggers: [args.sha, args.envDigest],
        check: workersCheckScript(config, args.app, args.sha),
        ...(args.skip !== undefined ? { skip: args.skip } : {}),
      },
      opts?.dependsOn,
    );
    this.registerOutputs({});
  }
}
