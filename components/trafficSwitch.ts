import * as pulumi from "@pulumi/pulumi";
import { AppConfig, DeployConfig } from "../lib/config";
import { nginxSiteScript, staticCheckScript, switchScript } from "../lib/scripts";
import { Command, SshConnection } from "./command";

export interface TrafficSwitchArgs {
  readonly config: DeployConfig;
  readonly app: AppConfig;
  readonly connection: pulumi.Input<SshConnection>;
  readonly sha: string;
  /** The checked slot to send traffic to (node apps). */
  readonly slot?: pulumi.Input<string>;
  readonly port?: pulumi.Input<number>;
}

/** The atomic switch of one app's traffic to its checked new release. */
export class TrafficSwitch extends pulumi.ComponentResource {
  readonly step: Command;

  constructor(name: string, args: TrafficSwitchArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nostromo:trafficSwitch:TrafficSwitch", name, {}, opts);
    const { config, app, sha } = args;
    const text =
      app.kind === "node"
        ? pulumi.all([args.slot, args.port]).apply(([slot, port]) => switchScript(config, app, sha, slot, port))
        : pulumi.output(staticCheckScript(config.server, app, sha) + switchScript(config, app, sha));
    this.step = new Command(`${name}-switch`, { connection: args.connection, create: text, triggers: [sha] }, { parent: this, dependsOn: opts?.dependsOn });
    this.registerOutputs({});
  }
}

export interface NginxSiteArgs {
  readonly config: DeployConfig;
  readonly connection: pulumi.Input<SshConnection>;
}

/** The nginx site serving the system (rewritten only when its text changes). */
export class NginxSite extends pulumi.ComponentResource {
  readonly step: Command;

  constructor(name: string, args: NginxSiteArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nostromo:trafficSwitch:NginxSite", name, {}, opts);
    this.step = new Command(`${name}-install`, { connection: args.connection, create: nginxSiteScript(args.config) }, { parent: this, dependsOn: opts?.dependsOn });
    this.registerOutputs({});
  }
}
