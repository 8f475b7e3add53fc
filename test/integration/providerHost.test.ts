import * as assert from "assert";
import { ChildProcess, spawn } from "child_process";
import * as net from "net";
import * as path from "path";
import * as grpc from "@grpc/grpc-js";
import * as pulumi from "@pulumi/pulumi";
import * as structproto from "google-protobuf/google/protobuf/struct_pb";
import * as provrpc from "@pulumi/pulumi/proto/provider_grpc_pb";
import * as provproto from "@pulumi/pulumi/proto/provider_pb";

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const PLUGIN = path.join(REPO_ROOT, "provider", "pulumi-resource-pulumi-nodejs");

/** A provider as the engine stores it: serialized by the SDK, as a dynamic resource does. */
async function serialized(provider: pulumi.dynamic.ResourceProvider): Promise<string> {
  return (await pulumi.runtime.serializeFunction(() => provider)).text;
}

/** The host started as the engine starts it (its address as the argument); resolves with its port. */
function startHost(engine: string): Promise<{ child: ChildProcess; port: number; stderr: () => string }> {
  const child = spawn(PLUGIN, [engine], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  return new Promise((resolve, reject) => {
    child.stdout!.once("data", (d) => resolve({ child, port: Number(String(d).trim()), stderr: () => err }));
    child.once("exit", (code) => reject(new Error(`the host exited (${code}) before it listened: ${err}`)));
  });
}

type Client = InstanceType<typeof provrpc.ResourceProviderClient>;
/** One RPC of the provider protocol, as a promise. */
function call<Req, Res>(client: Client, method: string, req: Req): Promise<Res> {
  return new Promise((resolve, reject) =>
    (client as unknown as Record<string, (r: Req, cb: (e: grpc.ServiceError | null, r: Res) => void) => void>)[method](req, (e, r) =>
      e ? reject(e) : resolve(r),
    ),
  );
}
const struct = (o: Record<string, unknown>) => structproto.Struct.fromJavaScript(o as Record<string, structproto.JavaScriptValue>);

describe("integration: the dynamic providers' host (provider/host.js)", function () {
  this.timeout(60_000);
  let engine: net.Server;
  let host: Awaited<ReturnType<typeof startHost>>;
  let client: Client;

  before(async () => {
    // Stands in for the engine's address: the host only checks that it still accepts connections.
    engine = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => engine.listen(0, "127.0.0.1", r));
    host = await startHost(`127.0.0.1:${(engine.address() as net.AddressInfo).port}`);
    client = new provrpc.ResourceProviderClient(`127.0.0.1:${host.port}`, grpc.credentials.createInsecure());
  });
  after(() => {
    client?.close();
    host?.child.kill("SIGKILL");
    engine?.close();
  });

  it("runs a serialized provider's check, diff, create, update, read and delete as the SDK's host does, keeping __provider in the state", async () => {
    const provider: pulumi.dynamic.ResourceProvider = {
      async check(olds, news) {
        return {
          inputs: { ...news, previous: olds.value ?? null },
          failures: news.value === "bad" ? [{ property: "value", reason: "not bad" }] : [],
        };
      },
      async diff(_id, olds, news) {
        return { changes: olds.value !== news.value, replaces: news.value === "replace" ? ["value"] : [] };
      },
      async create(inputs) {
        return { id: "id-1", outs: { ...inputs, made: true } };
      },
      async update(_id, _olds, news) {
        return { outs: { ...news, updated: true } };
      },
      async read(id, props) {
        return { id, props: { ...props, drift: "seen" }, inputs: { value: props.value, drift: "seen" } };
      },
      async delete(_id, props) {
        if (props.value === "undeletable") throw new Error("cannot delete undeletable");
      },
    };
    const __provider = await serialized(provider);

    const checked = await call<provproto.CheckRequest, provproto.CheckResponse>(
      client,
      "check",
      new provproto.CheckRequest().setOlds(struct({ value: "a" })).setNews(struct({ value: "bad", __provider })),
    );
    assert.deepStrictEqual(checked.getInputs()!.toJavaScript(), { value: "bad", previous: "a", __provider });
    assert.deepStrictEqual(
      checked.getFailuresList().map((f) => [f.getProperty(), f.getReason()]),
      [["value", "not bad"]],
    );

    const D = provproto.DiffResponse.DiffChanges;
    const diff = (olds: object, news: object) =>
      call<provproto.DiffRequest, provproto.DiffResponse>(
        client,
        "diff",
        new provproto.DiffRequest()
          .setId("id-1")
          .setOlds(struct({ ...olds, __provider }))
          .setNews(struct({ ...news, __provider })),
      );
    assert.strictEqual((await diff({ value: "a" }, { value: "a" })).getChanges(), D.DIFF_NONE);
    const changed = await diff({ value: "a" }, { value: "replace" });
    assert.strictEqual(changed.getChanges(), D.DIFF_SOME);
    assert.deepStrictEqual(changed.getReplacesList(), ["value"]);

    const created = await call<provproto.CreateRequest, provproto.CreateResponse>(
      client,
      "create",
      new provproto.CreateRequest().setProperties(struct({ value: "a", __provider })),
    );
    assert.strictEqual(created.getId(), "id-1");
    assert.deepStrictEqual(created.getProperties()!.toJavaScript(), { value: "a", made: true, __provider });

    const updated = await call<provproto.UpdateRequest, provproto.UpdateResponse>(
      client,
      "update",
      new provproto.UpdateRequest()
        .setId("id-1")
        .setOlds(struct({ value: "a", __provider }))
        .setNews(struct({ value: "b", __provider })),
    );
    assert.deepStrictEqual(updated.getProperties()!.toJavaScript(), { value: "b", updated: true, __provider });

    const read = await call<provproto.ReadRequest, provproto.ReadResponse>(
      client,
      "read",
      new provproto.ReadRequest().setId("id-1").setProperties(struct({ value: "b", __provider })),
    );
    assert.deepStrictEqual(read.getProperties()!.toJavaScript(), { value: "b", drift: "seen", __provider });
    assert.deepStrictEqual(read.getInputs()!.toJavaScript(), { value: "b", drift: "seen", __provider });

    await call(client, "delete", new provproto.DeleteRequest().setId("id-1").setProperties(struct({ value: "b", __provider })));
    await assert.rejects(
      call(client, "delete", new provproto.DeleteRequest().setId("id-1").setProperties(struct({ value: "undeletable", __provider }))),
      (err: grpc.ServiceError) => err.details === "cannot delete undeletable",
    );
  });

  it("fails a create with the provider's own error message, as the engine then shows it", async () => {
    const __provider = await serialized({
      async create() {
        throw new Error("step lock failed on deploy@10.0.0.5:22 (exit 1)\n--- stderr ---\nlocked by s/1");
      },
    });
    await assert.rejects(
      call(client, "create", new provproto.CreateRequest().setProperties(struct({ __provider }))),
      (err: grpc.ServiceError) => err.details === "step lock failed on deploy@10.0.0.5:22 (exit 1)\n--- stderr ---\nlocked by s/1",
    );
  });

  it("answers the program's warm-up call, and refuses any other function by name", async () => {
    const warm = await call<provproto.InvokeRequest, provproto.InvokeResponse>(
      client,
      "invoke",
      new provproto.InvokeRequest().setTok("pulumi-nodejs:dynamic:warmUp").setArgs(struct({})),
    );
    assert.deepStrictEqual(warm.getReturn()!.toJavaScript(), {});
    await assert.rejects(
      call(client, "invoke", new provproto.InvokeRequest().setTok("pulumi-nodejs:dynamic:other").setArgs(struct({}))),
      (err: grpc.ServiceError) => /unknown function pulumi-nodejs:dynamic:other/.test(err.details),
    );
  });

  it("exits on its own once the engine's address stops answering (an engine killed with SIGKILL)", async () => {
    const gone = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => gone.listen(0, "127.0.0.1", r));
    const orphan = await startHost(`127.0.0.1:${(gone.address() as net.AddressInfo).port}`);
    const exited = new Promise<number | null>((resolve) => orphan.child.once("exit", (code) => resolve(code)));
    // Alive while the engine listens (3 checks, one a second).
    await new Promise((r) => setTimeout(r, 3500));
    assert.strictEqual(orphan.child.exitCode, null, `the host exited while the engine listened: ${orphan.stderr()}`);
    const closedAt = Date.now();
    await new Promise<void>((r) => gone.close(() => r()));
    const timer = setTimeout(() => orphan.child.kill("SIGKILL"), 15_000);
    const code = await exited;
    clearTimeout(timer);
    const seconds = (Date.now() - closedAt) / 1000;
    assert.strictEqual(code, 1, `the host did not exit by itself within 15 s: ${orphan.stderr()}`);
    assert.ok(seconds < 6, `the host took ${seconds.toFixed(1)} s to notice`);
    assert.match(orphan.stderr(), /the engine at 127\.0\.0\.1:\d+ is gone; exiting/);
  });
});
