import * as pulumi from "@pulumi/pulumi";
import { AppConfig } from "../lib/config";
import { slotCheckScript, startSlotScript } from "../lib/scripts";
import { COMPONENT_TYPE, STEP } from "../lib/steps";
import { Command } from "./command";
import { ServerTarget, resultField, serverStep } from "./step";

export interface ServiceArgs {
  readonly target: ServerTarget;
  readonly app: AppConfig;
  readonly sha: string;
  /** Digest of the app's .env: a new environment starts a new slot through the health gate. */
  readonly envDigest: pulumi.Input<string>;
}

/**
 * The new release started in the slot that is not serving (PM2 or systemd), beside the old one,
 * and gated by its health check on its own port before anything is switched. `pulumi refresh`
 * asks the server whether a slot still runs it and answers (a dead PM2 daemon, a killed process):
 * if not, the next `up` starts it again through the same gate.
 */
export class Service extends pulumi.ComponentResource {
  readonly step: Command;
  readonly slot: pulumi.Output<string>;
  readonly port: pulumi.Output<number>;

  constructor(name: string, args: ServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super(COMPONENT_TYPE.service, name, {}, opts);
    const { config } = args.target;
    const version = args.app.version ?? "";
    this.step = serverStep(
      this,
      name,
      args.target,
      STEP.slotStart,
      {
        app: args.app.name,
        create: pulumi.output(args.envDigest).apply((digest) => startSlotScript(config, args.app, args.sha, version, digest)),
        triggers: [args.sha, args.envDigest],
        check: slotCheckScript(config, args.app, args.sha, version),
      },
      opts?.dependsOn,
    );
    this.slot = resultField(this.step, this, "slot");
    this.port = resultField(this.step, this, "port").apply(Number);
    this.registerOutputs({ slot: this.slot, port: this.port });
  }
}
