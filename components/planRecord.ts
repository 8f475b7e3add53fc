import * as pulumi from "@pulumi/pulumi";
import { PreviousApps } from "../lib/plan";

export interface PlanRecordArgs {
  /** What this run deploys, per app (sha, version, digests): what the next run compares with. */
  readonly current: pulumi.Input<PreviousApps>;
  /** This run's lease: tells whether the record was written by this run or is an older one. */
  readonly lease: string;
}

export interface PlanRecordState {
  current: PreviousApps;
  /** What the record held before this run wrote it (none: its first write). */
  previous: PreviousApps | null;
  lease: string;
}

/**
 * The last deployed plan, kept in the state, so a run can say what it changes without reading
 * its own stack (a StackReference to itself reads the checkpoint file the engine is writing).
 * `check` sees the recorded inputs: it puts the recorded `current` in `previous`. Only a change
 * of `current` is a change (the lease is new on every run), and the engine shows checked inputs
 * as outputs at preview, so a preview knows `previous` too.
 */
const planRecordProvider: pulumi.dynamic.ResourceProvider = {
  async check(olds: { current?: unknown }, news: { current?: unknown; lease?: unknown }) {
    return { inputs: { current: news.current, lease: news.lease, previous: olds?.current ?? null } };
  },
  async diff(_id: string, olds: { current?: unknown }, news: { current?: unknown }) {
    return { changes: JSON.stringify(olds.current ?? null) !== JSON.stringify(news.current ?? null) };
  },
  async create(inputs: Record<string, unknown>) {
    return { id: "plan", outs: inputs };
  },
  async update(_id: string, _olds: Record<string, unknown>, news: Record<string, unknown>) {
    return { outs: news };
  },
};

export class PlanRecord extends pulumi.dynamic.Resource {
  declare public readonly current: pulumi.Output<PreviousApps>;
  declare public readonly previous: pulumi.Output<PreviousApps | null>;
  declare public readonly lease: pulumi.Output<string>;

  constructor(name: string, args: PlanRecordArgs, opts?: pulumi.CustomResourceOptions) {
    super(planRecordProvider, name, { current: args.current, lease: args.lease, previous: undefined }, opts, "nostromo", "PlanRecord");
  }

  /**
   * What this run changes from: `previous` when this run wrote the record (its lease), else the
   * record's `current` (nothing changed since it was written: the plan is "unchanged").
   */
  since(lease: string): pulumi.Output<PreviousApps | undefined> {
    return pulumi
      .all([this.current, this.previous, this.lease])
      .apply(([current, previous, written]) => (written === lease ? (previous ?? undefined) : current));
  }
}
