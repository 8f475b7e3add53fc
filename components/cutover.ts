import * as pulumi from "@pulumi/pulumi";
import { AppConfig, DeployConfig } from "../lib/config";
import { cutoverScript } from "../lib/scripts";
import { Command, SshConnection } from "./command";

export interface CutoverApp {
  readonly app: AppConfig;
  readonly sha: string;
  /** The checked slot to send traffic to (node apps). */
  readonly slot?: pulumi.Input<string>;
  readonly port?: pulumi.Input<number>;
}

export interface CutoverArgs {
  readonly config: DeployConfig;
  readonly connection: pulumi.Input<SshConnection>;
  readonly apps: CutoverApp[];
}

/**
 * Traffic switch and smoke tests as one step: each app is switched atomically to its checked
 * release, the smoke steps run through the public port, and a failure switches every app back.
 * One step because a failed smoke test must leave no switch recorded in the state, so that the
 * next `pulumi up` switches and tests again rather than believing the switch happened.
 */
export class Cutover extends pulumi.ComponentResource {
  readonly step: Command;
  /** Names of the smoke steps that passed. */
  readonly smokePassed: pulumi.Output<string[]>;

  constructor(name: string, args: CutoverArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nostromo:cutover:Cutover", name, {}, opts);
    const targets = pulumi
      .all(args.apps.map((a) => pulumi.all([a.slot, a.port])))
      .apply((slots) => args.apps.map((a, i) => ({ app: a.app, sha: a.sha, slot: slots[i][0], port: slots[i][1] })));
    this.step = new Command(
      `${name}-switch-and-smoke`,
      {
        connection: args.connection,
        create: targets.apply((t) => cutoverScript(args.config, t, args.config.smoke)),
        triggers: [JSON.stringify(Object.fromEntries(args.apps.map((a) => [a.app.name, a.sha])))],
      },
      { parent: this, dependsOn: opts?.dependsOn },
    );
    this.smokePassed = this.step.stdout.apply((out) =>
      out
        .split("\n")
        .filter((l) => l.startsWith("smoke ok: "))
        .map((l) => l.slice(10)),
    );
    this.registerOutputs({ smokePassed: this.smokePassed });
  }
}
