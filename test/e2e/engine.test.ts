import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { REPO_ROOT, TempBackend, requirePulumi } from "../../local/backend";

const TINY = path.join(REPO_ROOT, "test", "fixtures", "tiny");

describe("e2e: the real Pulumi engine", function () {
  let backend: TempBackend;
  const stack = `cli${process.pid}`;

  before(() => {
    requirePulumi();
    backend = new TempBackend("engine");
  });
  after(() => {
    fs.rmSync(path.join(TINY, `Pulumi.${stack}.yaml`), { force: true });
    backend?.remove();
  });

  it("pulumi version is the pinned one, equal to the SDK's", () => {
    const pinned = fs.readFileSync(path.join(REPO_ROOT, "scripts", "engine-versions.env"), "utf8").match(/^PULUMI_VERSION=(.+)$/m)![1];
    const sdk = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "node_modules", "@pulumi", "pulumi", "package.json"), "utf8")).version;
    const cli = backend.pulumiOk(REPO_ROOT, ["version"]).stdout.trim();
    assert.strictEqual(cli, `v${pinned}`);
    assert.strictEqual(sdk, pinned);
  });

  it("previews, creates, keeps a secret out of the state, then finds nothing to change", () => {
    backend.pulumiOk(TINY, ["stack", "init", stack]);
    backend.pulumiOk(TINY, ["config", "set", "greeting", "ahoy", "--stack", stack]);

    const preview = backend.pulumiOk(TINY, ["preview", "--stack", stack, "--json"]);
    const plan = JSON.parse(preview.stdout);
    assert.strictEqual(plan.changeSummary.create, 3, preview.stdout);

    backend.pulumiOk(TINY, ["up", "--yes", "--stack", stack]);
    const outputs = JSON.parse(backend.pulumiOk(TINY, ["stack", "output", "--json", "--stack", stack]).stdout);
    assert.strictEqual(outputs.stdout, "ahoy from bash");
    assert.strictEqual(outputs.secret, "[secret]");

    const shown = JSON.parse(backend.pulumiOk(TINY, ["stack", "output", "--json", "--show-secrets", "--stack", stack]).stdout);
    assert.match(shown.secret, /^[A-Za-z0-9_-]{32}$/);
    assert.ok(!backend.stateText().includes(shown.secret), "the secret's plaintext is in the state backend");

    const again = backend.pulumiOk(TINY, ["up", "--yes", "--stack", stack]);
    assert.match(again.stdout, /3 unchanged/, again.stdout);

    const history = JSON.parse(backend.pulumiOk(TINY, ["stack", "history", "--json", "--stack", stack]).stdout);
    assert.strictEqual(history.length, 2);
    assert.deepStrictEqual(
      history.map((u: { result: string }) => u.result),
      ["succeeded", "succeeded"],
    );
    // Newest first: the second update changed nothing, the first created everything.
    assert.deepStrictEqual(history[0].resourceChanges, { same: 3 });
    assert.deepStrictEqual(history[1].resourceChanges, { create: 3 });
  });

  it("does the same through the Automation API", async () => {
    const autoStack = `auto${process.pid}`;
    const ws = await LocalWorkspace.create({ workDir: TINY, envVars: backend.env as Record<string, string> });
    try {
      const s = await LocalWorkspace.createStack(
        { stackName: autoStack, workDir: TINY },
        { envVars: backend.env as Record<string, string> },
      );
      await s.setConfig("greeting", { value: "hola" });
      const preview = await s.preview();
      assert.strictEqual(preview.changeSummary.create, 3);
      const up = await s.up();
      assert.strictEqual(up.outputs.stdout.value, "hola from bash");
      assert.strictEqual(up.outputs.secret.secret, true);
      const again = await s.up();
      assert.deepStrictEqual(again.summary.resourceChanges, { same: 3 });
      const history = await s.history();
      assert.deepStrictEqual(
        history.map((h) => h.result),
        ["succeeded", "succeeded"],
      );
    } finally {
      await ws.removeStack(autoStack).catch(() => undefined);
      fs.rmSync(path.join(TINY, `Pulumi.${autoStack}.yaml`), { force: true });
    }
  });
});
