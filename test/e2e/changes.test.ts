import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { REPO_ROOT } from "../../local/backend";
import { DeployHarness } from "../../local/harness";
import { get, request } from "../../local/http";
import { localConfig, outputOf, setPlainConfig } from "../../local/stack";
import { showPreview } from "../support/preview";
import { trafficLoop } from "../support/traffic";

const JWT_BEFORE = "jwt-secret-before-the-rotation-0123456789";
const JWT_AFTER = "jwt-secret-after-the-rotation-9876543210";

/**
 * Issue 8, observations 1 and 2: what is not a new commit (a rotated secret, an env value, a
 * config change, a retry) goes through the same lock, preflight, health gate, switch and journal.
 */
describe("e2e: every change reaches the server through the lock, the health gate and the journal", function () {
  const h = new DeployHarness(`t-chg${process.pid}`);
  const port = () => h.target.nginx.port;
  const lockDir = () => path.join(h.target.root, ".lock");
  const live = () => fs.readFileSync(path.join(h.target.root, "slots", "orchestrator", "live"), "utf8").trim();
  const slotPort = (slot: string) => h.opts.slotPorts[slot as "blue" | "green"];

  async function login(p: number): Promise<string> {
    const r = await request(p, "POST", "/api/command/auth/login", { json: { username: "admin", password: "special-order-937" } });
    assert.strictEqual(r.status, 200, r.body);
    return JSON.parse(r.body).token;
  }
  const me = (p: number, token: string) => request(p, "GET", "/api/command/me", { headers: { authorization: `Bearer ${token}` } });

  /** The environment of the PM2 process of a slot, as the kernel has it. */
  function processEnv(slot: string): Record<string, string> {
    const list = JSON.parse(execFileSync("pm2", ["jlist"], { encoding: "utf8", env: { ...process.env, ...h.target.env } }));
    const pid = list.find((p: { name: string }) => p.name === `orchestrator-${slot}`)?.pid;
    assert.ok(pid, `no PM2 process orchestrator-${slot}`);
    // PM2 runs bash, which execs node: the pid is node's.
    const raw = fs.readFileSync(`/proc/${pid}/environ`, "utf8");
    return Object.fromEntries(
      raw
        .split("\0")
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
    );
  }

  function config(change: (cfg: any) => void = () => undefined): void {
    const cfg = localConfig(h.opts) as any;
    change(cfg);
    setPlainConfig(h.stack, cfg);
  }

  before(async () => {
    await h.start({ orchestrator: "v1.2.2", sevastopol: "v1.2.2" }, undefined, { jwtSecret: JWT_BEFORE });
    const r = await h.up("baseline deploy");
    assert.strictEqual(r.code, 0, outputOf(r));
  });
  after(() => h.stop());

  it("2. a rotated secret: the preview names it, both slots restart with it, no request fails, the journal and the webhook-free record say so", async () => {
    const oldToken = await login(port());
    assert.strictEqual((await me(port(), oldToken)).status, 200);
    const before = { live: live(), journal: h.journal().length };

    h.backend.pulumiOk(REPO_ROOT, ["config", "set", "--secret", "jwtSecret", JWT_AFTER, "--stack", h.stack]);
    const preview = h.backend.pulumiOk(REPO_ROOT, ["preview", "--diff", "--stack", h.stack]).stdout;
    assert.match(
      preview,
      /orchestrator: 1\.2\.2 \(\w{12}\), restart with new environment \(JWT_SECRET changed\): start \+ health check, switch/,
    );
    assert.ok(!preview.includes(JWT_AFTER) && !preview.includes(JWT_BEFORE), "the preview shows a secret value");

    const traffic = trafficLoop(port());
    const r = await h.up("secret rotation");
    const t = await traffic.finish();
    console.log(`      secret rotation: ${t.sent} requests sent during it, ${t.failures.length} failed`);
    assert.strictEqual(r.code, 0, outputOf(r));
    assert.deepStrictEqual(t.failures.slice(0, 5), []);
    assert.ok(t.sent > 20, `only ${t.sent} requests were sent`);

    // The live slot is a new one, running with the new secret: old tokens are refused.
    assert.notStrictEqual(live(), before.live);
    assert.strictEqual((await me(port(), oldToken)).status, 401);
    assert.strictEqual((await me(port(), await login(port()))).status, 200);
    assert.strictEqual(processEnv(live()).JWT_SECRET, JWT_AFTER);
    // The slot kept for rollback was restarted with it too: a rollback cannot bring the old secret back.
    assert.strictEqual(processEnv(before.live).JWT_SECRET, JWT_AFTER);
    assert.strictEqual((await me(slotPort(before.live), oldToken)).status, 401);

    const journal = h.journal();
    assert.strictEqual(journal.length, before.journal + 1, "no journal line for the rotation");
    assert.ok(journal.at(-1).durationSeconds >= 1, JSON.stringify(journal.at(-1)));
    assert.ok(!JSON.stringify(journal).includes(JWT_AFTER));
    assert.ok(!fs.existsSync(lockDir()), "the server lock was not released");

    const again = await h.up("no change after the rotation");
    assert.strictEqual(again.code, 0, outputOf(again));
    assert.doesNotMatch(outputOf(again), /updated|created/);
    assert.strictEqual(h.journal().length, before.journal + 1);
  });

  it("2. an env value change (apps.*.env) restarts the app with it through the health gate", async () => {
    const before = { live: live(), journal: h.journal().length };
    config((cfg) => (cfg.apps.orchestrator.env = { NODE_ENV: "production", GREETING: "hello from the stack" }));
    const preview = h.backend.pulumiOk(REPO_ROOT, ["preview", "--diff", "--stack", h.stack]).stdout;
    showPreview("env change", preview);
    assert.match(preview, /restart with new environment \(GREETING changed\)/);
    const r = await h.up("env change");
    assert.strictEqual(r.code, 0, outputOf(r));
    // A new slot took the traffic: it passed the health gate and the cutover's check of its answer.
    assert.notStrictEqual(live(), before.live);
    assert.strictEqual(processEnv(live()).GREETING, "hello from the stack");
    assert.strictEqual(h.journal().length, before.journal + 1);
  });

  it("1. a retry after a failed deploy is refused while another stack holds the server lock, then runs under the lock", async () => {
    // A deploy of 1.2.3 that fails its health gate (a field the app never answers).
    h.configure({ refs: { orchestrator: "v1.2.3", sevastopol: "v1.2.2" } });
    config((cfg) => Object.assign(cfg.apps.orchestrator.health, { expect: { status: "never" }, timeoutSeconds: 3 }));
    const failed = await h.up("failed deploy");
    assert.notStrictEqual(failed.code, 0);
    assert.match(outputOf(failed), /the server lock stays with this update/);
    assert.strictEqual(fs.readFileSync(path.join(lockDir(), "stack"), "utf8").trim(), h.stack);

    // Another stack takes the server (the operator cleared ours by hand).
    fs.rmSync(lockDir(), { recursive: true });
    fs.mkdirSync(lockDir());
    fs.writeFileSync(path.join(lockDir(), "stack"), "staging\n");
    fs.writeFileSync(path.join(lockDir(), "lease"), "staging/2026-11-22T10:00:00Z-abcd\n");
    fs.writeFileSync(path.join(lockDir(), "owner"), "ops@elsewhere\n");
    fs.writeFileSync(path.join(lockDir(), "since"), "2026-11-22T10:00:00Z\n");
    const before = { live: live(), journal: h.journal().length, version: await h.servedVersion() };

    // The retry, with the health check fixed: refused before it changes anything.
    config();
    const refused = await h.up("retry while another stack holds the lock");
    assert.notStrictEqual(refused.code, 0);
    assert.match(
      outputOf(refused),
      /deploy lock held by stack 'staging' \(update staging\/2026-11-22T10:00:00Z-abcd, ops@elsewhere, since 2026-11-22T10:00:00Z\); nothing was changed/,
    );
    assert.strictEqual(live(), before.live);
    assert.strictEqual(h.journal().length, before.journal);
    assert.strictEqual(await h.servedVersion(), before.version);
    assert.strictEqual(fs.readFileSync(path.join(lockDir(), "stack"), "utf8").trim(), "staging");

    // Once the other stack is done, the retry takes the lock (after preflight) and finishes.
    fs.rmSync(lockDir(), { recursive: true });
    const retried = await h.up("retry");
    assert.strictEqual(retried.code, 0, outputOf(retried));
    assert.strictEqual(await h.servedVersion(), "1.2.3");
    const last = h.journal().at(-1);
    assert.strictEqual(h.journal().length, before.journal + 1);
    assert.strictEqual(last.apps.orchestrator.version, "1.2.3");
    assert.ok(last.durationSeconds >= 1, JSON.stringify(last));
    // Written under this update's own lease (taken after the preflight checks), not the failed one's.
    assert.match(last.lease, new RegExp(`^${h.stack}/`));
    assert.notStrictEqual(last.lease, h.journal().at(-2).lease);
    assert.ok(!fs.existsSync(lockDir()), "the server lock was not released");
    const health = await get(port(), "/health");
    assert.strictEqual(health.status, 200);
  });
});
