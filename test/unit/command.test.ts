import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { Registered, installMocks } from "../support/mocks";

describe("unit: Command resource (mocks)", () => {
  let registered: Registered[];
  before(() => {
    registered = installMocks();
  });

  it("registers a nostromo Command with its script, triggers and a secret connection", async () => {
    const { Command } = await import("../../components/command");
    const cmd = new Command("probe", {
      connection: pulumi.secret({ host: "127.0.0.1", port: 2222, user: "deploy", privateKey: "KEY", hostKey: "ssh-ed25519 AAAA" }),
      create: "echo hi",
      triggers: ["abc123"],
    });
    const stdout = await new Promise((resolve) => cmd.stdout.apply(resolve));
    assert.strictEqual(stdout, "mocked");
    const r = registered.find((x) => x.name === "probe");
    assert.ok(r, "no resource recorded");
    assert.strictEqual(r.type, "pulumi-nodejs:dynamic/nostromo:Command");
    assert.strictEqual(r.inputs.create, "echo hi");
    assert.deepStrictEqual(r.inputs.triggers, ["abc123"]);
  });
});
