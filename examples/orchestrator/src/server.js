"use strict";
const http = require("http");
const crypto = require("crypto");
const path = require("path");
const { Pool } = require("pg");
const { loadDotEnv } = require("./env");

loadDotEnv();

// Fail fast with a readable message instead of a stack trace later on.
for (const name of ["PORT", "DATABASE_URL", "JWT_SECRET"]) {
  if (!process.env[name]) {
    console.error(`${name} is not defined`);
    process.exit(1);
  }
}
const PORT = Number(process.env.PORT);
const JWT_SECRET = process.env.JWT_SECRET;
// Works from both src/ and dist/: package.json sits one level up.
const VERSION = require(path.join(__dirname, "..", "package.json")).version;
const TOKEN_TTL_SECONDS = 3600;

const pool = new Pool({ connectionString: process.env.DATABASE_URL });
// An idle client losing its connection must not crash the server.
pool.on("error", (err) => console.error("postgres pool error:", err.message));

// --- JWT (HS256) with node:crypto --------------------------------------------
const b64url = (buf) => Buffer.from(buf).toString("base64url");
const hmac = (data) => crypto.createHmac("sha256", JWT_SECRET).update(data).digest();

function signJwt(claims) {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify(claims));
  return `${head}.${body}.${b64url(hmac(`${head}.${body}`))}`;
}

function verifyJwt(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  const [head, body, sig] = parts;
  const expected = hmac(`${head}.${body}`);
  const given = Buffer.from(sig, "base64url");
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return null;
  try {
    if (JSON.parse(Buffer.from(head, "base64url").toString()).alg !== "HS256") return null;
    const claims = JSON.parse(Buffer.from(body, "base64url").toString());
    if (typeof claims.exp !== "number" || claims.exp < Date.now() / 1000) return null;
    return claims;
  } catch {
    return null;
  }
}

// --- HTTP helpers ----------------------------------------------------------
let stopping = false;

function send(res, status, body) {
  const text = JSON.stringify(body);
  const headers = { "content-type": "application/json", "content-length": Buffer.byteLength(text) };
  // While stopping, don't keep the socket alive: server.close() would otherwise
  // wait for the keep-alive timeout after the last in-flight response.
  if (stopping) headers.connection = "close";
  res.writeHead(status, headers);
  res.end(text);
}

const MAX_BODY = 64 * 1024;
function readJson(req) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on("data", (c) => {
      size += c.length;
      if (size > MAX_BODY) reject(Object.assign(new Error("body too large"), { status: 413 }));
      else chunks.push(c);
    });
    req.on("end", () => {
      try {
        resolve(chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : {});
      } catch {
        reject(Object.assign(new Error("invalid JSON body"), { status: 400 }));
      }
    });
    req.on("error", reject);
  });
}

function authenticate(req) {
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization || "");
  return m ? verifyJwt(m[1].trim()) : null;
}

const sha256hex = (s) => crypto.createHash("sha256").update(s).digest("hex");

// --- Routes ------------------------------------------------------------------
const routes = {
  "GET /health": async () => [200, { status: "ok", version: VERSION }],

  "GET /health/db": async () => {
    try {
      await pool.query("select 1");
      return [200, { status: "ok" }];
    } catch (err) {
      return [503, { status: "error", error: err.message }];
    }
  },

  "POST /api/command/auth/login": async (req) => {
    const { username, password } = await readJson(req);
    if (typeof username !== "string" || typeof password !== "string") {
      return [400, { error: "username and password are required" }];
    }
    const { rows } = await pool.query("select password_sha256, tenant from users where username = $1", [username]);
    const given = Buffer.from(sha256hex(password));
    const stored = Buffer.from(rows[0] ? rows[0].password_sha256 : "");
    if (given.length !== stored.length || !crypto.timingSafeEqual(given, stored)) {
      return [401, { error: "invalid credentials" }];
    }
    const exp = Math.floor(Date.now() / 1000) + TOKEN_TTL_SECONDS;
    return [200, { token: signJwt({ sub: username, tenant: rows[0].tenant, exp }) }];
  },

  "GET /api/command/me": async (req) => {
    const claims = authenticate(req);
    if (!claims) return [401, { error: "unauthorized" }];
    return [200, { username: claims.sub, tenant: claims.tenant }];
  },

  "GET /api/common/indicadores": async () => {
    const { rows } = await pool.query("select uf, utm, to_char(fecha, 'YYYY-MM-DD') as fecha from indicadores order by fecha desc limit 1");
    if (!rows[0]) return [404, { error: "no indicadores" }];
    // numeric columns arrive as strings from pg; the API promises numbers.
    return [200, { UF: Number(rows[0].uf), UTM: Number(rows[0].utm), fecha: rows[0].fecha }];
  },

  "GET /api/tenant/items": async (req) => {
    const claims = authenticate(req);
    if (!claims) return [401, { error: "unauthorized" }];
    const { rows } = await pool.query("select id, tenant, name from items where tenant = $1 order by id", [claims.tenant]);
    return [200, { tenant: claims.tenant, items: rows }];
  },
};

const server = http.createServer(async (req, res) => {
  const pathname = new URL(req.url, "http://localhost").pathname.replace(/(.)\/+$/, "$1");
  const route = routes[`${req.method} ${pathname}`];
  try {
    const [status, body] = route ? await route(req) : [404, { error: "not found", path: pathname }];
    send(res, status, body);
  } catch (err) {
    if (!err.status) console.error(`${req.method} ${pathname} failed:`, err);
    send(res, err.status || 500, { error: err.status ? err.message : "internal error" });
  }
});

server.listen(PORT, () => console.log(`Server listening on port ${PORT}`));

// Graceful stop: close() stops accepting, lets in-flight requests finish and
// drops idle keep-alive sockets; then release the pool and exit cleanly.
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`${signal} received, shutting down`);
  // Clients holding busy sockets forever must not block the stop indefinitely.
  setTimeout(() => server.closeAllConnections(), 10_000).unref();
  server.close(async () => {
    await pool.end().catch(() => {});
    process.exit(0);
  });
}
process.on("SIGINT", () => shutdown("SIGINT"));
process.on("SIGTERM", () => shutdown("SIGTERM"));
