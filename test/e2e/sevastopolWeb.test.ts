import * as assert from "assert";
import { DeployHarness } from "../../local/harness";
import { get } from "../../local/http";
import { outputOf } from "../../local/stack";
import { freePort } from "../../local/target";
import { trafficLoop } from "../support/traffic";

/**
 * Issue 10: Sevastopol as runbook 000 runs it, a PM2 web process (its server-rendered page) that
 * nginx proxies at /, blue/green and health-gated like Orchestrator; nginx.routes sends / to its
 * live slot, /api/ and the exact /health to Orchestrator's.
 */
describe("e2e: Sevastopol as a PM2 web process behind nginx (nginx.routes)", function () {
  const h = new DeployHarness(`t-sev${process.pid}`);

  before(async () => {
    await h.start();
    h.configure({ sevastopolWeb: { blue: await freePort(), green: await freePort() } });
  });
  after(async () => h.stop());

  it("1. fresh deploy of v1.2.2: / is rendered by Sevastopol's live slot, /health and /api/ reach Orchestrator", async () => {
    const r = await h.up("deploy v1.2.2");
    assert.strictEqual(r.code, 0, outputOf(r));
    const page = await get(h.target.nginx.port, "/");
    assert.strictEqual(page.status, 200);
    assert.match(page.body, /<meta name="version" content="1\.2\.2"/);
    assert.deepStrictEqual(JSON.parse((await get(h.target.nginx.port, "/health")).body), { status: "ok", version: "1.2.2" });
    assert.strictEqual((await get(h.target.nginx.port, "/api/common/indicadores")).status, 200);
    const outputs = h.outputs();
    assert.ok(["blue", "green"].includes(outputs.apps.sevastopol.slot), JSON.stringify(outputs.apps.sevastopol));
  });

  it("2. upgrade to v1.2.3 under a steady stream of requests through /: none fails, the page then shows 1.2.3", async () => {
    h.configure({ refs: { orchestrator: "v1.2.3", sevastopol: "v1.2.3" } });
    const traffic = trafficLoop(h.target.nginx.port, 50_000, 15 * 60_000, ["/", "/health", "/api/common/indicadores"]);
    const r = await h.up("upgrade");
    const { sent, failures, pages } = await traffic.finish();
    console.log(`      requests during the upgrade: ${sent} sent, ${failures.length} failed; / showed ${JSON.stringify(pages)}`);
    assert.strictEqual(r.code, 0, outputOf(r));
    assert.ok(sent > 50, `only ${sent} requests were sent`);
    assert.deepStrictEqual(failures.slice(0, 5), [], `${failures.length} of ${sent} requests failed`);
    assert.match((await get(h.target.nginx.port, "/")).body, /<meta name="version" content="1\.2\.3"/);
    assert.strictEqual(await h.servedVersion(), "1.2.3");
  });
});
