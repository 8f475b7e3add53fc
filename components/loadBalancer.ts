import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../lib/config";
import { loadBalancerCheckScript, loadBalancerScript } from "../lib/scripts";
import { COMPONENT_TYPE, STEP, stepName } from "../lib/steps";
import { Command } from "./command";
import { sshConnectionTo } from "./server";

export interface LoadBalancerArgs {
  readonly config: DeployConfig;
  readonly privateKey: pulumi.Input<string>;
  readonly redact?: pulumi.Input<string[]>;
}

/**
 * nginx on the load balancer's host: one upstream of every web host (lib/scripts/loadBalancer.ts),
 * written when the list of web hosts changes. Hosts leave and rejoin it by their drain files.
 */
export class LoadBalancer extends pulumi.ComponentResource {
  readonly step: Command;

  constructor(name: string, args: LoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
    super(COMPONENT_TYPE.loadBalancer, name, {}, opts);
    const lb = args.config.fleet!.loadBalancer!;
    this.step = new Command(
      stepName(name, STEP.loadBalancer),
      {
        step: STEP.loadBalancer,
        connection: sshConnectionTo(lb.server, args.privateKey),
        create: loadBalancerScript(args.config),
        check: loadBalancerCheckScript(args.config),
        redact: args.redact === undefined ? undefined : pulumi.secret(args.redact),
        maxConcurrent: args.config.fleet!.rolling.connections,
      },
      { parent: this, dependsOn: opts?.dependsOn },
    );
    this.registerOutputs({});
  }
}
