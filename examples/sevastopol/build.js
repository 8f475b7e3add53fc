"use strict";
// Static "build": stamp the package version into the page so a deploy can be
// checked from the outside (meta tag, visible text and dist/version.json).
const fs = require("fs");
const path = require("path");
const { readVersion, renderPage } = require("./page");

const dist = path.join(__dirname, "dist");
const version = readVersion();
const html = renderPage(version);

fs.rmSync(dist, { recursive: true, force: true });
fs.mkdirSync(dist);
fs.writeFileSync(path.join(dist, "index.html"), html);
fs.writeFileSync(path.join(dist, "version.json"), JSON.stringify({ version }) + "\n");
console.log(`built sevastopol ${version} into dist/`);
