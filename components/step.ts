import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../lib/config";
import { StepKind, stepName } from "../lib/steps";
import { Command, SshConnection } from "./command";

/** What every server step of one update needs: the config, how to reach the server, the lease. */
export interface ServerTarget {
  readonly config: DeployConfig;
  readonly connection: pulumi.Input<SshConnection>;
  /** This update's hold on the server lock (`<stack>/<update id>`): every step checks it. */
  readonly lease: string;
  /** The secret values no step output may show (lib/redact.ts), a Pulumi secret. */
  readonly redact?: pulumi.Input<string[]>;
  /** A fleet's bound on scripts over SSH at once (rolling.connections); none for a single server. */
  readonly maxConcurrent?: number;
}

export interface StepArgs {
  readonly app?: string;
  readonly create: pulumi.Input<string>;
  readonly stdin?: pulumi.Input<string>;
  readonly triggers?: pulumi.Input<unknown[]>;
  /** Asked by `pulumi refresh`: exit 3 when what the step made drifted (see Command). */
  readonly check?: pulumi.Input<string>;
  /** Why the step does not run in this update (see Command's `skip`). */
  readonly skip?: pulumi.Input<string>;
}

/** One server step of `kind` under component `owner` (named `<owner name>-<suffix>`, lib/steps.ts). */
export function serverStep(
  owner: pulumi.ComponentResource,
  ownerName: string,
  target: ServerTarget,
  kind: StepKind,
  args: StepArgs,
  dependsOn?: pulumi.Input<pulumi.Input<pulumi.Resource>[]> | pulumi.Input<pulumi.Resource>,
): Command {
  return new Command(
    stepName(ownerName, kind),
    {
      step: kind,
      connection: target.connection,
      lease: target.lease,
      redact: target.redact,
      ...(target.maxConcurrent ? { maxConcurrent: target.maxConcurrent } : {}),
      ...args,
    },
    { parent: owner, dependsOn },
  );
}

/**
 * One field of a step's result line (components/command.ts parses the line). A missing field is
 * an error naming the step's component, never a silent default.
 */
export function resultField(step: Command, owner: pulumi.Resource, field: string): pulumi.Output<string> {
  return step.result.apply((r) => {
    const v = (r as Record<string, unknown> | undefined)?.[field];
    if (typeof v !== "string") {
      throw new pulumi.ResourceError(`the result line of this step has no "${field}" (got ${JSON.stringify(r)})`, owner);
    }
    return v;
  });
}
