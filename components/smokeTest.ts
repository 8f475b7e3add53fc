import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../lib/config";
import { smokeScript } from "../lib/scripts";
import { Command, SshConnection } from "./command";

export interface SmokeTestArgs {
  readonly config: DeployConfig;
  readonly connection: pulumi.Input<SshConnection>;
  /** What was deployed: any change runs the smoke steps again. */
  readonly refs: Record<string, string>;
}

/** The configured smoke steps (login → JWT → protected endpoint, …) through the public port. */
export class SmokeTest extends pulumi.ComponentResource {
  readonly step: Command;
  readonly passed: pulumi.Output<string[]>;

  constructor(name: string, args: SmokeTestArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nostromo:smokeTest:SmokeTest", name, {}, opts);
    this.step = new Command(
      `${name}-run`,
      { connection: args.connection, create: smokeScript(args.config, args.config.smoke), triggers: [JSON.stringify(args.refs)] },
      { parent: this, dependsOn: opts?.dependsOn },
    );
    this.passed = this.step.stdout.apply((out) => out.split("\n").filter((l) => l.startsWith("smoke ok: ")).map((l) => l.slice(10)));
    this.registerOutputs({ passed: this.passed });
  }
}
