/**
 * TypeScript for `require`, compiled file by file with swc (already a dependency, as ts-node's
 * compiler), with the options ts-node derived from tsconfig.json: the program (main.js) and the
 * dynamic providers' host load this project's .ts files through it. The SDK's program runner
 * registers ts-node anyway (main.js says why); what this replaces is ts-node's stack mapping, which
 * runs in JavaScript on every stack the SDK captures, one per resource: 0.13 s of a no-change
 * `pulumi up` here. Node maps stacks itself from the inline source maps, so errors still name
 * TypeScript lines (0.065 s of the same `up`).
 */
"use strict";
const fs = require("fs");

/** tsconfig.json's compiler options, as swc options (checked by test/unit/tsLoader.test.ts). */
const SWC_OPTIONS = {
  swcrc: false,
  sourceMaps: "inline",
  module: { type: "commonjs", noInterop: false, strictMode: true, ignoreDynamic: false },
  jsc: {
    parser: { syntax: "typescript", tsx: false, dynamicImport: true },
    target: "es2022",
    keepClassNames: true,
    transform: { useDefineForClassFields: true, legacyDecorator: true },
  },
};

/**
 * Compiles .ts files on `require` from now on, in this process. It replaces ts-node's hook and its
 * stack mapping where the SDK's program runner installed them (it always does, see main.js).
 */
function register() {
  if (require.extensions[".ts"]?.nostromo) return;
  const swc = require("@swc/core");
  Error.prepareStackTrace = undefined;
  process.setSourceMapsEnabled(true);
  require.extensions[".ts"] = (m, filename) => {
    const { code } = swc.transformSync(fs.readFileSync(filename, "utf8"), { ...SWC_OPTIONS, filename });
    m._compile(code, filename);
  };
  require.extensions[".ts"].nostromo = true;
}

module.exports = { register, SWC_OPTIONS };
