"use strict";
// "Build" without a transpiler: copy src/ to a fresh dist/ and stamp it, so
// the deploy has an artifact step to run and tests can see what was built.
const fs = require("fs");
const path = require("path");

const root = path.join(__dirname, "..");
const dist = path.join(root, "dist");
const { version } = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));

fs.rmSync(dist, { recursive: true, force: true });
fs.cpSync(path.join(root, "src"), dist, { recursive: true });
fs.writeFileSync(path.join(dist, "build-info.json"), JSON.stringify({ version, builtAt: new Date().toISOString() }, null, 2) + "\n");
console.log(`built orchestrator ${version} into dist/`);
