import * as assert from "assert";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { DeployConfig, parseDeployConfig } from "../../lib/config";
import { parseProbe, ROLLBACK_SWITCH_REFUSED, rollbackSwitchScript, switchProbeScript } from "../../lib/scripts";
import { guessTargets } from "../../tools/rollbackSwitch";
import { freePort } from "../../local/postgres";
import { runBash } from "../support/bash";
import { validRaw } from "../support/validConfig";

const OLD = "0000000000000000000000000000000000000000"; // the release to go back to (1.2.2)
const NEW = "1111111111111111111111111111111111111111"; // the release serving now (1.2.3)

/**
 * Issue 11: the rollback tool's switch, run with bash against a temporary root: orchestrator's
 * blue slot serves 1.2.3, its green slot still runs 1.2.2 (two loopback HTTP servers answering
 * /health), sevastopol's 1.2.2 release is still on disk. The probe finds green; the switch moves
 * nginx's live link, the live slot and both `current` links, under a lock of its own. nginx is a
 * stand-in answering what nginx would: the upstream the live link leads to (nginx.ts).
 */
describe("integration: the rollback switch (built scripts, bash, a temp root, two slots answering)", () => {
  let root: string;
  let cfg: DeployConfig;
  let ports: { blue: number; green: number };
  const servers: http.Server[] = [];
  let greenVersion = "1.2.2";
  /** The stand-in nginx cannot read the live link (as a worker without the rights): it keeps blue. */
  let nginxBlind = false;
  const L = (...p: string[]) => path.join(root, ...p);
  const targets = () => [
    { app: cfg.apps[0], sha: OLD },
    { app: cfg.apps[1], sha: OLD },
  ];

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-rbswitch-"));
    ports = { blue: await freePort(), green: await freePort() };
    for (const [slot, version] of [
      ["blue", () => "1.2.3"],
      ["green", () => greenVersion],
    ] as const) {
      const s = http.createServer((_req, res) => res.end(JSON.stringify({ status: "ok", version: version() })));
      await new Promise<void>((r) => s.listen(ports[slot], "127.0.0.1", () => r()));
      servers.push(s);
    }
    const nginxPort = await freePort();
    const nginx = http.createServer((req, res) =>
      res.end(
        req.url === "/.nostromo/live/orchestrator"
          ? `nostromo_orchestrator_${!nginxBlind && fs.existsSync(L("nginx-upstreams", "orchestrator", "green")) ? "green" : "blue"}\n`
          : "",
      ),
    );
    await new Promise<void>((r) => nginx.listen(nginxPort, "127.0.0.1", () => r()));
    servers.push(nginx);
    const raw = validRaw();
    raw.server.root = root;
    raw.nginx.port = nginxPort;
    raw.apps.orchestrator.ports = ports;
    cfg = parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
    for (const d of [
      "releases/orchestrator",
      "releases/sevastopol",
      "slots/orchestrator",
      "current",
      "nginx-upstreams/orchestrator.blue",
      "nginx-upstreams/orchestrator.green",
    ])
      fs.mkdirSync(L(d), { recursive: true });
    for (const sha of [OLD, NEW]) {
      fs.mkdirSync(L("releases", "orchestrator", sha));
      fs.mkdirSync(L("releases", "sevastopol", sha, "dist"), { recursive: true });
      fs.writeFileSync(L("releases", "sevastopol", sha, "dist", "index.html"), `<p>${sha}</p>`);
    }
    fs.symlinkSync(L("releases", "orchestrator", NEW), L("slots", "orchestrator", "blue"));
    fs.symlinkSync(L("releases", "orchestrator", OLD), L("slots", "orchestrator", "green"));
    fs.writeFileSync(L("slots", "orchestrator", "live"), "blue\n");
    fs.writeFileSync(L("nginx-upstreams", "orchestrator.green", "green"), "");
    fs.symlinkSync("orchestrator.blue", L("nginx-upstreams", "orchestrator"));
    fs.symlinkSync(L("releases", "orchestrator", NEW), L("current", "orchestrator"));
    fs.symlinkSync(L("releases", "sevastopol", NEW), L("current", "sevastopol"));
  });
  after(() => {
    servers.forEach((s) => s.close());
    fs.rmSync(root, { recursive: true, force: true });
  });

  const switchTargets = () => [
    { app: cfg.apps[0], sha: OLD, slot: "green", port: ports.green },
    { app: cfg.apps[1], sha: OLD },
  ];
  const serving = () => ({
    link: fs.readlinkSync(L("nginx-upstreams", "orchestrator")),
    live: fs.readFileSync(L("slots", "orchestrator", "live"), "utf8").trim(),
    orchestrator: path.basename(fs.readlinkSync(L("current", "orchestrator"))),
    sevastopol: path.basename(fs.readlinkSync(L("current", "sevastopol"))),
  });
  const servedBefore = () => ({ link: "orchestrator.blue", live: "blue", orchestrator: NEW, sevastopol: NEW });

  it("the probe names the slot that runs the old release and answers with its version; otherwise why not", async () => {
    const r = await runBash(switchProbeScript(cfg, targets()));
    assert.strictEqual(r.code, 0, r.stderr);
    assert.deepStrictEqual(parseProbe(r.stdout), [
      { app: "orchestrator", slot: "green", port: ports.green },
      { app: "sevastopol", slot: "static", port: 0 },
    ]);
    greenVersion = "9.9.9";
    try {
      const wrong = parseProbe((await runBash(switchProbeScript(cfg, targets()))).stdout);
      assert.deepStrictEqual(wrong[0], { app: "orchestrator", why: "no slot runs 000000000000 and answers its health checks" });
    } finally {
      greenVersion = "1.2.2";
    }
    const gone = parseProbe((await runBash(switchProbeScript(cfg, [{ app: cfg.apps[1], sha: "2".repeat(40) }]))).stdout);
    assert.deepStrictEqual(gone, [{ app: "sevastopol", why: "release 222222222222 is not on the server" }]);
  });

  it("refused while any deploy holds the lock: exit 3, nothing switched", async () => {
    fs.mkdirSync(L(".lock"));
    fs.writeFileSync(L(".lock", "stack"), "unit\n");
    try {
      const r = await runBash(rollbackSwitchScript(cfg, switchTargets()));
      assert.strictEqual(r.code, 3, r.stderr);
      assert.match(r.stderr, /rollback switch: the deploy lock is held by stack 'unit'.*; nothing was switched/);
      assert.deepStrictEqual(serving(), servedBefore());
    } finally {
      fs.rmSync(L(".lock"), { recursive: true });
    }
  });

  it("a switch failing half way (the static app's link cannot be swapped) puts everything back and says what serves", async () => {
    // A folder where the new `current` link is made: mv -T refuses to put it over the link.
    fs.mkdirSync(L("current", "sevastopol.new"));
    try {
      const r = await runBash(rollbackSwitchScript(cfg, switchTargets()));
      assert.strictEqual(r.code, 1);
      assert.match(
        r.stderr,
        /rollback switch failed; switched back: orchestrator\. Serving now: orchestrator=111111111111\/blue sevastopol=111111111111/,
      );
      assert.deepStrictEqual(serving(), servedBefore());
      assert.ok(!fs.existsSync(L(".lock")), "the lock was left behind");
    } finally {
      fs.rmSync(L("current", "sevastopol.new"), { recursive: true });
    }
  });

  it("nginx not routing to the new slot after the switch (it cannot read the link): the switch fails, everything goes back", async () => {
    nginxBlind = true;
    try {
      const r = await runBash(rollbackSwitchScript(cfg, switchTargets()));
      assert.strictEqual(r.code, 1);
      assert.match(
        r.stderr,
        /switch of orchestrator failed: nginx answers \S+\/\.nostromo\/live\/orchestrator\S* with 'nostromo_orchestrator_blue', not nostromo_orchestrator_green/,
      );
      assert.match(r.stderr, /rollback switch failed; switched back: orchestrator\. Serving now: orchestrator=111111111111\/blue/);
      assert.deepStrictEqual(serving(), servedBefore());
    } finally {
      nginxBlind = false;
    }
  });

  it("a wrong first guess (the slot that does not serve holds another release): refused before any switch, so the tool probes", async () => {
    // Blue serves 1.2.3, yet the outputs say green does (a hand-made switch, say): the guess is blue.
    const guess = guessTargets(targets(), { orchestrator: "green" })!;
    assert.deepStrictEqual(
      guess.map((t) => t.slot),
      ["blue", undefined],
    );
    const r = await runBash(rollbackSwitchScript(cfg, guess));
    assert.strictEqual(r.code, ROLLBACK_SWITCH_REFUSED, r.stderr);
    assert.match(r.stderr, /check failed for orchestrator: slot blue does not hold release 000000000000; nothing was switched/);
    assert.deepStrictEqual(serving(), servedBefore());
    assert.ok(!fs.existsSync(L(".lock")), "the lock was left behind");
    // No serving slot known for a node app: no guess at all.
    assert.strictEqual(guessTargets(targets(), {}), undefined);
  });

  it("a green slot whose release no longer answers its version: refused before any switch", async () => {
    greenVersion = "1.2.4";
    try {
      const r = await runBash(rollbackSwitchScript(cfg, switchTargets()));
      assert.strictEqual(r.code, ROLLBACK_SWITCH_REFUSED, r.stderr);
      assert.match(r.stderr, /check failed for orchestrator: .*nothing was switched/);
      assert.deepStrictEqual(serving(), servedBefore());
    } finally {
      greenVersion = "1.2.2";
    }
  });

  it("switches both apps to the old release (green slot, its live link, the current links), records it, releases the lock", async () => {
    // The first guess from the outputs (blue serves): green, which holds it.
    assert.deepStrictEqual(guessTargets(targets(), { orchestrator: "blue" }), switchTargets());
    const r = await runBash(rollbackSwitchScript(cfg, switchTargets()));
    assert.strictEqual(r.code, 0, r.stderr);
    assert.deepStrictEqual(serving(), { link: "orchestrator.green", live: "green", orchestrator: OLD, sevastopol: OLD });
    assert.match(
      r.stdout,
      /nostromo-result \{"lease":"unit\/rollback-switch-[^"]+","serving":"orchestrator=000000000000\/green sevastopol=000000000000"\}/,
    );
    assert.ok(!fs.existsSync(L(".lock")), "the lock was left behind");
    const events = fs
      .readFileSync(L("deploys.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.strictEqual(events.at(-1).event, "rollback-switch");
    assert.match(events.at(-1).lease, /^unit\/rollback-switch-\d{8}T\d{6}Z-\d+$/);
    // Again: already serving, nothing to switch.
    const again = await runBash(rollbackSwitchScript(cfg, switchTargets()));
    assert.strictEqual(again.code, 0, again.stderr);
    assert.match(again.stdout, /orchestrator already serves 000000000000/);
  });
});
