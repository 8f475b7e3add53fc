"use strict";
// Minimal .env loader: the deploy links a .env into the release dir and starts
// the process there, so we read ./.env without pulling in a dependency.
const fs = require("fs");
const path = require("path");

function loadDotEnv(dir = process.cwd()) {
  let text;
  try {
    text = fs.readFileSync(path.join(dir, ".env"), "utf8");
  } catch {
    return; // no .env: environment only
  }
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    let value = m[2];
    // Strip one pair of matching surrounding quotes.
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) {
      value = value.slice(1, -1);
    }
    // The real environment wins over the file.
    if (process.env[m[1]] === undefined) process.env[m[1]] = value;
  }
}

module.exports = { loadDotEnv };
