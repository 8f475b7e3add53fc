import * as assert from "assert";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { EXAMPLES_DIR, addCommit, makeExampleRepos } from "../../local/exampleRepos";
import { PostgresInstance, freePort, startPostgres } from "../../local/postgres";

const JWT_SECRET = "integration-secret";

/** The test runner's environment minus anything the apps read, so only what a test passes counts. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ["PORT", "DATABASE_URL", "JWT_SECRET", "APP_USERS", "NODE_ENV"]) delete env[k];
  return { ...env, ...extra };
}

interface Result {
  code: number | null;
  out: string;
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = cleanEnv()): Result {
  const r = spawnSync(cmd, args, { cwd, env, encoding: "utf8", timeout: 240_000 });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function runOk(cmd: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv): string {
  const r = run(cmd, args, cwd, env);
  assert.strictEqual(r.code, 0, `${cmd} ${args.join(" ")} in ${cwd} exited ${r.code}:\n${r.out}`);
  return r.out;
}

/** Copy of an example app without node_modules/dist, as a fresh checkout would look. */
function copyExample(name: string, dest: string): string {
  const source = path.join(EXAMPLES_DIR, name);
  fs.cpSync(source, dest, {
    recursive: true,
    filter: (src) => !["node_modules", "dist"].includes(path.relative(source, src).split(path.sep)[0]),
  });
  return dest;
}

