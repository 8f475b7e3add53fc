"use strict";
// The page and its version, shared by the two ways of running Sevastopol: the static build
// (build.js writes the page to dist/index.html) and the web process (server.js renders it on /).
// One template and one version source, so both show the same page and report the same version.
const fs = require("fs");
const path = require("path");

/** The app's version: package.json's, as the orchestrator reports in its /health. */
function readVersion(root = __dirname) {
  return JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")).version;
}

// A version is semver (no markup characters); escaping keeps any other text inert in the page.
const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** src/index.html with the version stamped in (meta tag and visible text). */
function renderPage(version, root = __dirname) {
  return fs.readFileSync(path.join(root, "src", "index.html"), "utf8").replaceAll("{{VERSION}}", escapeHtml(version));
}

module.exports = { readVersion, renderPage };
