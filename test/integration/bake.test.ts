import * as assert from "assert";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { DeployConfig, parseDeployConfig } from "../../lib/config";
import { bakeApps, bakeLines, parseBakeVerdict } from "../../lib/scripts/bake";
import { freePort } from "../../local/postgres";
import { runBash } from "../support/bash";
import { validRaw } from "../support/validConfig";

/**
 * Issue 11: the bake program, run as the cutover runs it (bash, node), on an access log in the
 * site's format (`$msec $status $upstream_addr $request_time`) and a slot's PM2 log files,
 * written by the test around a switch it places 0.2 s before the bake starts. A loopback HTTP
 * server stands in for nginx's public port when too few requests call for probes.
 */
describe("integration: the bake window's verdict (built lines, bash, an access log and slot logs)", () => {
  let root: string;
  let pm2Home: string;
  let nginxPort: number;
  let probeStatus = 200;
  let probes = 0;
  let server: http.Server;
  const NEW = 8002;
  const OLD = 8001;

  before(async () => {
    nginxPort = await freePort();
    server = http.createServer((_req, res) => {
      probes++;
      res.statusCode = probeStatus;
      res.end("{}");
    });
    await new Promise<void>((r) => server.listen(nginxPort, "127.0.0.1", () => r()));
  });
  after(() => server.close());

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-bake-"));
    pm2Home = path.join(root, "pm2");
    fs.mkdirSync(path.join(pm2Home, "logs"), { recursive: true });
    fs.mkdirSync(path.join(root, "logs"));
    fs.mkdirSync(path.join(root, "slots", "orchestrator"), { recursive: true });
    probes = 0;
    probeStatus = 200;
  });

  function config(bake: Record<string, unknown>): DeployConfig {
    const raw = validRaw();
    raw.server.root = root;
    raw.nginx.port = nginxPort;
    raw.bake = { seconds: 1, ...bake };
    return parseDeployConfig("local", raw, { sshPrivateKey: true, databaseUrl: true });
  }

  /** Access log lines: `n` requests to `port` at `at` (epoch ms), every `every`-th a 500, each taking `ms`. */
  function requests(port: number, at: number, n: number, every: number, ms: number): string {
    return Array.from(
      { length: n },
      (_, i) => `${((at + i) / 1000).toFixed(3)} ${every > 0 && i % every === 0 ? 500 : 200} 127.0.0.1:${port} ${(ms / 1000).toFixed(3)}\n`,
    ).join("");
  }

  /** The bake as the cutover runs it; `during` writes what the new slot's traffic and logs show. */
  async function bake(cfg: DeployConfig, during: (switchAt: number) => void) {
    // The slot started with empty logs: the old lines (before its start mark) must not count.
    fs.writeFileSync(path.join(pm2Home, "logs", "orchestrator-green-error.log"), "an old FATAL line of an earlier start\n");
    const mark = fs.statSync(path.join(pm2Home, "logs", "orchestrator-green-error.log")).size;
    fs.writeFileSync(path.join(root, "slots", "orchestrator", "green.start"), `${Math.floor(Date.now() / 1000)} 0 ${mark}\n`);
    const switchAt = Date.now() - 200;
    during(switchAt);
    const target = { app: cfg.apps[0], slot: "green", port: NEW };
    const text = [
      "set -eu",
      `nostromo_tmp=$(mktemp -d); switched=" orchestrator"; switch_at=${switchAt}`,
      ...bakeLines(cfg, bakeApps(cfg, [target]), [`echo "bundle here" >&2`]),
      `echo "result: $bake"`,
    ].join("\n");
    const r = await runBash(text, { PM2_HOME: pm2Home });
    const verdict = parseBakeVerdict(/^bake-json (.*)$/m.exec(r.stdout)?.[1]);
    return { ...r, verdict };
  }

  const accessLog = () => path.join(root, "logs", "access.log");

  it("passes a healthy release: its figures beside the old slot's from the window before the switch", async () => {
    const cfg = config({});
    const r = await bake(cfg, (at) =>
      fs.writeFileSync(
        accessLog(),
        requests(OLD, at - 900, 40, 0, 5) + requests(NEW, at + 10, 50, 0, 6) + requests(8003, at + 10, 5, 1, 5),
      ),
    );
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual(r.verdict?.verdict, "passed");
    assert.deepStrictEqual(r.verdict?.apps.orchestrator, {
      requests: 50,
      errors: 0,
      errorPercent: 0,
      p95Ms: 6,
      requestsBefore: 40,
      p95BeforeMs: 5,
    });
    assert.match(
      r.stdout,
      /^bake orchestrator: 50 requests to the new slot, 0 5xx \(0%\), p95 6 ms; before the switch: 40 requests, p95 5 ms$/m,
    );
    assert.strictEqual(probes, 0);
  });

  it("fails a release that answers 500 to 20% of requests, naming the rate and the limit, and shows the bundle", async () => {
    const cfg = config({ maxErrorPercent: 10 });
    const r = await bake(cfg, (at) => fs.writeFileSync(accessLog(), requests(NEW, at + 10, 50, 5, 5)));
    assert.strictEqual(r.code, 1);
    assert.strictEqual(r.verdict?.verdict, "failed");
    assert.match(r.stderr, /bake failed after \d+\.\d s: orchestrator: 20% of 50 requests to the new slot answered 5xx \(max 10%\)/);
    assert.match(r.stderr, /bundle here/);
  });

  it("fails on a log pattern in the slot's own lines since its start, not on older ones", async () => {
    const cfg = config({});
    const clean = await bake(cfg, (at) => fs.writeFileSync(accessLog(), requests(NEW, at + 10, 30, 0, 5)));
    assert.strictEqual(clean.code, 0, clean.stderr);
    const r = await bake(cfg, (at) => {
      fs.writeFileSync(accessLog(), requests(NEW, at + 10, 30, 0, 5));
      fs.appendFileSync(path.join(pm2Home, "logs", "orchestrator-green-error.log"), "2026-12-02T10:00:00: FATAL cannot reach the cache\n");
    });
    assert.strictEqual(r.code, 1);
    assert.match(r.stderr, /orchestrator: its log has "FATAL": 2026-12-02T10:00:00: FATAL cannot reach the cache/);
  });

  it("fails a p95 more than p95Factor times the old slot's, and not one within the floor", async () => {
    const slow = await bake(config({ p95Factor: 3, p95FloorMs: 100 }), (at) =>
      fs.writeFileSync(accessLog(), requests(OLD, at - 900, 40, 0, 20) + requests(NEW, at + 10, 40, 0, 400)),
    );
    assert.strictEqual(slow.code, 1);
    assert.match(slow.stderr, /orchestrator: p95 400 ms is more than 3x the old slot's 20 ms/);
    const noise = await bake(config({ p95Factor: 3, p95FloorMs: 100 }), (at) =>
      fs.writeFileSync(accessLog(), requests(OLD, at - 900, 40, 0, 2) + requests(NEW, at + 10, 40, 0, 9)),
    );
    assert.strictEqual(noise.code, 0, noise.stderr);
  });

  it("too few requests: says so, probes the health and smoke GETs, then follows tooFew; a failing probe fails", async () => {
    const pass = await bake(config({ minRequests: 5 }), (at) => fs.writeFileSync(accessLog(), requests(NEW, at + 10, 2, 0, 5)));
    assert.strictEqual(pass.code, 0, pass.stderr);
    assert.match(pass.stdout, /too few requests to judge: orchestrator \(2\) under 5; probing with the health and smoke GETs/);
    assert.ok(probes >= 5, `${probes} probes`);
    assert.match(pass.verdict?.note ?? "", /probes passed; bake\.tooFew is pass/);

    const strict = await bake(config({ minRequests: 5, tooFew: "fail" }), () => fs.writeFileSync(accessLog(), ""));
    assert.strictEqual(strict.code, 1);
    assert.match(strict.stderr, /too few requests to judge \(orchestrator \(0\)\); probes passed; bake\.tooFew is fail/);

    probeStatus = 503;
    const bad = await bake(config({ minRequests: 5 }), () => fs.writeFileSync(accessLog(), ""));
    assert.strictEqual(bad.code, 1);
    assert.match(bad.stderr, /probe request\(s\) failed/);
  });
});
