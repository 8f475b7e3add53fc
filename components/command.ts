import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { StepKind } from "../lib/steps";
import type { SshConnection } from "./ssh";

export type { RunResult, SshConnection } from "./ssh";
export { commandProvider, parseStepResult } from "./commandProvider";

export interface CommandArgs {
  /** What the step is (lib/steps.ts): the policy pack, tools and mocks find steps by it. */
  readonly step: StepKind;
  /** The app the step belongs to, if any. */
  readonly app?: string;
  /**
   * This update's hold on the server lock (`<stack>/<update id>`), exported to the script as
   * NOSTROMO_LEASE. Not an input that re-runs the step: it changes on every `pulumi up`.
   */
  readonly lease?: pulumi.Input<string>;
  /**
   * Run by `pulumi refresh` (and `up --refresh`): asks the server whether what this step made is
   * still there. Exit 0: in sync; exit 3: drifted, its output says how, and the next `up` runs the
   * step again; anything else fails the refresh.
   */
  readonly check?: pulumi.Input<string>;
  /** Where to run: over SSH, or on the machine running `pulumi` when absent. */
  readonly connection?: pulumi.Input<SshConnection>;
  /** Script run on create, and on update when `update` is absent. */
  readonly create: pulumi.Input<string>;
  /** Script run when an input changes (defaults to `create`). */
  readonly update?: pulumi.Input<string>;
  /** Script run when the resource is deleted. */
  readonly delete?: pulumi.Input<string>;
  /** Fed to the script's standard input: the only way secrets reach a script. */
  readonly stdin?: pulumi.Input<string>;
  /** Any change re-runs the step (e.g. the resolved commit SHA, the script's hash). */
  readonly triggers?: pulumi.Input<unknown[]>;
  /** Seconds before the script is killed and the step fails. */
  readonly timeoutSeconds?: pulumi.Input<number>;
  /** Secret values (lib/redact.ts) shown as [secret] in the step's outputs and errors. */
  readonly redact?: pulumi.Input<string[]>;
  /**
   * Why the step does not run in this update (a fleet's host that lags); its result is then
   * `{ skipped }`. Empty or absent: it runs. A change of it re-runs the step.
   */
  readonly skip?: pulumi.Input<string>;
  /** At most this many scripts of the update at once over SSH, all hosts together (a fleet's rolling.connections). */
  readonly maxConcurrent?: number;
}

/**
 * The provider the engine runs for Command resources: a stub that loads commandProvider.ts
 * (through lib/tsLoader.js, as the program is) into the providers' host (provider/) on first use. The
 * engine stores a dynamic provider's serialized code in every resource's state and the program
 * serializes it at every start: for the whole implementation that was 31 KB per step (a third of
 * the state) and 0.5 s of every `pulumi up`; the stub is a few lines. The project's folder is
 * where this file is now, or, for a state written from a folder since moved, the provider's
 * working directory (the project's).
 */
export function providerStub(componentsDir: string, module = "commandProvider"): pulumi.dynamic.ResourceProvider {
  const load = (): pulumi.dynamic.ResourceProvider => {
    const g = globalThis as { __nostromoProviders?: Record<string, pulumi.dynamic.ResourceProvider> };
    g.__nostromoProviders ??= {};
    if (g.__nostromoProviders[module]) return g.__nostromoProviders[module];
    const fs = require("fs");
    const p = require("path");
    const dir = fs.existsSync(p.join(componentsDir, `${module}.ts`)) ? componentsDir : p.join(process.cwd(), "components");
    const req = require("module").createRequire(p.join(dir, `${module}.ts`));
    if (!require.extensions[".ts"]) req("../lib/tsLoader").register();
    g.__nostromoProviders[module] = req(`./${module}`)[module] as pulumi.dynamic.ResourceProvider;
    return g.__nostromoProviders[module];
  };
  return {
    diff: (id, olds, news) => load().diff!(id, olds, news),
    create: (inputs) => load().create(inputs),
    update: (id, olds, news) => load().update!(id, olds, news),
    delete: (id, props) => load().delete!(id, props),
    read: (id, props) => load().read!(id, props),
  };
}

const commandProviderStub = providerStub(path.resolve(__dirname));
export const fleetCutoverProviderStub = providerStub(path.resolve(__dirname), "fleetCutoverProvider");

/** A script run by the engine on a server (or locally); see CommandArgs. */
export class Command extends pulumi.dynamic.Resource {
  declare public readonly stdout: pulumi.Output<string>;
  declare public readonly stderr: pulumi.Output<string>;
  /** The step's result line, parsed (values are strings); see parseStepResult. */
  declare public readonly result: pulumi.Output<Record<string, unknown>>;

  constructor(name: string, args: CommandArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      commandProviderStub,
      name,
      { ...args, stdout: undefined, stderr: undefined, result: undefined, drift: undefined },
      opts,
      "nostromo",
      "Command",
    );
  }
}
