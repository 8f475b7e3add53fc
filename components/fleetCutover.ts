import * as pulumi from "@pulumi/pulumi";
import { DeployConfig } from "../lib/config";
import { CutoverTarget, LB_FAIL_TIMEOUT_SECONDS, cutoverCheckScript, cutoverScript, servingScript, switchBackScript } from "../lib/scripts";
import { COMPONENT_TYPE, STEP, stepName } from "../lib/steps";
import { fleetCutoverProviderStub } from "./command";
import type { HostCutover } from "./fleetCutoverProvider";
import { SshConnection } from "./ssh";

export type { HostCutover } from "./fleetCutoverProvider";

/** One web host's part: its config (the fleet's, with its own server), how to reach it, its apps' checked slots. */
export interface FleetCutoverHost {
  readonly name: string;
  readonly config: DeployConfig;
  readonly connection: pulumi.Input<SshConnection>;
  readonly targets: pulumi.Input<CutoverTarget[]>;
}

export interface FleetCutoverArgs {
  readonly hosts: FleetCutoverHost[];
  readonly lease: string;
  readonly redact?: pulumi.Input<string[]>;
  /** The smoke secrets (stdin of every host's cutover) and their digest (a trigger). */
  readonly smokeSecrets?: { readonly stdin: pulumi.Input<string>; readonly digest: pulumi.Input<string> };
  /** Any change runs the cutover again on every web host. */
  readonly triggers: pulumi.Input<unknown[]>;
}

/** Host names in batches of `size`, in order. */
export function rollingBatches(names: string[], size: number): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < names.length; i += size) out.push(names.slice(i, i + size));
  return out;
}

/** The dynamic resource of the rolling switch (components/fleetCutoverProvider.ts). */
class FleetCutoverResource extends pulumi.dynamic.Resource {
  declare public readonly results: pulumi.Output<Record<string, HostCutover>>;
  declare public readonly lagging: pulumi.Output<Record<string, string>>;

  constructor(name: string, props: Record<string, unknown>, opts?: pulumi.CustomResourceOptions) {
    super(
      fleetCutoverProviderStub,
      name,
      { ...props, results: undefined, lagging: undefined, drift: undefined },
      opts,
      "nostromo",
      "FleetCutover",
    );
  }
}

/**
 * The web hosts switched in rolling batches (`rolling.batch`), each out of the load balancer for
 * its switch and checks; past `rolling.maxFailPercent` failed hosts, every host switched goes back
 * (components/fleetCutoverProvider.ts). Hosts that failed within it lag, and the next `up` runs
 * them again.
 */
export class FleetCutover extends pulumi.ComponentResource {
  readonly step: pulumi.CustomResource;
  readonly results: pulumi.Output<Record<string, HostCutover>>;
  readonly lagging: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: FleetCutoverArgs, opts?: pulumi.ComponentResourceOptions) {
    super(COMPONENT_TYPE.fleetCutover, name, {}, opts);
    const { rolling } = args.hosts[0].config.fleet!;
    const hosts = pulumi.all(
      args.hosts.map((h) =>
        pulumi.all([h.connection, h.targets]).apply(([connection, targets]) => ({
          name: h.name,
          connection,
          create: cutoverScript(h.config, targets, h.config.smoke),
          check: cutoverCheckScript(h.config, targets),
          switchBack: switchBackScript(
            h.config,
            targets.map((t) => t.app),
          ),
          serving: servingScript(
            h.config,
            targets.map((t) => t.app),
          ),
        })),
      ),
    );
    const resource = new FleetCutoverResource(
      stepName(name, STEP.fleetCutover),
      {
        step: STEP.fleetCutover,
        hosts: pulumi.secret(hosts),
        batches: rollingBatches(
          args.hosts.map((h) => h.name),
          rolling.batchSize,
        ),
        settleMs: args.hosts[0].config.fleet!.loadBalancer ? LB_FAIL_TIMEOUT_SECONDS * 1000 + 500 : 0,
        maxFail: Math.floor((args.hosts.length * rolling.maxFailPercent) / 100),
        lease: args.lease,
        maxConcurrent: rolling.connections,
        ...(args.smokeSecrets ? { stdin: pulumi.secret(args.smokeSecrets.stdin) } : {}),
        triggers: [args.triggers, ...(args.smokeSecrets ? [args.smokeSecrets.digest] : [])],
        redact: args.redact === undefined ? undefined : pulumi.secret(args.redact),
      },
      { parent: this, dependsOn: opts?.dependsOn },
    );
    this.step = resource;
    this.results = resource.results;
    this.lagging = resource.lagging;
    this.registerOutputs({ results: this.results, lagging: this.lagging });
  }
}
