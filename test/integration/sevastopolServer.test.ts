// examples/sevastopol run as a web process (server.js, what production runs under PM2 behind
// nginx), beside its static build: the page rendered on the server with the release's version,
// dist/ assets, /health for the deploy's gate, and a stop on SIGTERM/SIGINT that drops no request.
import * as assert from "assert";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { EXAMPLES_DIR, makeExampleRepos } from "../../local/exampleRepos";
import { freePort } from "../../local/postgres";

/** The test runner's environment minus what the server reads, so only what a test passes counts. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ["PORT", "APP_VERSION", "DRAIN_TIMEOUT_MS", "NODE_ENV"]) delete env[k];
  return { ...env, ...extra };
}

function runOk(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = cleanEnv()): string {
  const r = spawnSync(cmd, args, { cwd, env, encoding: "utf8", timeout: 240_000 });
  if (r.error) throw r.error;
  assert.strictEqual(r.status, 0, `${cmd} ${args.join(" ")} in ${cwd} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** The example as a fresh checkout has it (no node_modules, no dist), installed and built. */
function buildExample(dest: string): string {
  const source = path.join(EXAMPLES_DIR, "sevastopol");
  fs.cpSync(source, dest, {
    recursive: true,
    filter: (src) => !["node_modules", "dist"].includes(path.relative(source, src).split(path.sep)[0]),
  });
  runOk("npm", ["ci", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund"], dest);
  runOk("npm", ["run", "build"], dest);
  return dest;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface Server {
  proc: ChildProcess;
  port: number;
  output: () => string;
  exited: Promise<number | null>;
}

const started: Server[] = [];

/** Starts `cmd args` in `dir` with PORT set, and waits for the "Server listening" line. */
async function startServer(dir: string, env: NodeJS.ProcessEnv = {}, cmd = process.execPath, args = ["server.js"]): Promise<Server> {
  const port = await freePort();
  const proc = spawn(cmd, args, { cwd: dir, env: cleanEnv({ PORT: String(port), ...env }) });
  let output = "";
  proc.stdout!.on("data", (d) => (output += d));
  proc.stderr!.on("data", (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  const server = { proc, port, output: () => output, exited };
  started.push(server);
  await waitFor(`the server's "listening" line (output so far: ${JSON.stringify(output)})`, () => {
    if (proc.exitCode !== null) throw new Error(`server exited ${proc.exitCode}:\n${output}`);
    return output.includes(`Server listening on port ${port}`);
  });
  return server;
}

async function get(port: number, urlPath: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`);
  return { status: res.status, type: res.headers.get("content-type") ?? "", body: await res.text() };
}

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

interface SlowRequest {
  /** Resolves once the TCP connection is up and the request line is sent; rejects (ECONNREFUSED…) otherwise. */
  connected: Promise<void>;
  /** Sends the rest of the headers. */
  finish: () => void;
  /** The complete response (Content-Length bytes of body); rejects if the connection ends before it. */
  response: Promise<Reply>;
}

/**
 * A GET sent in two parts over its own connection: the request line now, the last header and the
 * blank line on finish(). Between the two the request is in flight at the server. The connection
 * is ended after the response, or left open (idle, kept alive) with `keepOpen`.
 */
function slowGet(port: number, urlPath: string, keepOpen = false): SlowRequest {
  const socket = net.connect({ host: "127.0.0.1", port });
  let buf = Buffer.alloc(0);
  const connected = new Promise<void>((resolve, reject) => {
    socket.once("connect", () => {
      socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`);
      resolve();
    });
    socket.once("error", reject);
  });
  const parse = (): Reply | null => {
    const end = buf.indexOf("\r\n\r\n");
    if (end < 0) return null;
    const [statusLine, ...lines] = buf.subarray(0, end).toString("latin1").split("\r\n");
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const i = line.indexOf(":");
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const body = buf.subarray(end + 4);
    const length = Number(headers["content-length"]);
    if (!(body.length >= length)) return null;
    return { status: Number(statusLine.split(" ")[1]), headers, body: body.subarray(0, length).toString("utf8") };
  };
  const response = new Promise<Reply>((resolve, reject) => {
    socket.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      const reply = parse();
      if (reply) {
        if (!keepOpen) socket.end();
        resolve(reply);
      }
    });
    socket.on("error", reject);
    socket.on("close", () => reject(new Error(`GET ${urlPath}: connection closed before a complete response (${buf.length} bytes)`)));
  });
  response.catch(() => {}); // a refused connection is reported by `connected`; the caller awaits `response` otherwise
  return { connected, finish: () => socket.write("Connection: keep-alive\r\n\r\n"), response };
}