const npmCi = (dir: string) => runOk("npm", ["ci", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund"], dir);

interface Server {
  proc: ChildProcess;
  port: number;
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts `node dist/server.js` in `dir` and waits for its "listening" line. */
async function startServer(dir: string): Promise<Server> {
  const port = await freePort();
  const proc = spawn(process.execPath, ["dist/server.js"], { cwd: dir, env: cleanEnv({ PORT: String(port) }) });
  let output = "";
  proc.stdout!.on("data", (d) => (output += d));
  proc.stderr!.on("data", (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  const deadline = Date.now() + 20_000;
  while (!output.includes(`Server listening on port ${port}`)) {
    if (proc.exitCode !== null) throw new Error(`server exited ${proc.exitCode}:\n${output}`);
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`server did not report listening:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, port, output: () => output, exited };
}

async function call(port: number, method: string, urlPath: string, opts: { token?: string; body?: unknown } = {}) {
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, {
    method,
    headers: {
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      ...(opts.body !== undefined ? { "content-type": "application/json" } : {}),
    },
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
  });
  assert.match(res.headers.get("content-type") ?? "", /application\/json/, `${method} ${urlPath} is not JSON`);
  return { status: res.status, body: (await res.json()) as any };
}

async function login(port: number, username: string, password = "special-order-937"): Promise<string> {
  const r = await call(port, "POST", "/api/command/auth/login", { body: { username, password } });
  assert.strictEqual(r.status, 200, JSON.stringify(r.body));
  return r.body.token as string;
}

/** Runs one SQL query through the app's own `pg` install (the root project does not depend on pg). */
function sql(appDir: string, url: string, query: string): unknown[] {
  const script =
    "const {Client}=require('pg');const c=new Client({connectionString:process.argv[1]});" +
    "c.connect().then(()=>c.query(process.argv[2])).then(r=>{console.log(JSON.stringify(r.rows));return c.end();})" +
    ".catch(e=>{console.error(e.message);process.exit(1);});";
  return JSON.parse(runOk(process.execPath, ["-e", script, url, query], appDir));
}

describe("integration: example apps", function () {
  let pg: PostgresInstance;
  let work: string;

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-examples-"));
    pg = await startPostgres();
  });

  after(async () => {
    await pg?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  describe("orchestrator 1.2.2", () => {
    let app: string;
    let server: Server;

    before(() => {
      app = copyExample("orchestrator", path.join(work, "orchestrator"));
      npmCi(app);
      runOk("npm", ["run", "build"], app);
      // Config the way a release gets it: a .env in the working directory.
      fs.writeFileSync(path.join(app, ".env"), `# test config\n\nDATABASE_URL=${pg.url}\nJWT_SECRET="${JWT_SECRET}"\n`);
    });

    after(() => {
      if (server?.proc.exitCode === null) server.proc.kill("SIGKILL");
    });

    it("builds dist/ with build-info.json", () => {
      const info = JSON.parse(fs.readFileSync(path.join(app, "dist", "build-info.json"), "utf8"));
      assert.strictEqual(info.version, "1.2.2");
      assert.ok(!Number.isNaN(Date.parse(info.builtAt)));
      assert.ok(fs.existsSync(path.join(app, "dist", "server.js")));
    });

    it("migrates once, and a second run applies nothing", () => {
      const first = runOk("npm", ["run", "migrate:production"], app);
      assert.match(first, /applied 001_init\.sql/);
      const second = runOk("npm", ["run", "migrate:production"], app);
      assert.doesNotMatch(second, /applied \d+_/);
      assert.match(second, /no pending migrations/);
      assert.deepStrictEqual(sql(app, pg.url, "select name from schema_migrations"), [{ name: "001_init.sql" }]);
    });

    it("rolls back a failing migration and exits 1", () => {
      const broken = path.join(app, "migrations", "003_broken.sql");
      fs.writeFileSync(broken, "create table broken_tbl (id int);\nselect * from no_such_table;\n");
      try {
        const r = run(process.execPath, ["scripts/migrate.js"], app);
        assert.strictEqual(r.code, 1, r.out);
        assert.match(r.out, /003_broken\.sql/);
        assert.match(r.out, /no_such_table/);
        assert.deepStrictEqual(sql(app, pg.url, "select to_regclass('public.broken_tbl') as t"), [{ t: null }]);
        assert.deepStrictEqual(sql(app, pg.url, "select count(*)::int as n from schema_migrations"), [{ n: 1 }]);
      } finally {
        fs.rmSync(broken);
      }
    });

    it("refuses to start without JWT_SECRET", () => {
      // An empty cwd: no .env to fall back on.
      const empty = fs.mkdtempSync(path.join(work, "empty-"));
      const r = run(process.execPath, [path.join(app, "dist", "server.js")], empty, cleanEnv({ PORT: "1", DATABASE_URL: pg.url }));
      assert.strictEqual(r.code, 1);
      assert.match(r.out, /JWT_SECRET is not defined/);
    });

    it("serves health, auth, indicadores and tenant-scoped items", async () => {
      server = await startServer(app);
      const { port } = server;

      assert.deepStrictEqual(await call(port, "GET", "/health"), { status: 200, body: { status: "ok", version: "1.2.2" } });
      assert.deepStrictEqual(await call(port, "GET", "/health/db"), { status: 200, body: { status: "ok" } });

      const token = await login(port, "admin");
      assert.strictEqual(token.split(".").length, 3);
      assert.deepStrictEqual((await call(port, "GET", "/api/command/me", { token })).body, { username: "admin", tenant: "weyland" });

      const bad = await call(port, "POST", "/api/command/auth/login", { body: { username: "admin", password: "wrong" } });
      assert.strictEqual(bad.status, 401);
      assert.strictEqual(
        (await call(port, "POST", "/api/command/auth/login", { body: { username: "nobody", password: "x" } })).status,
        401,
      );

      const ind = await call(port, "GET", "/api/common/indicadores");
      assert.strictEqual(ind.status, 200);
      assert.strictEqual(typeof ind.body.UF, "number");
      assert.strictEqual(typeof ind.body.UTM, "number");
      assert.match(ind.body.fecha, /^\d{4}-\d{2}-\d{2}$/);

      const weyland = await call(port, "GET", "/api/tenant/items", { token });
      assert.strictEqual(weyland.status, 200);
      assert.strictEqual(weyland.body.tenant, "weyland");
      assert.ok(weyland.body.items.length > 0);
      const ripley = await call(port, "GET", "/api/tenant/items", { token: await login(port, "ripley") });
      assert.strictEqual(ripley.body.tenant, "yutani");
      const weylandIds = new Set(weyland.body.items.map((i: { id: number }) => i.id));
      assert.ok(
        ripley.body.items.length > 0 && ripley.body.items.every((i: { id: number }) => !weylandIds.has(i.id)),
        "tenants share items",
      );
      assert.deepStrictEqual(sql(app, pg.url, "select count(*)::int as n from items where tenant = 'weyland'"), [
        { n: weyland.body.items.length },
      ]);
    });

    it("answers 401 without or with a forged token, 404 JSON on unknown paths", async () => {
      const { port } = server;
      assert.strictEqual((await call(port, "GET", "/api/command/me")).status, 401);
      assert.strictEqual((await call(port, "GET", "/api/tenant/items")).status, 401);
      const [head, body] = (await login(port, "ripley")).split(".");
      const forgedBody = Buffer.from(
        JSON.stringify({ ...JSON.parse(Buffer.from(body, "base64url").toString()), tenant: "weyland" }),
      ).toString("base64url");
      const forged = `${head}.${forgedBody}.${"A".repeat(43)}`;
      assert.strictEqual((await call(port, "GET", "/api/tenant/items", { token: forged })).status, 401);
      const missing = await call(port, "GET", "/nope");
      assert.strictEqual(missing.status, 404);
    });

    it("finishes an in-flight request on SIGTERM, then exits 0", async () => {
      const { port, proc } = server;
      // Send half a request body, signal, then complete it: the reply must still arrive.
      const response = new Promise<{ status?: number; body: string }>((resolve, reject) => {
        const req = http.request(
          { host: "127.0.0.1", port, method: "POST", path: "/api/command/auth/login", headers: { "content-type": "application/json" } },
          (res) => {
            let body = "";
            res.on("data", (d) => (body += d));
            res.on("end", () => resolve({ status: res.statusCode, body }));
          },
        );
        req.on("error", reject);
        req.write('{"username":"admin",');
        setTimeout(() => {
          proc.kill("SIGTERM");
          setTimeout(() => req.end('"password":"special-order-937"}'), 300);
        }, 200);
      });
      const r = await response;
      assert.strictEqual(r.status, 200, r.body);
      assert.ok(JSON.parse(r.body).token);
      assert.strictEqual(await server.exited, 0, server.output());
    });
  });

  describe("sevastopol 1.2.2", () => {
    it("builds dist/index.html and dist/version.json with the version", () => {
      const app = copyExample("sevastopol", path.join(work, "sevastopol"));
      npmCi(app);
      runOk("npm", ["run", "build"], app);
      const html = fs.readFileSync(path.join(app, "dist", "index.html"), "utf8");
      assert.match(html, /<meta name="version" content="1\.2\.2" ?\/?>/);
      assert.match(html, /<title>Sevastopol<\/title>/);
      assert.doesNotMatch(html, /\{\{VERSION\}\}/);
      assert.deepStrictEqual(JSON.parse(fs.readFileSync(path.join(app, "dist", "version.json"), "utf8")), { version: "1.2.2" });
    });
  });

  describe("makeExampleRepos", () => {
    let repos: { orchestrator: string; sevastopol: string };

    before(async () => {
      repos = await makeExampleRepos(path.join(work, "repos"));
    });

    const git = (repo: string, ...args: string[]) => runOk("git", ["-C", repo, ...args], work).trim();

    it("tags v1.2.2 and v1.2.3 with matching package versions", () => {
      for (const repo of [repos.orchestrator, repos.sevastopol]) {
        assert.deepStrictEqual(git(repo, "tag").split("\n"), ["v1.2.2", "v1.2.3"]);
        assert.strictEqual(JSON.parse(git(repo, "show", "v1.2.2:package.json")).version, "1.2.2");
        assert.strictEqual(JSON.parse(git(repo, "show", "v1.2.3:package.json")).version, "1.2.3");
        const lock = JSON.parse(git(repo, "show", "v1.2.3:package-lock.json"));
        assert.strictEqual(lock.version, "1.2.3");
        assert.strictEqual(lock.packages[""].version, "1.2.3");
        assert.strictEqual(git(repo, "log", "-1", "--format=%s", "v1.2.3"), "Feature: admin indexes");
        assert.strictEqual(git(repo, "status", "--porcelain"), "", "nothing left uncommitted");
        assert.ok(
          !git(repo, "ls-tree", "-r", "--name-only", "v1.2.3")
            .split("\n")
            .some((f) => /^(node_modules|dist)\//.test(f)),
        );
      }
      assert.ok(
        git(repos.orchestrator, "ls-tree", "-r", "--name-only", "v1.2.3").split("\n").includes("migrations/002_add_admin_indexes.sql"),
      );
      assert.ok(
        !git(repos.orchestrator, "ls-tree", "-r", "--name-only", "v1.2.2").split("\n").includes("migrations/002_add_admin_indexes.sql"),
      );
    });

    it("is reproducible: same commit ids on a second run", async () => {
      const again = await makeExampleRepos(path.join(work, "repos-again"));
      assert.strictEqual(git(again.orchestrator, "rev-parse", "v1.2.3"), git(repos.orchestrator, "rev-parse", "v1.2.3"));
    });

    it("v1.2.3 cloned by URL migrates the 1.2.2 database with only 002 and reports 1.2.3", async () => {
      const app = path.join(work, "orchestrator-1.2.3");
      runOk("git", ["clone", "-q", "--branch", "v1.2.3", repos.orchestrator, app], work);
      npmCi(app);
      runOk("npm", ["run", "build"], app);
      fs.writeFileSync(path.join(app, ".env"), `DATABASE_URL=${pg.url}\nJWT_SECRET=${JWT_SECRET}\n`);
      const out = runOk("npm", ["run", "migrate:production"], app);
      assert.match(out, /applied 002_add_admin_indexes\.sql/);
      assert.doesNotMatch(out, /applied 001_init\.sql/);

      const server = await startServer(app);
      try {
        assert.deepStrictEqual((await call(server.port, "GET", "/health")).body, { status: "ok", version: "1.2.3" });
        const token = await login(server.port, "admin");
        assert.strictEqual((await call(server.port, "GET", "/api/tenant/items", { token })).body.tenant, "weyland");
      } finally {
        server.proc.kill("SIGTERM");
      }
      assert.strictEqual(await server.exited, 0, server.output());
    });

    it("addCommit adds further tagged versions", async () => {
      await addCommit(repos.orchestrator, "Broken migration", { "migrations/003_broken.sql": "select * from nowhere;\n" }, "v1.2.4");
      assert.deepStrictEqual(git(repos.orchestrator, "tag").split("\n"), ["v1.2.2", "v1.2.3", "v1.2.4"]);
      assert.strictEqual(git(repos.orchestrator, "show", "v1.2.4:migrations/003_broken.sql"), "select * from nowhere;");
    });
  });
});
