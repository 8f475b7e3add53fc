/**
 * The engine's host for this project's dynamic providers (Command, GeneratedSecret, PlanRecord,
 * FleetCutover), in place of the SDK's: Pulumi.yaml names this folder as the `pulumi-nodejs`
 * plugin. It speaks the same protocol over the same state (each resource's `__provider` is the
 * serialized provider, run as the SDK's host runs it), so stacks need no migration and the SDK's
 * host can still read them. Why ours:
 * - it loads gRPC and the protocol's messages only, not the whole SDK: the plugin answers in about
 *   0.1 s where the SDK's took 0.5 s, on the critical path of every `pulumi up`, preview and refresh;
 * - it exits when the engine is gone: an engine killed with SIGKILL left the SDK's host running
 *   forever (plugins run in their own process group, so the kill never reached it).
 *
 * Not supported, as no provider of this project uses them: a provider's `configure`, invokes
 * other than the program's warm-up call, and the SDK's ResourceInitFailed partial failures.
 */
"use strict";
require("module").enableCompileCache?.();
const net = require("net");
const path = require("path");
const Module = require("module");
const grpc = require("@grpc/grpc-js");
const emptyproto = require("google-protobuf/google/protobuf/empty_pb");
const structproto = require("google-protobuf/google/protobuf/struct_pb");
const plugproto = require("@pulumi/pulumi/proto/plugin_pb");
const provrpc = require("@pulumi/pulumi/proto/provider_grpc_pb");
const provproto = require("@pulumi/pulumi/proto/provider_pb");

/** The state's key holding the serialized provider (as the SDK names it). */
const PROVIDER_KEY = "__provider";
/** The engine's value for an input not known yet (a preview before its source exists). */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
/** The function the program invokes first (main.js): it starts this host early, and does nothing. */
const WARM_UP_TOKEN = "pulumi-nodejs:dynamic:warmUp";
/** Seconds between checks that the engine still listens; it is gone after this many refusals in a row. */
const ENGINE_CHECK_SECONDS = 1;
const ENGINE_GONE_AFTER = 3;

/** Serialized provider text → the provider it makes, evaluated once per process. */
const providers = new Map();

/**
 * The provider a resource's properties name: its serialized text evaluated as a module of the
 * project's folder (the engine starts plugins there), whose `handler()` returns the provider.
 */
function providerOf(props) {
  const text = props[PROVIDER_KEY];
  if (typeof text !== "string" || text === UNKNOWN) throw new Error(`no ${PROVIDER_KEY} in the resource's properties`);
  let provider = providers.get(text);
  if (!provider) {
    const filename = path.join(process.cwd(), "__dynamic_provider.js");
    const m = new Module(filename, module);
    m.filename = filename;
    m.paths = Module._nodeModulePaths(process.cwd());
    m._compile(text, filename);
    provider = m.exports.handler();
    providers.set(text, provider);
  }
  return provider;
}

const toJs = (struct) => (struct ? struct.toJavaScript() : {});
const toStruct = (obj) => structproto.Struct.fromJavaScript(obj);
/** Outputs with the serialized provider kept beside them, so later operations find it. */
const withProvider = (outs, props) => ({ ...(outs || {}), [PROVIDER_KEY]: props[PROVIDER_KEY] });
const unimplemented = (name) => (_call, callback) =>
  callback({ code: grpc.status.UNIMPLEMENTED, details: `${name} is not implemented by this project's dynamic provider host` });

/** Wraps an async handler: its value answers the call, its error fails it with the error's message. */
const rpc = (fn) => (call, callback) => {
  fn(call.request).then(
    (resp) => callback(null, resp),
    (err) => callback({ code: grpc.status.UNKNOWN, details: err instanceof Error ? err.message : String(err) }),
  );
};

