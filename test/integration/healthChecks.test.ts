/**
 * The built health gate and refresh check, run with bash against a small HTTP server on
 * 127.0.0.1 that answers as a slot would (issue 10: the staging runbook's three paths, each
 * with its own fields). Needs bash, curl and node.
 */
import * as assert from "assert";
import * as fs from "fs";
import * as http from "http";
import { AddressInfo } from "net";
import * as os from "os";
import * as path from "path";
import { DeployConfig, parseDeployConfig } from "../../lib/config";
import { healthGate, slotCheckScript } from "../../lib/scripts";
import { runBash } from "../support/bash";
import { validRaw } from "../support/validConfig";

/** What the slot answers on each path: status and body (an object is sent as JSON). */
type Answers = Record<string, [number, unknown]>;

const RUNBOOK_CHECKS = [
  { path: "/api/health", expect: { status: "healthy" }, versionField: "version" },
  { path: "/api/db-check", expect: { database: "connected" } },
  { path: "/api/cache-check", expect: { cache: "connected" } },
];
const HEALTHY: Answers = {
  "/api/health": [200, { status: "healthy", version: "1.2.3" }],
  "/api/db-check": [200, { database: "connected" }],
  "/api/cache-check": [200, { cache: "connected" }],
};
const AFTER = "the new slot was stopped; nothing was switched";
const SHA = "0123456789abcdef0123456789abcdef01234567";

