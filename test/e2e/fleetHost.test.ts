import * as assert from "assert";
import { Fleet, startFleet } from "../../local/fleet";
import { DeployHarness } from "../../local/harness";
import { get } from "../../local/http";
import { outputOf } from "../../local/stack";
import { accepts } from "../../local/target";

/**
 * Issue 12, a fleet of one: a single-server stack deploys to a host of its own (a fleet host:
 * network namespace, own address and loopback, local/fleet.ts), not to this machine's loopback.
 * The app's slots run on the host's loopback, nginx answers on the host's address, the database
 * is reached across the fleet's network, and an upgrade serves the new version there.
 */
describe("e2e: a single-server stack deployed to a fleet host (its own address and loopback)", function () {
  let fleet: Fleet;
  let h: DeployHarness;

  before(async () => {
    if (process.getuid?.() !== 0) throw new Error("fleet hosts: `ip netns` needs root");
    fleet = await startFleet(["app1"]);
    const app1 = fleet.host("app1");
    h = new DeployHarness(`t-fleet1-${process.pid}`, { target: app1.target, gateway: fleet.gateway, subnet: fleet.subnet });
    await h.start();
  });
  after(async () => {
    await h?.stop();
    await fleet?.stop();
  });

  it("deploys v1.2.2 to the host: served on its address, its slots on its own loopback, not this machine's", async () => {
    const r = await h.up("fresh deploy on a fleet host");
    assert.strictEqual(r.code, 0, outputOf(r));
    const app1 = fleet.host("app1");
    const health = await get(80, "/health", { host: app1.address });
    assert.strictEqual(health.status, 200, health.body);
    assert.strictEqual(JSON.parse(health.body).version, "1.2.2");
    // The live slot listens on the host's loopback: this machine's has nothing on that port.
    const slotPort = h.opts.slotPorts[h.outputs().apps.orchestrator.slot as "blue" | "green"];
    assert.strictEqual(await accepts(slotPort), false, `this machine's 127.0.0.1:${slotPort} answers: the slot runs outside the host`);
  });

  it("upgrades to v1.2.3 with its migration: the host serves 1.2.3", async () => {
    h.configure({ refs: { orchestrator: "v1.2.3", sevastopol: "v1.2.3" } });
    const r = await h.up("upgrade on a fleet host");
    assert.strictEqual(r.code, 0, outputOf(r));
    assert.strictEqual(await h.servedVersion(), "1.2.3");
  });
});
