import * as assert from "assert";
import { addVersion } from "../../local/exampleRepos";
import { DeployHarness, readJournal } from "../../local/harness";
import { outputOf } from "../../local/stack";
import { trafficLoop } from "../support/traffic";

/**
 * Issue 11: the bake window after the switch, with the real engine, nginx (its access log in our
 * format) and PM2: a healthy release passes it and its figures are a stack output and a journal
 * field; a release that answers 500 to 20% of one endpoint's requests while passing its health
 * and smoke checks, and one that logs FATAL, are each switched back by the bake on its own, and
 * the release before them serves again.
 */
describe("e2e: the bake window switches a bad release back on its own", function () {
  const h = new DeployHarness(`t-bake${process.pid}`);
  const BAKE = { seconds: 6, maxErrorPercent: 10, minRequests: 20 };
  const both = (v: string) => ({ orchestrator: v, sevastopol: "v1.2.3" });

  /** `up` at `ref` while a stream of requests to `paths` runs; returns both. */
  async function upWithTraffic(ref: string, label: string, paths: string[]) {
    h.configure({ refs: both(ref) });
    const traffic = trafficLoop(h.target.nginx.port, 50_000, 5 * 60_000, paths);
    const r = await h.up(label);
    const t = await traffic.finish();
    console.log(`      ${label}: exit ${r.code} after ${h.timings[label].toFixed(1)} s; ${t.sent} requests, ${t.failures.length} not 200`);
    return { r, t, out: outputOf(r) };
  }

  before(async () => {
    await h.start(both("v1.2.3"), { bake: BAKE });
    const r = await h.up("deploy v1.2.3 (first: nothing to compare with)");
    assert.strictEqual(r.code, 0, outputOf(r));
    // No traffic but the smoke steps': too few to judge, so the bake probed, and passed (tooFew: pass).
    const bake = h.outputs().bake;
    assert.strictEqual(bake.verdict, "passed", JSON.stringify(bake));
    assert.match(bake.note, /^too few requests to judge \(orchestrator \(\d+\)\); probes passed; bake\.tooFew is pass$/);
  });
  after(() => h.stop());

  it("a healthy release passes: the verdict and its figures are a stack output and a journal field", async () => {
    const tag = await addVersion(h.opts.repos.orchestrator, "1.2.4", "Crew endpoint", {
      "src/server.js": (s) => s.replace(`const routes = {`, `const routes = {\n  "GET /api/crew": async () => [200, { crew: 7 }],`),
    });
    const { r, t, out } = await upWithTraffic(tag, "healthy release", ["/health", "/api/common/indicadores"]);
    assert.strictEqual(r.code, 0, out);
    assert.deepStrictEqual(t.failures.slice(0, 5), []);
    const bake = h.outputs().bake;
    assert.strictEqual(bake.verdict, "passed", JSON.stringify(bake));
    assert.strictEqual(bake.apps.orchestrator.errors, 0, JSON.stringify(bake));
    assert.ok(bake.apps.orchestrator.requests >= BAKE.minRequests, JSON.stringify(bake));
    assert.ok(bake.apps.orchestrator.requestsBefore > 0, JSON.stringify(bake));
    const last = h
      .journal()
      .filter((e) => e.result === "succeeded")
      .pop();
    assert.deepStrictEqual(last.bake, bake);
    assert.strictEqual(await h.servedVersion(), "1.2.4");
  });

  it("a release answering 500 to 20% of one endpoint's requests (health and smoke pass) is switched back by the bake", async () => {
    const tag = await addVersion(
      h.opts.repos.orchestrator,
      "1.2.5",
      "Flaky crew",
      // Not a path of the health or smoke checks: they pass.
      {
        "src/server.js": (s) =>
          s
            .replace(
              `"GET /api/crew": async () => [200, { crew: 7 }],`,
              `"GET /api/crew": async () => (++flaky % 5 === 0 ? [500, { error: "flaky" }] : [200, { crew: 7 }]),`,
            )
            .replace(`const routes = {`, `let flaky = 0;\nconst routes = {`),
      },
      {},
      "v1.2.4",
    );
    const { r, t, out } = await upWithTraffic(tag, "flaky release", ["/api/crew"]);
    assert.notStrictEqual(r.code, 0, out);
    const m = /bake failed after \d+\.\d s: orchestrator: ([\d.]+)% of (\d+) requests to the new slot answered 5xx \(max 10%\)/.exec(out);
    assert.ok(m, out);
    assert.ok(Number(m[1]) > 10 && Number(m[2]) >= BAKE.minRequests, m[0]);
    assert.match(out, /cutover failed; switched back: orchestrator\. Serving now: orchestrator=\w{12}\/(blue|green)/);
    // The failure bundle came with it: the slot's log lines and nginx's errors.
    assert.match(out, /last log lines of orchestrator-(blue|green) \(pm2\):/);
    // Only the flaky release's answers failed, and none once it was switched back.
    assert.ok(
      t.failures.every((f) => /^\/api\/crew: 500 /.test(f)),
      t.failures.slice(0, 3).join("\n"),
    );
    assert.strictEqual(await h.servedVersion(), "1.2.4");
    // The failed bake's verdict and figures are in the journal, as an event (no deploy line).
    const event = readJournal(h.target.root, true)
      .filter((e) => e.event === "bake")
      .pop();
    assert.strictEqual(event?.bake?.verdict, "failed", JSON.stringify(event));
    assert.strictEqual(event.bake.apps.orchestrator.requests, Number(m[2]));
  });

  it("a release that logs FATAL after its start is switched back by the bake", async () => {
    const tag = await addVersion(h.opts.repos.orchestrator, "1.2.6", "Fatal later", {
      "src/server.js": (s) =>
        s.replace(
          "server.listen(PORT, () => console.log(`Server listening on port ${PORT}`));",
          'server.listen(PORT, () => console.log(`Server listening on port ${PORT}`));\nsetTimeout(() => console.error("FATAL: lost the cache connection"), 1500);',
        ),
    });
    const { r, out } = await upWithTraffic(tag, "release logging FATAL", ["/health"]);
    assert.notStrictEqual(r.code, 0, out);
    assert.match(out, /bake failed after \d+\.\d s: orchestrator: its log has "FATAL": .*FATAL: lost the cache connection/);
    assert.match(out, /cutover failed; switched back: orchestrator/);
    assert.strictEqual(await h.servedVersion(), "1.2.4");
    // The next up with the good release changes nothing on the servers it was not asked to.
    h.configure({ refs: both("v1.2.4") });
    const again = await h.up("back to 1.2.4");
    assert.strictEqual(again.code, 0, outputOf(again));
    assert.strictEqual(await h.servedVersion(), "1.2.4");
  });
});