const service = {
  cancel: (_call, callback) => callback(null, new emptyproto.Empty()),
  getPluginInfo: (_call, callback) => {
    const info = new plugproto.PluginInfo();
    info.setVersion(require("@pulumi/pulumi/package.json").version);
    callback(null, info);
  },
  configure: rpc(async () => new provproto.ConfigureResponse().setAcceptsecrets(false)),
  // The program asks for this first (main.js), so the engine starts this host while the program loads.
  invoke: rpc(async (req) => {
    if (req.getTok() !== WARM_UP_TOKEN) throw new Error(`unknown function ${req.getTok()}`);
    return new provproto.InvokeResponse().setReturn(toStruct({}));
  }),
  check: rpc(async (req) => {
    const olds = toJs(req.getOlds());
    const news = toJs(req.getNews());
    const provider = providerOf(news[PROVIDER_KEY] === UNKNOWN ? olds : news);
    const resp = new provproto.CheckResponse();
    if (!provider.check) return resp.setInputs(req.getNews());
    const result = await provider.check(olds, news);
    resp.setInputs(toStruct({ ...(result.inputs ?? news), [PROVIDER_KEY]: news[PROVIDER_KEY] }));
    const failures = (result.failures ?? []).map((f) => new provproto.CheckFailure().setProperty(f.property).setReason(f.reason));
    return resp.setFailuresList(failures);
  }),
  diff: rpc(async (req) => {
    const olds = toJs(req.getOlds());
    const news = toJs(req.getNews());
    const provider = providerOf(news[PROVIDER_KEY] === UNKNOWN ? olds : news);
    const resp = new provproto.DiffResponse();
    if (!provider.diff) return resp;
    const result = await provider.diff(req.getId(), olds, news);
    const D = provproto.DiffResponse.DiffChanges;
    resp.setChanges(result.changes === true ? D.DIFF_SOME : result.changes === false ? D.DIFF_NONE : D.DIFF_UNKNOWN);
    if (result.replaces?.length) resp.setReplacesList(result.replaces);
    if (result.deleteBeforeReplace) resp.setDeletebeforereplace(true);
    return resp;
  }),
  create: rpc(async (req) => {
    const props = toJs(req.getProperties());
    const result = await providerOf(props).create(props);
    return new provproto.CreateResponse().setId(result.id).setProperties(toStruct(withProvider(result.outs, props)));
  }),
  read: rpc(async (req) => {
    const props = toJs(req.getProperties());
    const provider = providerOf(props);
    const resp = new provproto.ReadResponse();
    if (!provider.read) return resp.setId(req.getId()).setProperties(req.getProperties());
    const result = await provider.read(req.getId(), props);
    resp.setId(result.id).setProperties(toStruct(withProvider(result.props, props)));
    // Inputs the provider gives back are what later diffs compare against (drift found by a refresh).
    if (result.inputs) resp.setInputs(toStruct(withProvider(result.inputs, props)));
    return resp;
  }),
  update: rpc(async (req) => {
    const news = toJs(req.getNews());
    const provider = providerOf(news);
    const result = provider.update ? ((await provider.update(req.getId(), toJs(req.getOlds()), news)) ?? {}) : {};
    return new provproto.UpdateResponse().setProperties(toStruct(withProvider(result.outs, news)));
  }),
  delete: rpc(async (req) => {
    const props = toJs(req.getProperties());
    const provider = providerOf(props);
    if (provider.delete) await provider.delete(req.getId(), props);
    return new emptyproto.Empty();
  }),
};
for (const name of Object.keys(provrpc.ResourceProviderService)) {
  service[name] ??= name === "list" ? (call) => call.emit("error", { code: grpc.status.UNIMPLEMENTED }) : unimplemented(name);
}

/** Exits once the engine at `address` (host:port) refuses connections several times in a row. */
function exitWhenEngineGone(address) {
  const i = address.lastIndexOf(":");
  const host = address.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  const port = Number(address.slice(i + 1));
  if (!host || !Number.isInteger(port)) return;
  let refused = 0;
  const timer = setInterval(() => {
    const socket = net.connect({ host, port });
    socket.setTimeout(ENGINE_CHECK_SECONDS * 1000, () => socket.destroy());
    socket.on("connect", () => {
      refused = 0;
      socket.destroy();
    });
    socket.on("error", (err) => {
      if (err.code !== "ECONNREFUSED") return;
      if (++refused >= ENGINE_GONE_AFTER) {
        console.error(`dynamic provider host: the engine at ${address} is gone; exiting`);
        process.exit(1);
      }
    });
  }, ENGINE_CHECK_SECONDS * 1000);
  timer.unref();
}

function main(args) {
  if (args.length === 0) {
    console.error("dynamic provider host: missing the engine's address (its first argument)");
    process.exit(2);
  }
  const server = new grpc.Server({ "grpc.max_receive_message_length": 400 * 1024 * 1024 });
  server.addService(provrpc.ResourceProviderService, service);
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      console.error(`dynamic provider host: cannot listen: ${err.message}`);
      process.exit(1);
    }
    // The engine reads the port from the first line of standard output.
    process.stdout.write(`${port}\n`);
    exitWhenEngineGone(args[0]);
  });
}

main(process.argv.slice(2));
