/**
 * The program's entry (Pulumi.yaml `main`). It first makes a no-op call to the dynamic providers'
 * host (provider/host.js), so the engine starts the host while the program loads rather than at
 * the first step (0.2-0.3 s of every `pulumi up`); then it loads index.ts through lib/tsLoader.js.
 * `typescript: false` in Pulumi.yaml says the entry is JavaScript; our language host (v3.66.0) does
 * not read that option and registers ts-node all the same, which tsLoader's hook then replaces.
 */
"use strict";
require("module").enableCompileCache?.();
const pulumi = require("@pulumi/pulumi");

module.exports = async () => {
  // Nothing waits for the answer. Under the SDK's own host (no project plugin) the call fails: ignored.
  pulumi.runtime.invoke("pulumi-nodejs:dynamic:warmUp", {}).catch(() => undefined);
  // One turn of the event loop, so the call leaves before the program's synchronous load.
  await new Promise((resolve) => setTimeout(resolve, 1));
  require("./lib/tsLoader").register();
  return require("./index.ts");
};
