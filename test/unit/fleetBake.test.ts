import * as assert from "assert";
import { BakeVerdict, bakeSummary, fleetBakeVerdict } from "../../lib/scripts/bake";

const figures = (requests: number, errors: number) => ({
  requests,
  errors,
  errorPercent: Math.round((errors / requests) * 1000) / 10,
  p95Ms: 5,
  requestsBefore: 30,
  p95BeforeMs: 4,
});
const passed = (seconds: number): BakeVerdict => ({ verdict: "passed", seconds, apps: { orchestrator: figures(40, 0) } });

describe("unit: a fleet's bake (lib/scripts/bake.ts fleetBakeVerdict)", () => {
  it("no host baked (no bake set, or no host switched): no verdict", () => {
    assert.strictEqual(fleetBakeVerdict({}), undefined);
    assert.strictEqual(fleetBakeVerdict({ web1: undefined, web2: undefined }), undefined);
  });

  it("every host passed: passed, the longest window, figures per host and app", () => {
    const v = fleetBakeVerdict({ web1: passed(6), web2: passed(8), web3: undefined })!;
    assert.deepStrictEqual(v, {
      verdict: "passed",
      seconds: 8,
      apps: { "web1/orchestrator": figures(40, 0), "web2/orchestrator": figures(40, 0) },
    });
    assert.strictEqual(
      bakeSummary(v),
      "passed (8 s): web1/orchestrator 40 requests, 0% 5xx, p95 5 ms (before 4 ms); web2/orchestrator 40 requests, 0% 5xx, p95 5 ms (before 4 ms)",
    );
  });

  it("one host failed: failed, its reason named by its host; a host's note too", () => {
    const v = fleetBakeVerdict({
      web1: { ...passed(6), note: "too few requests to judge (orchestrator); probes passed; bake.tooFew is pass" },
      web2: { verdict: "failed", seconds: 6, reason: "orchestrator: 12.5% 5xx above 10%", apps: { orchestrator: figures(40, 5) } },
    })!;
    assert.strictEqual(v.verdict, "failed");
    assert.strictEqual(v.reason, "web2: orchestrator: 12.5% 5xx above 10%");
    assert.strictEqual(v.note, "web1: too few requests to judge (orchestrator); probes passed; bake.tooFew is pass");
  });
});
