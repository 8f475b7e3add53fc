import * as pulumi from "@pulumi/pulumi";
import { STEP } from "../../lib/steps";

export interface Registered {
  type: string;
  name: string;
  inputs: Record<string, any>;
  /** Names of the resources it depends on (dependsOn and inputs). */
  dependsOn: string[];
}

/**
 * Installs Pulumi mocks that record every registered resource with its inputs and direct
 * dependencies. Call it in a `before` hook, then `await import()` the code under test.
 */
export function installMocks(stack = "unit"): Registered[] {
  const registered: Registered[] = [];
  const byName = new Map<string, Registered>();
  pulumi.runtime.setMocks(
    {
      newResource: (args: pulumi.runtime.MockResourceArgs) => {
        const r = byName.get(args.name) ?? { type: args.type, name: args.name, inputs: {}, dependsOn: [] };
        r.inputs = args.inputs;
        if (!byName.has(args.name)) registered.push(r);
        byName.set(args.name, r);
        if (args.type.endsWith(":GeneratedSecret"))
          return { id: `${args.name}-id`, state: { ...args.inputs, value: `mock-secret-${args.name}` } };
        if (args.inputs.step === STEP.fleetCutover)
          return { id: `${args.name}-id`, state: { ...args.inputs, ...mockFleetCutover(args.inputs) } };
        const result = mockResult(args.inputs.step);
        return { id: `${args.name}-id`, state: { ...args.inputs, stdout: `nostromo-result ${JSON.stringify(result)}`, result } };
      },
      call: (args: pulumi.runtime.MockCallArgs) => {
        throw new Error(`unmocked call ${args.token}`);
      },
    },
    "nostromo-deploy",
    stack,
    false,
  );
  // The mock monitor sees each registration request; keep its dependency list too.
  const monitor = (pulumi.runtime as any).getMonitor();
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: any, callback: any) => {
    const name = req.getName();
    const r = byName.get(name) ?? { type: req.getType(), name, inputs: {}, dependsOn: [] };
    r.dependsOn = (req.getDependenciesList() as string[]).map((urn) => urn.split("::").pop()!);
    if (!byName.has(name)) registered.push(r);
    byName.set(name, r);
    return register(req, callback);
  };
  return registered;
}

/** Figures of a bake that passed, as a host's cutover reports them (lib/scripts/bake.ts). */
export const MOCK_BAKE = {
  verdict: "passed",
  seconds: 6,
  apps: { orchestrator: { requests: 40, errors: 0, errorPercent: 0, p95Ms: 4, requestsBefore: 38, p95BeforeMs: 3 } },
};

/** The rolling switch's outputs: every web host switched in its batch, baked, its smoke passed. */
function mockFleetCutover(inputs: Record<string, any>): Record<string, unknown> {
  const batches = (inputs.batches ?? []) as string[][];
  const results = Object.fromEntries(
    batches.flatMap((names, b) =>
      names.map((name) => [
        name,
        { batch: b + 1, serving: "", switched: "orchestrator", smoke: "health", bake: JSON.stringify(MOCK_BAKE), seconds: 1 },
      ]),
    ),
  );
  return { results, lagging: {}, drift: "" };
}

/** What each kind of step (lib/steps.ts) would report in its result line, so outputs have a shape. */
function mockResult(step: string | undefined): Record<string, string> {
  const lease = "unit/mock-lease";
  switch (step) {
    case STEP.backup:
      return { path: "/srv/backups/x.dump", size: "10", sha256: "abc", time: "20260101T000000Z", lease };
    case STEP.lock:
      return {
        stack: "unit",
        started: "1767225600",
        path: "/srv/backups/unit-config-20260101T000000Z.tar.gz",
        sha256: "def",
        files: "4",
        time: "20260101T000000Z",
        lease,
      };
    case STEP.slotStart:
      return { slot: "green", port: "8002", lease };
    case STEP.release:
      return { built: "built", previous: "", changelog: "abc123 Feature: admin indexes", lease };
    case STEP.cutover:
      return {
        switched: "orchestrator sevastopol",
        serving: "orchestrator=aaaaaaaaaaaa/green sevastopol=bbbbbbbbbbbb",
        smoke: "health",
        lease,
      };
    case STEP.record:
      return { durationSeconds: "12", lease };
    default:
      return { lease };
  }
}

/** Everything `name` waits for, directly or not. */
export function closure(registered: Registered[], name: string): Set<string> {
  const byName = new Map(registered.map((r) => [r.name, r]));
  const seen = new Set<string>();
  const walk = (n: string) => {
    for (const d of byName.get(n)?.dependsOn ?? []) {
      if (!seen.has(d)) {
        seen.add(d);
        walk(d);
      }
    }
  };
  walk(name);
  return seen;
}