describe("integration: sevastopol as a web process (server.js)", function () {
  let work: string;
  let app: string;
  let builtPage: string;

  before(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-sevastopol-"));
    app = buildExample(path.join(work, "sevastopol"));
    builtPage = fs.readFileSync(path.join(app, "dist", "index.html"), "utf8");
  });

  after(() => {
    for (const s of started) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill("SIGKILL");
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("the static build is unchanged: dist/index.html and dist/version.json with the version", () => {
    assert.match(builtPage, /<meta name="version" content="1\.2\.2" \/>/);
    assert.match(builtPage, /Version <span id="version">1\.2\.2<\/span>/);
    assert.doesNotMatch(builtPage, /\{\{VERSION\}\}/);
    assert.deepStrictEqual(fs.readdirSync(path.join(app, "dist")).sort(), ["index.html", "version.json"]);
    assert.strictEqual(fs.readFileSync(path.join(app, "dist", "version.json"), "utf8"), '{"version":"1.2.2"}\n');
  });

  it("renders / on the server (the built page, byte for byte), serves dist/ assets and answers /health", async () => {
    // No dist/index.html: the page can only come from the server's rendering.
    const site = path.join(work, "rendered");
    fs.cpSync(app, site, { recursive: true });
    fs.rmSync(path.join(site, "dist", "index.html"));
    const { port } = await startServer(site);

    const page = await get(port, "/");
    assert.deepStrictEqual(page, { status: 200, type: "text/html; charset=utf-8", body: builtPage });
    assert.deepStrictEqual(await get(port, "/version.json"), { status: 200, type: "application/json", body: '{"version":"1.2.2"}\n' });
    const health = await get(port, "/health");
    assert.deepStrictEqual(
      { ...health, body: JSON.parse(health.body) },
      {
        status: 200,
        type: "application/json",
        body: { status: "ok", version: "1.2.2" },
      },
    );
    // As the static variant's nginx (try_files … /index.html): other paths get the page.
    assert.deepStrictEqual(await get(port, "/dashboard/tenant/7"), page);
    // Nothing outside dist/: the release's own files stay private.
    for (const p of ["/%2e%2e/package.json", "/..%2fserver.js", "/%2E%2E/%2E%2E/etc/passwd"]) {
      const r = await get(port, p);
      assert.strictEqual(r.body, builtPage, `${p} served something else than the page`);
    }
    const head = await fetch(`http://127.0.0.1:${port}/`, { method: "HEAD" });
    assert.strictEqual(head.status, 200);
    assert.strictEqual(head.headers.get("content-length"), String(Buffer.byteLength(builtPage)));
    const post = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: "x" });
    assert.strictEqual(post.status, 405);
    assert.strictEqual(post.headers.get("allow"), "GET, HEAD");
  });

  it("refuses to start without PORT", () => {
    const r = spawnSync(process.execPath, ["server.js"], { cwd: app, env: cleanEnv(), encoding: "utf8", timeout: 20_000 });
    assert.strictEqual(r.status, 1, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /PORT is not defined/);
  });

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`${signal} during a stream of slow requests: every one in flight is answered, new connections are refused, exit 0`, async () => {
      const server = await startServer(app);
      const { port } = server;
      const expected: Record<string, (r: Reply) => void> = {
        "/": (r) => assert.strictEqual(r.body, builtPage),
        "/health": (r) => assert.deepStrictEqual(JSON.parse(r.body), { status: "ok", version: "1.2.2" }),
        "/version.json": (r) => assert.deepStrictEqual(JSON.parse(r.body), { version: "1.2.2" }),
      };
      const paths = Object.keys(expected);
      // An idle keep-alive connection must not hold the stop (nor receive anything).
      const idle = slowGet(port, "/health", true);
      await idle.connected;
      idle.finish();
      const idleReply = await idle.response.catch((e) => e as Error);
      assert.ok(!(idleReply instanceof Error), String(idleReply));

      const SIGNAL_AT = 12;
      const answered: Promise<{ path: string; reply: Reply; sentWhileDraining: boolean }>[] = [];
      let open = 0;
      let inFlightAtSignal = 0;
      let refused = 0;
      let signalled = false;
      let draining = false; // the server said it is stopping
      // A request every 25 ms, each finished 150 ms after it started: about six in flight at a time.
      for (let i = 0; i < 40 && refused < 5; i++) {
        if (i === SIGNAL_AT) {
          inFlightAtSignal = open;
          server.proc.kill(signal);
          signalled = true;
          await waitFor(`"${signal} received" in the server's output`, () => server.output().includes(`${signal} received`));
          draining = true;
        }
        const p = paths[i % paths.length];
        const req = slowGet(port, p);
        try {
          await req.connected;
        } catch (err) {
          assert.ok(signalled && (err as NodeJS.ErrnoException).code === "ECONNREFUSED", `GET ${p} (request ${i}): ${err}`);
          refused++;
          await sleep(25);
          continue;
        }
        assert.ok(!signalled, `request ${i} was accepted after the server stopped accepting`);
        open++;
        let sentWhileDraining = false;
        setTimeout(() => {
          sentWhileDraining = draining;
          req.finish();
        }, 150);
        answered.push(
          req.response.then((reply) => {
            open--;
            return { path: p, reply, sentWhileDraining };
          }),
        );
        await sleep(25);
      }

      assert.ok(inFlightAtSignal >= 3, `only ${inFlightAtSignal} request(s) in flight at the signal`);
      assert.strictEqual(refused, 5, "new connections are refused once stopping");
      const replies = await Promise.all(answered); // a lost request rejects here
      assert.strictEqual(replies.length, SIGNAL_AT);
      for (const { path: p, reply, sentWhileDraining } of replies) {
        assert.strictEqual(reply.status, 200, `GET ${p}: ${reply.status} ${reply.body}`);
        expected[p](reply);
        // Answered while draining: the connection is closed after it, not kept alive.
        if (sentWhileDraining) assert.strictEqual(reply.headers.connection, "close", `GET ${p}`);
      }
      assert.ok(replies.filter((r) => r.sentWhileDraining).length >= 3, "requests were completed while the server was draining");
      const exitedIn = Date.now();
      assert.strictEqual(await server.exited, 0, server.output());
      assert.ok(Date.now() - exitedIn < 2_000, "the server exited promptly once drained (no keep-alive timeout waited for)");
      assert.match(server.output(), new RegExp(`${signal} received: no longer accepting`));
      assert.match(server.output(), /drained, exiting/);
    });
  }

  it("a request never finished does not hold the stop past DRAIN_TIMEOUT_MS", async () => {
    const server = await startServer(app, { DRAIN_TIMEOUT_MS: "400" });
    const stuck = slowGet(server.port, "/");
    await stuck.connected;
    await sleep(50);
    const t0 = Date.now();
    server.proc.kill("SIGTERM");
    assert.strictEqual(await server.exited, 0, server.output());
    const took = Date.now() - t0;
    assert.ok(took >= 350 && took < 3_000, `stopped after ${took} ms`);
    assert.match(server.output(), /drain timeout after 400 ms/);
    await assert.rejects(stuck.response, /connection closed before a complete response/);
  });

  it("npm start runs it, and npm's SIGTERM reaches the server: the request in flight answered, no process left", async () => {
    const server = await startServer(app, {}, "npm", ["start"]);
    const ps = spawnSync("ps", ["-o", "pid=", "--ppid", String(server.proc.pid)], { encoding: "utf8" });
    const children = ps.stdout.trim().split(/\s+/).filter(Boolean).map(Number);
    assert.strictEqual(children.length, 1, `npm's children: ${ps.stdout}`);
    const node = children[0];
    assert.match(fs.readFileSync(`/proc/${node}/cmdline`, "utf8").replace(/\0/g, " "), /node server\.js/);

    const req = slowGet(server.port, "/health");
    await req.connected;
    await sleep(50);
    server.proc.kill("SIGTERM");
    await waitFor("the server's drain line", () => server.output().includes("SIGTERM received"));
    req.finish();
    const reply = await req.response;
    assert.deepStrictEqual(JSON.parse(reply.body), { status: "ok", version: "1.2.2" });
    await server.exited;
    await waitFor(`node (pid ${node}) to exit`, () => {
      try {
        process.kill(node, 0);
        return false;
      } catch {
        return true;
      }
    });
    assert.match(server.output(), /drained, exiting/);
  });

  it("is in the example repos (v1.2.2 and v1.2.3): v1.2.3 cloned reports 1.2.3, whatever APP_VERSION says", async () => {
    const repos = await makeExampleRepos(path.join(work, "repos"));
    for (const tag of ["v1.2.2", "v1.2.3"]) {
      const files = runOk("git", ["-C", repos.sevastopol, "ls-tree", "-r", "--name-only", tag], work).split("\n");
      for (const f of ["server.js", "page.js", "build.js", "src/index.html"]) assert.ok(files.includes(f), `${tag} lacks ${f}`);
    }
    const clone = path.join(work, "sevastopol-1.2.3");
    runOk("git", ["clone", "-q", "--branch", "v1.2.3", repos.sevastopol, clone], work);
    runOk("npm", ["ci", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund"], clone);
    runOk("npm", ["run", "build"], clone);
    const server = await startServer(clone, { APP_VERSION: "9.9.9" });
    try {
      assert.deepStrictEqual(JSON.parse((await get(server.port, "/health")).body), { status: "ok", version: "1.2.3" });
      const page = (await get(server.port, "/")).body;
      assert.strictEqual(page, fs.readFileSync(path.join(clone, "dist", "index.html"), "utf8"));
      assert.match(page, /<meta name="version" content="1\.2\.3" \/>/);
      assert.match(server.output(), /APP_VERSION is 9\.9\.9 but this release is 1\.2\.3/);
    } finally {
      server.proc.kill("SIGTERM");
    }
    assert.strictEqual(await server.exited, 0, server.output());
  });
});
