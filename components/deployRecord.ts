import * as pulumi from "@pulumi/pulumi";
import { recordScript } from "../lib/scripts";
import { COMPONENT_TYPE, STEP } from "../lib/steps";
import { Command } from "./command";
import { ServerTarget, serverStep } from "./step";

export interface DeployRecordArgs {
  readonly target: ServerTarget;
  /** The journal line (who, refs, SHAs, backup, what serves); duration is added on the server. */
  readonly entry: pulumi.Input<Record<string, unknown>>;
  /** The steps of this deploy: when any of them ran in this update, the record is written. */
  readonly steps: Command[];
  /** Why no line is written in this update (a fleet's host that lags: the next `up` writes it). */
  readonly skip?: pulumi.Input<string>;
}

/**
 * One line in deploys.jsonl, old releases pruned, the server lock released; before that, the
 * workers of an app whose config names none any more retired (it has no workers step).
 */
export class DeployRecord extends pulumi.ComponentResource {
  readonly step: Command;
  /** Seconds from taking the server lock to this record. */
  readonly durationSeconds: pulumi.Output<number>;

  constructor(name: string, args: DeployRecordArgs, opts?: pulumi.ComponentResourceOptions) {
    super(COMPONENT_TYPE.record, name, {}, opts);
    const { config } = args.target;
    // Each step's result names the update (lease) that last ran it: a new lease anywhere means
    // this update changed the server, whatever the reason (a commit, the environment, a retry).
    const ranBy = pulumi.all(args.steps.map((s) => s.result.apply((r) => String((r as { lease?: unknown } | undefined)?.lease ?? ""))));
    this.step = serverStep(
      this,
      name,
      args.target,
      STEP.record,
      {
        create: pulumi.output(args.entry).apply((entry) => recordScript(config, entry, config.releasesToKeep)),
        triggers: [ranBy],
        ...(args.skip !== undefined ? { skip: args.skip } : {}),
      },
      opts?.dependsOn,
    );
    // A skipped record took no time; any other result without the field is an error.
    this.durationSeconds = this.step.result.apply((r) => {
      const res = r as Record<string, unknown> | undefined;
      if (res?.skipped) return 0;
      if (typeof res?.durationSeconds !== "string")
        throw new pulumi.ResourceError(`the result line of this step has no "durationSeconds" (got ${JSON.stringify(r)})`, this);
      return Number(res.durationSeconds);
    });
    this.registerOutputs({ durationSeconds: this.durationSeconds });
  }
}
