import * as pulumi from "@pulumi/pulumi";

export interface GeneratedSecretArgs {
  /** Bytes of randomness (the value is their base64url text). */
  readonly bytes?: number;
  /** Any change generates a new value. */
  readonly keepers?: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

/**
 * A random value generated once and kept in the state as a secret, as @pulumi/random's
 * RandomPassword does (whose provider cannot be built here: see README).
 */
const generatedSecretProvider: pulumi.dynamic.ResourceProvider = {
  async diff(_id: string, olds: { bytes?: number; keepers?: unknown }, news: { bytes?: number; keepers?: unknown }) {
    const changed = JSON.stringify([olds.bytes, olds.keepers ?? null]) !== JSON.stringify([news.bytes, news.keepers ?? null]);
    return { changes: changed, replaces: changed ? ["keepers"] : [] };
  },
  async create(inputs: { bytes?: number }) {
    const { randomBytes } = require("crypto") as typeof import("crypto");
    const value = randomBytes(inputs.bytes ?? 32).toString("base64url");
    return { id: randomBytes(8).toString("hex"), outs: { ...inputs, value } };
  },
};

export class GeneratedSecret extends pulumi.dynamic.Resource {
  declare public readonly value: pulumi.Output<string>;

  constructor(name: string, args: GeneratedSecretArgs = {}, opts?: pulumi.CustomResourceOptions) {
    super(
      generatedSecretProvider,
      name,
      { bytes: args.bytes ?? 32, keepers: args.keepers, value: undefined },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["value"] }),
      "nostromo",
      "GeneratedSecret",
    );
  }
}
