import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { REPO_ROOT } from "../../local/backend";
import { addVersion } from "../../local/exampleRepos";
import { DeployHarness } from "../../local/harness";
import { get } from "../../local/http";
import { outputOf } from "../../local/stack";
import { showPreview } from "../support/preview";

/**
 * Issue 8, observations 3 and 4: `refresh` reads what the servers really run and the next `up`
 * repairs it; the cutover is all or nothing, and what the tool says afterwards is true.
 */
describe("e2e: the servers' real state is read, and the cutover is all or nothing", function () {
  const h = new DeployHarness(`t-drift${process.pid}`);
  const port = () => h.target.nginx.port;
  const slotsDir = () => path.join(h.target.root, "slots", "orchestrator");
  const live = () => fs.readFileSync(path.join(slotsDir(), "live"), "utf8").trim();
  const liveLink = () => path.join(h.target.root, "nginx-upstreams", "orchestrator");
  const pm2 = (...args: string[]) => execFileSync("pm2", args, { encoding: "utf8", env: { ...process.env, ...h.target.env } });
  const frontendVersion = async () => {
    const r = await get(port(), "/version.json");
    return r.status === 200 ? JSON.parse(r.body).version : `HTTP ${r.status}`;
  };

  before(async () => {
    await h.start({ orchestrator: "v1.2.2", sevastopol: "v1.2.2" });
    const r = await h.up("baseline deploy");
    assert.strictEqual(r.code, 0, outputOf(r));
  });
  after(() => h.stop());

  it("3. PM2 saved after the switch; its daemon killed: refresh sees it, `up --refresh` brings the API back through the health gate", async () => {
    const dump = JSON.parse(fs.readFileSync(path.join(h.target.pm2Home, "dump.pm2"), "utf8"));
    assert.ok(
      dump.some((p: { name: string }) => p.name === `orchestrator-${live()}`),
      "PM2 was not saved after the switch (nothing would come back at boot)",
    );
    const before = live();
    pm2("kill");
    assert.strictEqual((await get(port(), "/health")).status, 502);

    const preview = await h.backend.pulumiAsync(REPO_ROOT, ["preview", "--refresh", "--diff", "--stack", h.stack]);
    assert.strictEqual(preview.code, 0, outputOf(preview));
    showPreview("PM2 daemon killed, preview --refresh", outputOf(preview));
    assert.match(outputOf(preview), /orchestrator: no slot runs \w{12} and answers \/health/);

    const r = await h.up("up --refresh after the PM2 daemon died", ["--refresh"]);
    assert.strictEqual(r.code, 0, outputOf(r));
    assert.strictEqual(await h.servedVersion(), "1.2.2");
    assert.notStrictEqual(live(), before, "the API did not come back in a new slot through the health gate");
    assert.strictEqual(fs.readlinkSync(liveLink()), `orchestrator.${live()}`);
    const again = await h.up("up --refresh with nothing drifted", ["--refresh"]);
    assert.strictEqual(again.code, 0, outputOf(again));
    assert.doesNotMatch(outputOf(again), /updated/);
  });

  it("3. nginx's live link turned by hand to the other slot (stopped): refresh shows the drift, up puts traffic back on the live slot", async () => {
    const expected = fs.readlinkSync(liveLink());
    const other = live() === "blue" ? "green" : "blue";
    try {
      pm2("delete", `orchestrator-${other}`);
    } catch {
      // Not running: nothing to stop.
    }
    fs.unlinkSync(liveLink());
    fs.symlinkSync(`orchestrator.${other}`, liveLink());
    assert.strictEqual((await get(port(), "/health")).status, 502);

    const refresh = await h.backend.pulumiAsync(REPO_ROOT, ["refresh", "--yes", "--skip-preview", "--stack", h.stack]);
    assert.strictEqual(refresh.code, 0, outputOf(refresh));
    const preview = await h.backend.pulumiAsync(REPO_ROOT, ["preview", "--diff", "--stack", h.stack]);
    showPreview("live link turned by hand, after refresh", outputOf(preview));
    assert.match(outputOf(preview), /traffic drifted for: orchestrator/);
    const r = await h.up("up after a live link turned by hand");
    assert.strictEqual(r.code, 0, outputOf(r));
    assert.strictEqual(fs.readlinkSync(liveLink()), expected);
    assert.strictEqual(await h.servedVersion(), "1.2.2");
  });

  it("4. a frontend release without dist/index.html: no app is switched, and error, journal and outputs say what serves", async () => {
    const broken = await addVersion(h.opts.repos.sevastopol, "1.2.4", "Build without index", {
      "build.js": (s) => s.replace(`fs.writeFileSync(path.join(dist, "index.html"), html);\n`, ""),
    });
    const journal = h.journal().length;
    h.configure({ refs: { orchestrator: "v1.2.3", sevastopol: broken } });
    const r = await h.up("frontend without index.html");
    assert.notStrictEqual(r.code, 0);
    assert.match(outputOf(r), /check failed for sevastopol: \S+\/dist\/index\.html is missing or empty; nothing was switched/);
    assert.match(outputOf(r), /cutover failed; nothing was switched\. Serving now: orchestrator=\w{12}\/\w+ sevastopol=\w{12}/);
    assert.strictEqual(await h.servedVersion(), "1.2.2", "the API was switched although the frontend was not");
    assert.strictEqual(await frontendVersion(), "1.2.2");
    assert.strictEqual(h.journal().length, journal);
    assert.strictEqual(h.journal().at(-1).apps.orchestrator.version, "1.2.2");
    assert.strictEqual(h.outputs().apps.orchestrator.version, "1.2.2");
  });

  it("4. a switch that fails after another app was switched: every switched app goes back, and the error says what serves", async () => {
    // Apps switch in config order (orchestrator, then sevastopol). A stray folder where the
    // frontend's new `current` link is made breaks its switch after the API's has happened.
    const stray = path.join(h.target.root, "current", "sevastopol.new");
    fs.mkdirSync(path.join(stray, "left-behind"), { recursive: true });
    const journal = h.journal().length;
    try {
      h.configure({ refs: { orchestrator: "v1.2.3", sevastopol: "v1.2.3" } });
      const r = await h.up("frontend switch fails after the API's");
      assert.notStrictEqual(r.code, 0);
      assert.match(outputOf(r), /switched orchestrator back/);
      assert.match(
        outputOf(r),
        /cutover failed; switched back: orchestrator\. Serving now: orchestrator=\w{12}\/(blue|green) sevastopol=\w{12}/,
      );
      assert.strictEqual(await h.servedVersion(), "1.2.2", "the API serves the new version while the frontend serves the old");
      assert.strictEqual(await frontendVersion(), "1.2.2");
      assert.strictEqual(h.journal().length, journal);
    } finally {
      fs.rmSync(stray, { recursive: true, force: true });
    }
  });

  it("4. a broken foreign nginx file does not stop a switch (nothing is reloaded): both apps switch and serve", async () => {
    const foreign = path.join(h.target.nginx.sitesDir, "zz-foreign.conf");
    fs.writeFileSync(foreign, "this is not nginx configuration;\n");
    try {
      const r = await h.up("broken foreign nginx file");
      assert.strictEqual(r.code, 0, outputOf(r));
    } finally {
      fs.rmSync(foreign, { force: true });
    }
    assert.strictEqual(await frontendVersion(), "1.2.3");
    assert.strictEqual(await h.servedVersion(), "1.2.3");
    const last = h.journal().at(-1);
    assert.strictEqual(last.apps.orchestrator.version, "1.2.3");
    assert.match(last.serving, /^orchestrator=\w{12}\/(blue|green) sevastopol=\w{12}$/);
    assert.strictEqual(h.outputs().apps.orchestrator.version, "1.2.3");
  });
});
