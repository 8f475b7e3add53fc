import * as pulumi from "@pulumi/pulumi";
import { BakeVerdict, parseBakeVerdict } from "../lib/scripts/bake";
import { AppConfig } from "../lib/config";
import { CutoverTarget, cutoverCheckScript, cutoverScript } from "../lib/scripts";
import { COMPONENT_TYPE, STEP } from "../lib/steps";
import { Command } from "./command";
import { ServerTarget, resultField, serverStep } from "./step";

export interface CutoverApp {
  readonly app: AppConfig;
  readonly sha: string;
  /** Digest of the app's .env (node apps: idle slots started with another one are restarted). */
  readonly envDigest: pulumi.Input<string>;
  /** The checked slot to send traffic to (node apps). */
  readonly slot?: pulumi.Input<string>;
  readonly port?: pulumi.Input<number>;
}

export interface CutoverArgs {
  readonly target: ServerTarget;
  readonly apps: CutoverApp[];
  /**
   * The smoke steps' secrets (a Pulumi secret: one JSON line, smokeSecretsLine), fed to the step's
   * stdin, and their keyed digest (HMAC), a trigger: a changed secret runs the cutover again.
   */
  readonly smokeSecrets?: { readonly stdin: pulumi.Input<string>; readonly digest: pulumi.Input<string> };
}

/**
 * Traffic switch and smoke tests as one step, all or nothing: every app's release is verified,
 * every app switched, the smoke steps run through the public port, and a failure anywhere after
 * the first switch switches every app back. One step because a failed cutover must leave no
 * switch recorded in the state, so that the next `pulumi up` switches and tests again. `pulumi
 * refresh` asks the server whether each app still serves what it was switched to.
 */
export class Cutover extends pulumi.ComponentResource {
  readonly step: Command;
  /** Names of the smoke steps that passed. */
  readonly smokePassed: pulumi.Output<string[]>;
  /** `app=<sha12>[/slot]` per app, as the server served after the cutover. */
  readonly serving: pulumi.Output<string>;
  /** The bake's verdict and figures (lib/scripts/bake.ts), or none when no bake ran. */
  readonly bake: pulumi.Output<BakeVerdict | undefined>;

  constructor(name: string, args: CutoverArgs, opts?: pulumi.ComponentResourceOptions) {
    super(COMPONENT_TYPE.cutover, name, {}, opts);
    const { config } = args.target;
    const targets: pulumi.Output<CutoverTarget[]> = pulumi
      .all(args.apps.map((a) => pulumi.all([a.slot, a.port, a.envDigest])))
      .apply((known) =>
        args.apps.map((a, i) => ({ app: a.app, sha: a.sha, slot: known[i][0], port: known[i][1], envDigest: known[i][2] })),
      );
    this.step = serverStep(
      this,
      name,
      args.target,
      STEP.cutover,
      {
        create: targets.apply((t) => cutoverScript(config, t, config.smoke)),
        ...(args.smokeSecrets ? { stdin: pulumi.secret(args.smokeSecrets.stdin) } : {}),
        triggers: [
          pulumi.all(args.apps.map((a) => pulumi.all([a.app.name, a.sha, a.envDigest]))),
          ...(args.smokeSecrets ? [args.smokeSecrets.digest] : []),
        ],
        check: targets.apply((t) => cutoverCheckScript(config, t)),
      },
      opts?.dependsOn,
    );
    this.smokePassed = resultField(this.step, this, "smoke").apply((s) => s.split("\n").filter(Boolean));
    this.serving = resultField(this.step, this, "serving");
    // Not resultField: a cutover recorded before the bake existed has no such field, and none ran.
    this.bake = this.step.result.apply((r) => parseBakeVerdict((r as Record<string, unknown>)?.bake));
    this.registerOutputs({ smokePassed: this.smokePassed, serving: this.serving, bake: this.bake });
  }
}
