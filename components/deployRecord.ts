import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../lib/config";
import { recordScript } from "../lib/scripts";
import { Command, SshConnection } from "./command";

export interface DeployRecordArgs {
  readonly config: DeployConfig;
  readonly connection: pulumi.Input<SshConnection>;
  /** The journal line (who, when, refs, SHAs, backup); duration is added on the server. */
  readonly entry: pulumi.Input<Record<string, unknown>>;
  readonly refs: Record<string, string>;
}

/** One line in deploys.jsonl, old releases pruned, the server lock released. */
export class DeployRecord extends pulumi.ComponentResource {
  readonly step: Command;
  /** Seconds from taking the server lock to this record. */
  readonly durationSeconds: pulumi.Output<number>;

  constructor(name: string, args: DeployRecordArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nostromo:deployRecord:DeployRecord", name, {}, opts);
    const text = pulumi.output(args.entry).apply((entry) => recordScript(args.config, entry, args.config.releasesToKeep));
    this.step = new Command(
      `${name}-append`,
      { connection: args.connection, create: text, triggers: [JSON.stringify(args.refs)] },
      { parent: this, dependsOn: opts?.dependsOn },
    );
    this.durationSeconds = this.step.stdout.apply((out) => Number(/duration=(\d+)/.exec(out)?.[1] ?? 0));
    this.registerOutputs({ durationSeconds: this.durationSeconds });
  }
}
