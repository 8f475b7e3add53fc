"use strict";
// Sevastopol as a web process (what production runs under PM2, behind nginx): renders the page
// on the server, serves the built assets from dist/, answers /health for the deploy's health gate,
// and drains on SIGTERM/SIGINT so a blue/green switch drops no request. Plain node:http.
//
//   PORT=3000 npm start     (or: node server.js; build first for the assets: npm run build)
const fs = require("fs");
const http = require("http");
const path = require("path");
const { readVersion, renderPage } = require("./page");

const HOST = "127.0.0.1";
const PORT = Number(process.env.PORT);
if (!process.env.PORT || !Number.isInteger(PORT) || PORT < 0 || PORT > 65535) {
  console.error(process.env.PORT ? `PORT is not a port number: ${process.env.PORT}` : "PORT is not defined");
  process.exit(1);
}
// How long a stop waits for requests in flight before closing their connections; under the
// stop timeouts of PM2 (--kill-timeout 10000) and systemd (TimeoutStopSec=30).
const DRAIN_TIMEOUT_MS = Number(process.env.DRAIN_TIMEOUT_MS) || 8000;

// The version the static build stamps (package.json's). APP_VERSION, which a deploy writes into
// the release's .env, is the version expected, not a source: /health reports what this release
// is, so the health gate's version check means something.
const VERSION = readVersion();
if (process.env.APP_VERSION && process.env.APP_VERSION !== VERSION) {
  console.error(`warning: APP_VERSION is ${process.env.APP_VERSION} but this release is ${VERSION}; reporting ${VERSION}`);
}
// Rendered once: the page depends only on the release (template and version).
const PAGE = Buffer.from(renderPage(VERSION));
const DIST = path.join(__dirname, "dist");

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".ico": "image/x-icon",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
};

let stopping = false;
let inFlight = 0;

function head(res, status, headers) {
  // While stopping, close each connection after its response: an idle keep-alive socket would
  // otherwise hold the stop until its timeout, or take a request that then finds no server.
  if (stopping) headers.connection = "close";
  res.writeHead(status, { "x-content-type-options": "nosniff", ...headers });
}

function send(req, res, status, type, body, extra = {}) {
  head(res, status, { "content-type": type, "content-length": body.length, ...extra });
  res.end(req.method === "HEAD" ? undefined : body);
}

const json = (value) => Buffer.from(JSON.stringify(value));

/** A file of dist/ for a request path, or null: no file there, or a path that leaves dist/ or names a dotfile. */
function distFile(pathname) {
  let decoded;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return null;
  }
  if (decoded.includes("\0")) return null;
  const rel = path.posix.normalize(decoded).replace(/^\/+/, "");
  if (rel === "" || rel.split("/").some((part) => part.startsWith("."))) return null;
  const file = path.join(DIST, rel);
  if (!file.startsWith(DIST + path.sep)) return null;
  try {
    const stat = fs.statSync(file);
    return stat.isFile() ? { file, size: stat.size } : null;
  } catch {
    return null;
  }
}

function serveFile(req, res, { file, size }) {
  head(res, 200, { "content-type": TYPES[path.extname(file).toLowerCase()] || "application/octet-stream", "content-length": size });
  if (req.method === "HEAD") return res.end();
  const stream = fs.createReadStream(file);
  stream.on("error", (err) => {
    console.error(`${req.url}: ${err.message}`);
    res.destroy(err);
  });
  stream.pipe(res);
}

function handle(req, res) {
  const { pathname } = new URL(req.url, "http://localhost");
  if (req.method !== "GET" && req.method !== "HEAD") {
    return send(req, res, 405, "application/json", json({ error: "method not allowed" }), { allow: "GET, HEAD" });
  }
  if (pathname === "/health") {
    return send(req, res, 200, "application/json", json({ status: "ok", version: VERSION }), { "cache-control": "no-store" });
  }
  // The page is rendered here, never read from dist/; any other path that is no file of dist/
  // gets the page too, as the static variant's nginx does (try_files $uri $uri/ /index.html).
  const asset = pathname === "/" || pathname === "/index.html" ? null : distFile(pathname);
  if (asset) return serveFile(req, res, asset);
  send(req, res, 200, "text/html; charset=utf-8", PAGE, { "cache-control": "no-cache" });
}

const server = http.createServer((req, res) => {
  inFlight++;
  res.on("close", () => inFlight--);
  try {
    handle(req, res);
  } catch (err) {
    console.error(`${req.method} ${req.url} failed:`, err);
    if (!res.headersSent) send(req, res, 500, "application/json", json({ error: "internal error" }));
    else res.destroy();
  }
});

server.listen(PORT, HOST, () => console.log(`Server listening on port ${server.address().port} (sevastopol ${VERSION})`));

// Graceful stop: close() stops accepting at once (the listening socket is closed, so new
// connections are refused and go to the other slot), drops idle keep-alive connections and waits
// for the requests in flight, whose connections close after their response; then exit 0.
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  server.close(() => {
    console.log("drained, exiting");
    process.exit(0);
  });
  server.closeIdleConnections();
  console.log(`${signal} received: no longer accepting, draining ${inFlight} request(s) in flight`);
  // A client that never finishes its request must not hold the stop forever.
  setTimeout(() => {
    console.error(`drain timeout after ${DRAIN_TIMEOUT_MS} ms: closing ${inFlight} request(s) still in flight`);
    server.closeAllConnections();
  }, DRAIN_TIMEOUT_MS).unref();
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
