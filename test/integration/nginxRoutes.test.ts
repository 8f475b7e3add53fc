import * as assert from "assert";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { DeployConfig, parseDeployConfig } from "../../lib/config";
import { envEntries, nginxSiteScript } from "../../lib/scripts";
import { get, request } from "../../local/http";
import { nginxReloadScript } from "../../local/nginxReload";
import { freePort } from "../../local/target";
import { validRaw } from "../support/validConfig";

const NGINX = "/usr/sbin/nginx";

/** A slot's stand-in: answers every request with its name and the path it was asked. */
function backend(name: string, port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => res.end(`${name} ${req.url}\n`));
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

/** Runs a step's script with bash under a lease, as the Command resource does on a server. */
function runStep(text: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync("bash", ["-c", text], { encoding: "utf8", timeout: 60_000, env: { ...process.env, NOSTROMO_LEASE: "it/routes-1" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function until(what: string, ok: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not ready after 10 s`);
}

/**
 * nginx.routes (issue 10) in a real nginx (non-root instance, own prefix and conf, as
 * local/target.ts runs it): the site step's text installs the site and the first upstream
 * includes; a static app at / (another at /docs/), a python app's live slot at /api/, a node app's at /orch/, and the
 * python app's folder shared by its releases at /static/ each answer; after a new release wrote
 * its hashed files there and the slot was switched, the old release's hashed file still answers.
 */
describe("integration: nginx routes in a real nginx", function () {
  let tmp: string;
  let root: string;
  let nginx: ChildProcess | undefined;
  const servers: http.Server[] = [];
  let cfg: DeployConfig;
  let ports: { nginx: number; iactBlue: number; iactGreen: number; orch: number };

  /** The cutover's switch: a new live link renamed over the app's. */
  function switchLink(app: string, slot: string): void {
    const link = path.join(root, "nginx-upstreams", app);
    fs.symlinkSync(`${app}.${slot}`, `${link}.new`);
    fs.renameSync(`${link}.new`, link);
  }

  before(async function () {
    if (!fs.existsSync(NGINX)) {
      if (process.env.CI) throw new Error(`no ${NGINX}: run eval "$(scripts/install-target-deps.sh)" first`);
      this.skip();
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-routes-"));
    // 0755 like a real /opt: nginx workers (www-data when run as root) read the files under root.
    fs.chmodSync(tmp, 0o755);
    root = path.join(tmp, "opt", "nostromo");
    const ngxDir = path.join(tmp, "nginx");
    const bin = path.join(tmp, "bin");
    for (const d of [root, path.join(ngxDir, "logs"), bin]) fs.mkdirSync(d, { recursive: true });
    // Preflight asks for pm2 (the node app's manager) by name only: nothing here starts it.
    fs.writeFileSync(path.join(bin, "pm2"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    ports = { nginx: await freePort(), iactBlue: await freePort(), iactGreen: await freePort(), orch: await freePort() };

    const ngxArgs = ["-p", ngxDir + "/", "-c", path.join(ngxDir, "nginx.conf"), "-e", path.join(ngxDir, "logs", "error.log")];
    const ngx = [NGINX, ...ngxArgs].map((a) => `'${a}'`).join(" ");
    const sitesDir = path.join(root, "nginx");
    fs.mkdirSync(sitesDir);
    fs.writeFileSync(
      path.join(ngxDir, "nginx.conf"),
      `${process.getuid?.() === 0 ? "user www-data;\n" : ""}daemon off;
worker_processes 1;
pid ${ngxDir}/nginx.pid;
error_log ${ngxDir}/logs/error.log info;
events { worker_connections 64; }
http {
  default_type application/octet-stream;
  access_log ${ngxDir}/logs/access.log;
  client_body_temp_path ${ngxDir}/client_body;
  proxy_temp_path ${ngxDir}/proxy;
  fastcgi_temp_path ${ngxDir}/fastcgi;
  uwsgi_temp_path ${ngxDir}/uwsgi;
  scgi_temp_path ${ngxDir}/scgi;
  include ${sitesDir}/*.conf;
}
`,
    );
    fs.writeFileSync(path.join(sitesDir, "nostromo.conf"), `server { listen 127.0.0.1:${ports.nginx}; return 503; }\n`);
    const reload = path.join(ngxDir, "reload.sh");
    fs.writeFileSync(
      reload,
      nginxReloadScript({ test: `${ngx} -t -q`, reload: `${ngx} -s reload`, pidFile: `${ngxDir}/nginx.pid`, logHint: "routes test" }),
      { mode: 0o755 },
    );
    nginx = spawn(NGINX, ngxArgs, { stdio: "ignore" });
    await until("nginx", async () => (await get(ports.nginx, "/")).status === 503);

    const raw = validRaw();
    raw.server = { ...raw.server, root, path: [bin] };
    raw.apps.orchestrator.ports = { blue: ports.orch, green: await freePort() };
    raw.apps.iact = {
      repo: "/tmp/repos/iact",
      ref: "v1.0.0",
      kind: "python",
      start: "gunicorn iact.wsgi --bind 127.0.0.1:$PORT",
      build: "python manage.py collectstatic --noinput",
      ports: { blue: ports.iactBlue, green: ports.iactGreen },
      health: { path: "/api/health", expect: { status: "healthy" } },
    };
    raw.apps.docs = { repo: "/tmp/repos/docs", ref: "v1.0.0", kind: "static", output: "site" };
    raw.nginx = {
      port: ports.nginx,
      listen: `127.0.0.1:${ports.nginx}`,
      sitesDir,
      testCommand: `${ngx} -t -q`,
      reloadCommand: `/bin/sh '${reload}'`,
      routes: [
        { path: "/", app: "sevastopol" },
        { path: "/api/", app: "iact" },
        { path: "/orch/", app: "orchestrator" },
        { path: "/static/", app: "iact", static: "static" },
        { path: "/docs/", app: "docs" },
      ],
    };
    cfg = parseDeployConfig("it", raw, { sshPrivateKey: true, databaseUrl: true });

    // The static app's current release, and the python app's first release's collectstatic.
    const web = path.join(root, "releases", "sevastopol", "a1", "dist");
    fs.mkdirSync(web, { recursive: true });
    fs.writeFileSync(path.join(web, "index.html"), "<title>sevastopol</title>\n");
    fs.writeFileSync(path.join(web, "app.js"), "console.log('sevastopol')\n");
    const docs = path.join(root, "releases", "docs", "b2", "site");
    fs.mkdirSync(docs, { recursive: true });
    fs.writeFileSync(path.join(docs, "index.html"), "<title>docs</title>\n");
    fs.writeFileSync(path.join(docs, "guide.html"), "<title>guide</title>\n");
    fs.mkdirSync(path.join(root, "current"), { recursive: true });
    fs.symlinkSync("../releases/sevastopol/a1", path.join(root, "current", "sevastopol"));
    fs.symlinkSync("../releases/docs/b2", path.join(root, "current", "docs"));
    servers.push(await backend("iact-blue", ports.iactBlue), await backend("orchestrator-blue", ports.orch));
  });

  after(async () => {
    if (nginx && nginx.exitCode === null) {
      const exited = new Promise((r) => nginx!.once("exit", r));
      nginx.kill("SIGQUIT");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (nginx.exitCode === null) nginx.kill("SIGKILL");
    }
    for (const s of servers) s.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("the site step installs the routes: /, /api/, /orch/ and /static/ go where they should; an old hashed file still answers after a new release", async () => {
    const step = runStep(nginxSiteScript(cfg));
    assert.strictEqual(step.code, 0, step.stderr);
    // A first live link per routed web app, to its blue slot.
    for (const app of ["iact", "orchestrator"]) assert.strictEqual(fs.readlinkSync(path.join(root, "nginx-upstreams", app)), `${app}.blue`);

    // collectstatic of the first release writes where the .env says; nginx serves that folder.
    const staticRoot = envEntries(
      cfg.apps.find((a) => a.name === "iact")!,
      {},
    ).STATIC_ROOT;
    assert.strictEqual(staticRoot, path.join(root, "shared", "iact", "static"));
    fs.mkdirSync(path.join(staticRoot, "core"), { recursive: true });
    fs.writeFileSync(path.join(staticRoot, "core", "app.abc123.css"), "body { color: black }\n");
    fs.writeFileSync(path.join(staticRoot, "core", "app.css"), "body { color: black }\n");

    assert.deepStrictEqual(await get(ports.nginx, "/"), { status: 200, body: "<title>sevastopol</title>\n" });
    assert.deepStrictEqual(await get(ports.nginx, "/app.js"), { status: 200, body: "console.log('sevastopol')\n" });
    assert.deepStrictEqual(await get(ports.nginx, "/dashboard/tenant/7"), { status: 200, body: "<title>sevastopol</title>\n" });
    // Another static app under a prefix: an alias to its current release, its own index.html.
    assert.deepStrictEqual(await get(ports.nginx, "/docs/"), { status: 200, body: "<title>docs</title>\n" });
    assert.deepStrictEqual(await get(ports.nginx, "/docs/guide.html"), { status: 200, body: "<title>guide</title>\n" });
    assert.deepStrictEqual(await get(ports.nginx, "/docs/setup/linux"), { status: 200, body: "<title>docs</title>\n" });
    assert.deepStrictEqual(await get(ports.nginx, "/api/x?y=1"), { status: 200, body: "iact-blue /api/x?y=1\n" });
    assert.deepStrictEqual(await get(ports.nginx, "/orch/health"), { status: 200, body: "orchestrator-blue /orch/health\n" });
    assert.deepStrictEqual(await get(ports.nginx, "/static/core/app.abc123.css"), { status: 200, body: "body { color: black }\n" });
    // A missing static file is a 404, not the frontend's index.html.
    assert.strictEqual((await get(ports.nginx, "/static/core/app.000000.css")).status, 404);

    // A new release: its collectstatic writes new hashed files beside the old ones, its slot
    // (green) starts, and the cutover renames the live link, without a reload. A page the old
    // slot rendered still names app.abc123.css: it answers.
    fs.writeFileSync(path.join(staticRoot, "core", "app.def456.css"), "body { color: navy }\n");
    fs.writeFileSync(path.join(staticRoot, "core", "app.css"), "body { color: navy }\n");
    servers.push(await backend("iact-green", ports.iactGreen));
    switchLink("iact", "green");
    assert.deepStrictEqual(await get(ports.nginx, "/api/x"), { status: 200, body: "iact-green /api/x\n" });
    assert.deepStrictEqual(await get(ports.nginx, "/static/core/app.def456.css"), { status: 200, body: "body { color: navy }\n" });
    assert.deepStrictEqual(await get(ports.nginx, "/static/core/app.abc123.css"), { status: 200, body: "body { color: black }\n" });

    // The site step again keeps the switched link (it only makes a missing one).
    const again = runStep(nginxSiteScript(cfg));
    assert.strictEqual(again.code, 0, again.stderr);
    assert.deepStrictEqual(await get(ports.nginx, "/api/x"), { status: 200, body: "iact-green /api/x\n" });
  });

  it("a switch drops no kept-alive client connection: 40 switches under 10 keep-alive clients, every request answered, by both slots", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
    const tally = { ok: 0, failed: [] as string[], bodies: new Set<string>() };
    let running = true;
    const client = async () => {
      while (running) {
        const r = await request(ports.nginx, "GET", "/api/ka", { agent });
        if (r.status === 200) {
          tally.ok++;
          tally.bodies.add(r.body);
        } else tally.failed.push(`HTTP ${r.status} ${r.body}`);
      }
    };
    const clients = Array.from({ length: 10 }, client);
    for (let i = 0; i < 40; i++) {
      switchLink("iact", i % 2 === 0 ? "blue" : "green");
      await new Promise((r) => setTimeout(r, 50));
    }
    running = false;
    await Promise.all(clients);
    agent.destroy();
    assert.deepStrictEqual(tally.failed, [], `${tally.failed.length} of ${tally.ok + tally.failed.length} requests failed`);
    assert.ok(tally.ok > 100, `only ${tally.ok} requests`);
    assert.deepStrictEqual([...tally.bodies].sort(), ["iact-blue /api/ka\n", "iact-green /api/ka\n"]);
  });

  it("nginx answers this machine which slot it routes to, as its workers see the link: one that cannot read it stays on blue", async () => {
    switchLink("iact", "green");
    assert.deepStrictEqual(await get(ports.nginx, "/.nostromo/live/iact"), { status: 200, body: "nostromo_iact_green\n" });
    assert.deepStrictEqual(await get(ports.nginx, "/api/x"), { status: 200, body: "iact-green /api/x\n" });
    // The green folder unreadable to nginx's workers: the link says green, nginx routes to blue,
    // and says so (the cutover asks it after every switch, and puts the switch back).
    const green = path.join(root, "nginx-upstreams", "iact.green");
    fs.chmodSync(green, 0);
    try {
      assert.deepStrictEqual(await get(ports.nginx, "/.nostromo/live/iact"), { status: 200, body: "nostromo_iact_blue\n" });
      assert.deepStrictEqual(await get(ports.nginx, "/api/x"), { status: 200, body: "iact-blue /api/x\n" });
    } finally {
      fs.chmodSync(green, 0o755);
    }
    assert.deepStrictEqual(await get(ports.nginx, "/.nostromo/live/iact"), { status: 200, body: "nostromo_iact_green\n" });
  });

  it("a server deployed before the live link: the site step links the slot its live file names and removes the old include", async () => {
    const up = path.join(root, "nginx-upstreams");
    fs.unlinkSync(path.join(up, "orchestrator"));
    fs.writeFileSync(
      path.join(up, "orchestrator.conf"),
      `server 127.0.0.1:${cfg.apps.find((a) => a.name === "orchestrator")!.ports!.green};\n`,
    );
    fs.mkdirSync(path.join(root, "slots", "orchestrator"), { recursive: true });
    fs.writeFileSync(path.join(root, "slots", "orchestrator", "live"), "green\n");
    const step = runStep(nginxSiteScript(cfg));
    assert.strictEqual(step.code, 0, step.stderr);
    assert.strictEqual(fs.readlinkSync(path.join(up, "orchestrator")), "orchestrator.green");
    assert.ok(!fs.existsSync(path.join(up, "orchestrator.conf")), "the old include is still there");
    assert.strictEqual(fs.readlinkSync(path.join(up, "iact")), "iact.green");
  });
});
