import * as assert from "assert";
import { runOverSsh, SshConnection } from "../../components/ssh";
import { Fleet, FleetHost, startFleet } from "../../local/fleet";
import { get } from "../../local/http";
import { accepts } from "../../local/target";

/**
 * Issue 12: the hosts a fleet deploy is tested on. Three hosts, each a network namespace with its
 * own address, loopback, sshd and nginx (local/fleet.ts), reached the way the deploy reaches a
 * server: over SSH with the host key pinned (components/ssh.ts).
 */
describe("integration: fleet hosts (network namespaces with their own address, loopback, sshd and nginx)", function () {
  let fleet: Fleet;
  const conn = (h: FleetHost, dialAttempts = 3): SshConnection => ({ ...h.target.ssh, dialAttempts });
  const run = async (h: FleetHost, script: string, timeoutMs = 20_000) => {
    const r = await runOverSsh(conn(h), script, undefined, timeoutMs);
    assert.strictEqual(r.code, 0, `${h.name}: ${script}\n${r.stderr}`);
    return r.stdout.trim();
  };

  before(async () => {
    if (process.getuid?.() !== 0) throw new Error("fleet hosts: `ip netns` needs root");
    fleet = await startFleet(["web1", "web2", "db"]);
  });
  after(async () => {
    await fleet?.stop();
  });

  it("each host answers SSH at its own address with its own pinned host key, and runs scripts in its namespace", async () => {
    const addresses = fleet.hosts.map((h) => h.address);
    assert.strictEqual(new Set(addresses).size, 3, `addresses: ${addresses.join(", ")}`);
    assert.strictEqual(new Set(fleet.hosts.map((h) => h.target.ssh.hostKey)).size, 3, "the hosts share a host key");
    for (const h of fleet.hosts) {
      assert.strictEqual(await run(h, "ip -4 -o addr show eth0 | awk '{print $4}'"), `${h.address}/24`);
      // Another host's key pinned: refused, nothing run.
      const other = fleet.hosts.find((x) => x !== h)!;
      await assert.rejects(runOverSsh({ ...conn(h), hostKey: other.target.ssh.hostKey }, "true", undefined, 10_000), /host key/i);
    }
  });

  it("a host's loopback is its own: a server on web1's 127.0.0.1 is not on web2's", async () => {
    const [web1, web2] = [fleet.host("web1"), fleet.host("web2")];
    const server = `require("http").createServer((q, s) => s.end("web1")).listen(18080, "127.0.0.1")`;
    await run(web1, `nohup node -e '${server}' >/dev/null 2>&1 & echo $! > fleet-test.pid`);
    try {
      assert.strictEqual(
        await run(web1, "for i in $(seq 50); do curl -fsS http://127.0.0.1:18080/ && exit 0; sleep 0.1; done; exit 1"),
        "web1",
      );
      assert.strictEqual(
        await run(web2, "curl -sS -m 2 http://127.0.0.1:18080/ >/dev/null 2>&1 && echo reached || echo refused"),
        "refused",
      );
    } finally {
      await run(web1, `kill "$(cat fleet-test.pid)"; rm -f fleet-test.pid`);
    }
  });

  it("hosts reach each other and this machine reaches them by address (a load balancer's view): each nginx answers on :80", async () => {
    const [web1, web2, db] = [fleet.host("web1"), fleet.host("web2"), fleet.host("db")];
    assert.strictEqual(await run(db, `curl -sS -m 3 http://${web2.address}/`), "no release yet");
    assert.strictEqual(await run(web2, `curl -sS -m 3 http://${web1.address}/`), "no release yet");
    const r = await get(80, "/", { host: web1.address });
    assert.strictEqual(r.status, 503);
  });

  it("a host cut off the network in the middle of a step: the step fails within seconds as dropped (TCP keepalive), not after its timeout", async () => {
    const web1 = fleet.host("web1");
    await run(web1, "true"); // a pooled connection, as a deploy's steps have
    const started = Date.now();
    const step = runOverSsh(conn(web1), "echo started; sleep 120; echo done", undefined, 600_000);
    await new Promise((r) => setTimeout(r, 1000));
    fleet.cut("web1");
    try {
      await assert.rejects(step, /the connection dropped after the script started;[\s\S]*started/);
      const took = Date.now() - started;
      assert.ok(took < 40_000, `the step failed after ${took} ms`);
      console.log(`      (the step on the cut host failed after ${took} ms)`);
    } finally {
      fleet.restore("web1");
    }
    assert.strictEqual(await run(web1, "echo back"), "back");
  });

  it("a host cut off the network stops answering while the others go on; put back, it answers again", async () => {
    const [web1, web2] = [fleet.host("web1"), fleet.host("web2")];
    fleet.cut("web2");
    try {
      assert.strictEqual(await accepts(22, web2.address), false, "web2 still accepts SSH after its link went down");
      assert.strictEqual(await accepts(22, web1.address), true);
      // A new connection (the pool's connection to web2 from the tests before would wait for its exec's timeout).
      process.env.NOSTROMO_SSH_POOL = "0";
      const started = Date.now();
      await assert.rejects(runOverSsh(conn(web2, 1), "true", undefined, 5_000));
      const took = Date.now() - started;
      assert.ok(took < 25_000, `the failed dial took ${took} ms`);
      console.log(`      (a new connection to the cut host failed after ${took} ms)`);
    } finally {
      delete process.env.NOSTROMO_SSH_POOL;
      fleet.restore("web2");
    }
    assert.strictEqual(await run(web2, "echo back"), "back");
  });
});