describe("integration: health checks run with bash against a local HTTP server (issue 10)", () => {
  let server: http.Server;
  let port: number;
  let answers: Answers = HEALTHY;
  let asked: string[] = [];
  let root: string;

  before(async () => {
    server = http.createServer((req, res) => {
      asked.push(req.url ?? "");
      const [status, body] = answers[req.url ?? ""] ?? [404, { error: "not found" }];
      res.writeHead(status, { "content-type": typeof body === "string" ? "text/plain" : "application/json" });
      res.end(typeof body === "string" ? body : JSON.stringify(body));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
    root = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-health-"));
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(root, { recursive: true, force: true });
  });
  beforeEach(() => {
    answers = HEALTHY;
    asked = [];
  });

  /** The config with orchestrator's `health`, its blue slot on the test server's port. */
  function config(health: Record<string, unknown>): DeployConfig {
    const raw = validRaw();
    raw.server.root = root;
    raw.apps.orchestrator.health = health;
    raw.apps.orchestrator.ref = "v1.2.3";
    raw.apps.orchestrator.ports = { blue: port, green: port === 65535 ? 1024 : port + 1 };
    return parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
  }

  /** The health gate of orchestrator 1.2.3 on the test server, with a stop_slot that says it ran. */
  function gate(health: Record<string, unknown>) {
    const app = config(health).apps[0];
    return runBash(
      [
        "set -eu",
        `nostromo_tmp=$(mktemp -d)`,
        `trap 'rm -rf "$nostromo_tmp"' EXIT`,
        `stop_slot() { echo "stop_slot ran" >&2; }`,
        healthGate(app, "1.2.3", String(port), AFTER),
      ].join("\n"),
    );
  }

  it("passes when every path answers its own fields, the version on /api/health", async () => {
    const r = await gate({ checks: RUNBOOK_CHECKS, timeoutSeconds: 2 });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual(r.stdout.trim(), `health ok: orchestrator 1.2.3 on port ${port}`);
    assert.deepStrictEqual(asked, ["/api/health", "/api/db-check", "/api/cache-check"]);
  });

  it("fails when /api/db-check answers database: disconnected, naming the path, the field, what was expected and what came back", async () => {
    answers = { ...HEALTHY, "/api/db-check": [200, { database: "disconnected" }] };
    const r = await gate({ checks: RUNBOOK_CHECKS, timeoutSeconds: 1 });
    assert.strictEqual(r.code, 1, r.stdout);
    assert.match(r.stderr, /^stop_slot ran$/m);
    assert.ok(
      r.stderr.includes(
        `health check failed for orchestrator: http://127.0.0.1:${port}/api/db-check expected HTTP 200 with {"database":"connected"}, ` +
          `got HTTP 200 (field database is "disconnected"): {"database":"disconnected"} (${AFTER})`,
      ),
      r.stderr,
    );
    assert.ok(!asked.includes("/api/cache-check"), "the gate went on after a failed path");
  });

  it("fails naming /api/health and its version field when the slot runs another version, and a path that answers 503", async () => {
    answers = { ...HEALTHY, "/api/health": [200, { status: "healthy", version: "1.2.2" }] };
    let r = await gate({ checks: RUNBOOK_CHECKS, timeoutSeconds: 1 });
    assert.strictEqual(r.code, 1);
    assert.ok(
      r.stderr.includes(
        `/api/health expected HTTP 200 with {"status":"healthy","version":"1.2.3"}, got HTTP 200 (field version is "1.2.2"): {"status":"healthy","version":"1.2.2"}`,
      ),
      r.stderr,
    );
    answers = { ...HEALTHY, "/api/cache-check": [503, { cache: "unreachable" }] };
    r = await gate({ checks: RUNBOOK_CHECKS, timeoutSeconds: 1 });
    assert.strictEqual(r.code, 1);
    assert.ok(
      r.stderr.includes(`/api/cache-check expected HTTP 200 with {"cache":"connected"}, got HTTP 503: {"cache":"unreachable"}`),
      r.stderr,
    );
  });

  it("waits within the deadline for a path that comes up (disconnected first, then connected)", async () => {
    answers = { ...HEALTHY, "/api/db-check": [200, { database: "disconnected" }] };
    setTimeout(() => (answers = HEALTHY), 1500);
    const r = await gate({ checks: RUNBOOK_CHECKS, timeoutSeconds: 10 });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.ok(asked.filter((p) => p === "/api/db-check").length >= 2, asked.join(" "));
  });

  it("the shorthand: extraPaths need only a 200 (any body), the main path its fields", async () => {
    answers = { ...HEALTHY, "/ready": [200, "OK"] };
    const health = { path: "/api/health", expect: { status: "healthy" }, extraPaths: ["/ready"], timeoutSeconds: 1 };
    assert.strictEqual((await gate(health)).code, 0);
    answers = { ...HEALTHY, "/ready": [500, "starting"] };
    const r = await gate(health);
    assert.strictEqual(r.code, 1);
    assert.ok(r.stderr.includes(`/ready expected HTTP 200, got HTTP 500: starting (${AFTER})`), r.stderr);
  });

  it("refresh check: a slot running the release answers every path, else exit 3 naming the path and the field", async () => {
    const slots = path.join(root, "slots", "orchestrator");
    fs.mkdirSync(slots, { recursive: true });
    fs.symlinkSync(path.join(root, "releases", "orchestrator", SHA), path.join(slots, "blue"));
    const cfg = config({ checks: RUNBOOK_CHECKS });
    let r = await runBash(slotCheckScript(cfg, cfg.apps[0], SHA, "1.2.3"));
    assert.strictEqual(r.code, 0, r.stdout + r.stderr);
    assert.strictEqual(r.stdout.trim(), "orchestrator 0123456789ab runs in slot blue");
    answers = { ...HEALTHY, "/api/db-check": [200, { database: "disconnected" }] };
    r = await runBash(slotCheckScript(cfg, cfg.apps[0], SHA, "1.2.3"));
    assert.strictEqual(r.code, 3, r.stdout + r.stderr);
    assert.strictEqual(
      r.stdout.trim(),
      `orchestrator: no slot runs 0123456789ab and answers /api/health /api/db-check /api/cache-check ` +
        `(blue: /api/db-check answered (field database is "disconnected") {"database":"disconnected"}; green: other release;)`,
    );
  });
});
