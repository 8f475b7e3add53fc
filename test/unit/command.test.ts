import * as assert from "assert";
import { spawnSync } from "child_process";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Registered, installMocks } from "../support/mocks";

describe("unit: Command resource (mocks) and its provider", () => {
  let registered: Registered[];
  before(() => {
    registered = installMocks();
  });

  it("registers a nostromo Command with its step, script, triggers, lease and a secret connection", async () => {
    const { Command } = await import("../../components/command");
    const cmd = new Command("probe", {
      step: "preflight",
      connection: pulumi.secret({ host: "127.0.0.1", port: 2222, user: "deploy", privateKey: "KEY", hostKey: "ssh-ed25519 AAAA" }),
      create: "echo hi",
      triggers: ["abc123"],
      lease: "unit/lease",
    });
    const result = await new Promise((resolve) => cmd.result.apply(resolve));
    assert.deepStrictEqual(result, { lease: "unit/mock-lease" });
    const r = registered.find((x) => x.name === "probe");
    assert.ok(r, "no resource recorded");
    assert.strictEqual(r.type, "pulumi-nodejs:dynamic/nostromo:Command");
    assert.strictEqual(r.inputs.step, "preflight");
    assert.strictEqual(r.inputs.create, "echo hi");
    assert.strictEqual(r.inputs.lease, "unit/lease");
    assert.deepStrictEqual(r.inputs.triggers, ["abc123"]);
  });

  it("the engine stores a stub of the provider, which loads it from the project's folder, or from the working directory for a folder since moved", async () => {
    const { providerStub } = await import("../../components/command");
    const engineStub = providerStub(path.resolve("components"));
    const serialized = await pulumi.runtime.serializeFunction(() => engineStub);
    assert.ok(serialized.text.length < 4000, `the serialized provider is ${serialized.text.length} characters`);
    assert.doesNotMatch(serialized.text, /runOverSsh|ssh2/);
    const base = { step: "release", create: "build", triggers: ["sha1"] } as any;
    for (const dir of [path.resolve("components"), "/nonexistent/moved/components"]) {
      delete (globalThis as { __nostromoProviders?: unknown }).__nostromoProviders;
      const stub = providerStub(dir);
      assert.strictEqual((await stub.diff!("id", base, { ...base, triggers: ["sha2"] })).changes, true, dir);
      assert.strictEqual((await stub.diff!("id", base, { ...base, lease: "s/2" })).changes, false, dir);
    }
  });

  it("parses the one result line a step ends with, and refuses a missing or malformed one naming the step", async () => {
    const { parseStepResult } = await import("../../components/command");
    assert.deepStrictEqual(parseStepResult('built\nnostromo-result {"slot":"blue","port":"8001"}\n\n', "slot-start (api)"), {
      slot: "blue",
      port: "8001",
    });
    assert.throws(
      () => parseStepResult("slot=blue port=8001\n", "slot-start (api)"),
      /^Error: step slot-start \(api\): no result line at the end of its output$/,
    );
    assert.throws(() => parseStepResult("", "lock"), /step lock: no result line/);
    assert.throws(
      () => parseStepResult('nostromo-result {"slot":\n', "cutover"),
      /step cutover: malformed result line: nostromo-result \{"slot":/,
    );
    assert.throws(() => parseStepResult('nostromo-result ["a"]', "cutover"), /malformed result line/);
    // Not the last line: output after it means the step did not end with its result.
    assert.throws(() => parseStepResult('nostromo-result {"a":"1"}\nmore output\n', "record"), /no result line/);
  });

  it("diff: a change of the lease, step or app alone leaves a step unchanged; a new check is kept without a run; drift changes it", async () => {
    const { commandProvider } = await import("../../components/command");
    const base = { step: "slot-start", app: "api", create: "start", triggers: ["sha"], lease: "s/1", check: "check-v1" } as any;
    const olds = { ...base, stdout: "x", stderr: "", result: { slot: "blue" }, drift: "" };
    for (const news of [
      { ...base, lease: "s/2" },
      { ...base, step: "slot-stop" },
      { ...base, app: "web" },
    ]) {
      const d = await commandProvider.diff!("id", olds, news);
      assert.deepStrictEqual(d, { changes: false, replaces: [], deleteBeforeReplace: false }, JSON.stringify(news));
    }
    // A new check (the server is asked another way) reaches the state: `update` keeps the outputs, runs nothing.
    assert.strictEqual((await commandProvider.diff!("id", olds, { ...base, check: "check-v2" })).changes, true);
    const kept = await commandProvider.update!("id", olds, { ...base, check: "check-v2" });
    assert.deepStrictEqual([kept.outs.check, kept.outs.stdout, kept.outs.result], ["check-v2", "x", { slot: "blue" }]);
    const drifted = await commandProvider.diff!("id", { ...olds, drift: "api: no slot runs abc" }, { ...base, lease: "s/2" });
    assert.deepStrictEqual(drifted, { changes: true, replaces: [], deleteBeforeReplace: false });
    const retriggered = await commandProvider.diff!("id", olds, { ...base, triggers: ["sha2"] });
    assert.strictEqual(retriggered.changes, true);
    const moved = await commandProvider.diff!(
      "id",
      { ...olds, connection: { host: "a", port: 22 } },
      { ...base, connection: { host: "b", port: 22 } },
    );
    assert.deepStrictEqual(moved.replaces, ["connection"]);
  });

  it("update re-runs the script for drift or a re-run key, else keeps the outputs; outputs never carry drift", async () => {
    const { commandProvider } = await import("../../components/command");
    const base = { step: "lock", create: `echo 'nostromo-result {"run":"new"}'`, triggers: ["a"], lease: "s/1" } as any;
    const olds = { ...base, stdout: "old", stderr: "", result: { run: "old" }, drift: "" };
    const kept = await commandProvider.update!("id", olds, { ...base, lease: "s/2" });
    assert.deepStrictEqual([kept.outs.result, kept.outs.lease, kept.outs.drift], [{ run: "old" }, "s/2", ""]);
    const repaired = await commandProvider.update!("id", { ...olds, drift: "gone" }, { ...base, lease: "s/2" });
    assert.deepStrictEqual([repaired.outs.result, repaired.outs.drift], [{ run: "new" }, ""]);
  });

  it("read runs the check: exit 0 in sync, exit 3 drift (also in the inputs, for the preview), anything else fails the refresh", async () => {
    const { commandProvider } = await import("../../components/command");
    const props = { step: "cutover", create: "true", stdout: "x", result: { a: "1" } } as any;
    const ok = await commandProvider.read!("id", { ...props, check: "echo fine" });
    assert.strictEqual((ok.props as any).drift, "");
    const drift = await commandProvider.read!("id", { ...props, check: "echo 'traffic drifted for: api'; exit 3" });
    assert.strictEqual((drift.props as any).drift, "traffic drifted for: api");
    assert.strictEqual((drift.inputs as any).drift, "traffic drifted for: api");
    assert.strictEqual((drift.inputs as any).result, undefined);
    await assert.rejects(
      commandProvider.read!("id", { ...props, check: "echo cannot tell >&2; exit 1" }),
      /refresh: the check of this step failed on localhost \(exit 1\)[\s\S]*cannot tell/,
    );
    const none = await commandProvider.read!("id", props);
    assert.deepStrictEqual(none.props, props);
  });

  it("runs a step with the lease in its environment, and fails one whose output has no result line", async () => {
    const { commandProvider } = await import("../../components/command");
    const made = await commandProvider.create({
      step: "lock",
      create: `echo "nostromo-result {\\"lease\\":\\"$NOSTROMO_LEASE\\"}"`,
      lease: "unit/it's",
    } as any);
    assert.deepStrictEqual(made.outs.result, { lease: "unit/it's" });
    await assert.rejects(
      commandProvider.create({ step: "cutover", create: `echo 'nostromo-result {"a":'` } as any),
      /^Error: step cutover: malformed result line: nostromo-result \{"a":\n--- stdout ---\nnostromo-result \{"a":$/,
    );
    await assert.rejects(
      commandProvider.create({ step: "release", app: "api", create: "echo built" } as any),
      /^Error: step release \(api\): no result line at the end of its output\n--- stdout ---\nbuilt$/,
    );
  });

  it("a local run past its timeout is killed, and the step fails with its output so far", async () => {
    const { commandProvider } = await import("../../components/command");
    const marker = `nostromo-local-timeout-${process.pid}`;
    const started = Date.now();
    await assert.rejects(
      commandProvider.create({ step: "notify-start", create: `echo partial-output; sleep 30 # ${marker}`, timeoutSeconds: 1 } as any),
      /^Error: step timed out after 1 s on localhost \(the script was killed where it ran\)\n--- stdout so far ---\npartial-output$/,
    );
    assert.ok(Date.now() - started < 8000, `took ${Date.now() - started} ms`);
    assert.strictEqual(spawnSync("pgrep", ["-f", marker], { encoding: "utf8" }).stdout.trim(), "", "the script still runs");
  });

  it("runs at most rolling.connections scripts over SSH at once, the others in the order they came", async () => {
    const { sshSlot } = await import("../../components/commandProvider");
    const order: string[] = [];
    let active = 0;
    let most = 0;
    const job = async (name: string, ms: number) => {
      const release = await sshSlot(2);
      active++;
      most = Math.max(most, active);
      order.push(name);
      await new Promise((r) => setTimeout(r, ms));
      active--;
      release();
    };
    await Promise.all([job("a", 30), job("b", 10), job("c", 10), job("d", 10), job("e", 10)]);
    assert.strictEqual(most, 2);
    assert.deepStrictEqual(order, ["a", "b", "c", "d", "e"]);
  });
});
