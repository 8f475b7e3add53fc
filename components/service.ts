import * as pulumi from "@pulumi/pulumi";
import { AppConfig, DeployConfig } from "../lib/config";
import { startSlotScript } from "../lib/scripts";
import { Command, SshConnection } from "./command";

export interface ServiceArgs {
  readonly config: DeployConfig;
  readonly app: AppConfig;
  readonly connection: pulumi.Input<SshConnection>;
  readonly sha: string;
}

/**
 * The new release started in the slot that is not serving (PM2 or systemd), beside the old one,
 * and gated by its health check on its own port before anything is switched.
 */
export class Service extends pulumi.ComponentResource {
  readonly step: Command;
  readonly slot: pulumi.Output<string>;
  readonly port: pulumi.Output<number>;

  constructor(name: string, args: ServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nostromo:service:Service", name, {}, opts);
    const version = args.app.version ?? "";
    this.step = new Command(
      `${name}-start`,
      { connection: args.connection, create: startSlotScript(args.config, args.app, args.sha, version), triggers: [args.sha] },
      { parent: this, dependsOn: opts?.dependsOn },
    );
    const last = this.step.stdout.apply((out) => /slot=(\w+) port=(\d+)/.exec(out) ?? ["", "", "0"]);
    this.slot = last.apply((m) => m[1]);
    this.port = last.apply((m) => Number(m[2]));
    this.registerOutputs({ slot: this.slot, port: this.port });
  }
}
