import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../lib/config";
import { nginxSiteScript } from "../lib/scripts";
import { Command, SshConnection } from "./command";

export interface NginxSiteArgs {
  readonly config: DeployConfig;
  readonly connection: pulumi.Input<SshConnection>;
}

/** The nginx site serving the system (rewritten only when its text changes). */
export class NginxSite extends pulumi.ComponentResource {
  readonly step: Command;

  constructor(name: string, args: NginxSiteArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nostromo:nginxSite:NginxSite", name, {}, opts);
    this.step = new Command(
      `${name}-install`,
      { connection: args.connection, create: nginxSiteScript(args.config) },
      { parent: this, dependsOn: opts?.dependsOn },
    );
    this.registerOutputs({});
  }
}
