/**
 * This project beside its peers, in one run, on the same kind of local target (sshd, nginx, PM2
 * on loopback; a fresh one and a fresh PostgreSQL per tool, one tool after the other) and the same
 * example repos (tags v1.2.2 and v1.2.3, the second with a migration):
 *
 *   - this project: `pulumi up` (local/harness.ts), rollback with tools/rollback.ts;
 *   - `pm2 deploy` as PM2's documentation sets it up: an ecosystem file with deploy.production
 *     (ssh to the target, repo, ref, path, post-deploy `npm ci && npm run migrate:production &&
 *     pm2 startOrReload ecosystem.config.js --env production`), the app in cluster mode (2
 *     instances on one port) behind nginx; upgrade by changing ref and `pm2 deploy … --force`,
 *     rollback `pm2 deploy … revert 1`;
 *   - runbook 000 as a shell script over SSH: git fetch + checkout of the ref in one folder,
 *     npm ci, build, migrate, `pm2 restart` of one fork-mode process behind nginx; its rollback
 *     checks out the previous ref the same way (no migration, as the runbook's rollback).
 *
 * The peers deploy orchestrator only; this project's stack deploys sevastopol as well.
 * During each upgrade, rollback and bad release, 20 clients open a new connection per request and
 * 20 keep-alive clients reuse theirs, GET /health through nginx's public port, one request at a
 * time each with a short pause, bounded in count and time. Two bad releases (this project and pm2
 * deploy): one whose /health answers 500, and one that answers 500 to 20% of GET /api/crew while
 * its health and smoke checks pass, deployed under the same load on /api/crew over a healthy
 * release with that endpoint; this project watches it with a bake window as runbook 000's rule
 * says (back above a 10% error rate; 6 s, as on the local stack), pm2 deploy with nothing.
 *
 * Run: eval "$(scripts/install-pulumi.sh)"; eval "$(scripts/install-target-deps.sh)"; npx ts-node bench/peers.ts
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { REPO_ROOT } from "../local/backend";
import { addVersion, makeExampleRepos } from "../local/exampleRepos";
import { DeployHarness } from "../local/harness";
import { get, request } from "../local/http";
import { PostgresInstance, startPostgres } from "../local/postgres";
import { LocalTarget, freePort, startLocalTarget } from "../local/target";

const CYCLES = 3; // upgrade ↔ rollback cycles per tool
const NOOP_RUNS = 3;
const CLIENTS = 20; // per kind
const PAUSE_MS = 10; // between one client's requests
const LOAD_MAX_REQUESTS = 200_000; // per kind and scenario
const LOAD_MAX_MS = 8 * 60_000;
const COMMAND_TIMEOUT_MS = 9 * 60_000;
const POLL_MS = 50;
/** This project's bake window for the flaky release (the bake e2e test's). */
const FLAKY_BAKE = { seconds: 6, maxErrorPercent: 10, minRequests: 20 };
/** Requests to the flaky endpoint after the flaky release's deploy: how many of them fail. */
const AFTER_SAMPLE = 100;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

// ---------------------------------------------------------------------------------------------
// Commands, load and the version watch

interface Ran {
  code: number;
  out: string;
}

/** Runs a command without blocking the event loop (the load runs meanwhile); bounded in time. */
function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; stdin?: string } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    const stdin = opts.stdin ? fs.openSync(opts.stdin, "r") : "ignore";
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: [stdin, "pipe", "pipe"] });
    if (typeof stdin === "number") fs.closeSync(stdin);
    let out = "";
    const keep = (d: Buffer) => (out = (out + d.toString()).slice(-20_000));
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    const timer = setTimeout(() => child.kill("SIGKILL"), COMMAND_TIMEOUT_MS);
    child.on("error", (e) => (out += `\nspawn ${cmd}: ${e.message}`));
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out });
    });
  });
}

function must(what: string, r: Ran): void {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.out.slice(-3000)}`);
}

type Kind = "fresh" | "keepAlive";
interface LoadResult {
  sent: Record<Kind, number>;
  failed: Record<Kind, number>;
  samples: string[];
}

/** CLIENTS new-connection and CLIENTS keep-alive clients on GET `path` until finished. */
function startLoad(port: number, path = "/health") {
  let stop = false;
  const started = Date.now();
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const r: LoadResult = { sent: { fresh: 0, keepAlive: 0 }, failed: { fresh: 0, keepAlive: 0 }, samples: [] };
  const client = async (kind: Kind) => {
    while (!stop && r.sent[kind] < LOAD_MAX_REQUESTS && Date.now() - started < LOAD_MAX_MS) {
      r.sent[kind]++;
      const a = kind === "fresh" ? await get(port, path) : await request(port, "GET", path, { agent });
      if (a.status !== 200) {
        r.failed[kind]++;
        if (r.samples.length < 4) r.samples.push(`${kind}: ${a.status} ${a.body.slice(0, 100).replace(/\s+/g, " ")}`);
      }
      await sleep(PAUSE_MS);
    }
  };
  const all = Promise.all(Array.from({ length: CLIENTS }, () => [client("fresh"), client("keepAlive")]).flat());
  return {
    async finish(): Promise<LoadResult> {
      stop = true;
      await all;
      agent.destroy();
      return r;
    },
  };
}

async function versionAt(port: number): Promise<string> {
  const a = await get(port, "/health");
  try {
    return a.status === 200 ? JSON.parse(a.body).version : `HTTP ${a.status}`;
  } catch {
    return `HTTP ${a.status} (not JSON)`;
  }
}

/** Polls /health every POLL_MS from now until it answers `want`; seconds from now, or undefined. */
function watchVersion(port: number, want: string) {
  const started = Date.now();
  let deadline = started + LOAD_MAX_MS;
  let seen: number | undefined;
  const done = (async () => {
    while (seen === undefined && Date.now() < deadline) {
      const t = Date.now();
      if ((await versionAt(port)) === want) seen = (Date.now() - started) / 1000;
      else await sleep(Math.max(0, POLL_MS - (Date.now() - t)));
    }
  })();
  return {
    /** Waits at most 15 s more for the version. */
    async finish(): Promise<number | undefined> {
      deadline = Math.min(deadline, Date.now() + 15_000);
      await done;
      return seen;
    },
  };
}

interface Timed {
  seconds: number;
  load: LoadResult;
  toOld?: number;
  code: number;
}

/** Waits until /health through nginx answers `want` (at most 30 s); true when it does. */
async function settled(port: number, want: string): Promise<boolean> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if ((await versionAt(port)) === want) return true;
    await sleep(POLL_MS);
  }
  return false;
}

/**
 * `fn` timed under load. The load runs from just before the command until it has ended and
 * /health answers `settle` (a process manager may return before the new process listens).
 * With `watchFor`, also the time from the command's start until /health answers it. `path`: what
 * the clients GET (default /health).
 */
async function underLoad(port: number, fn: () => Promise<number>, settle?: string, watchFor?: string, path?: string): Promise<Timed> {
  const load = startLoad(port, path);
  await sleep(300); // the clients are running before the command starts
  const watch = watchFor ? watchVersion(port, watchFor) : undefined;
  const start = Date.now();
  const code = await fn();
  const seconds = (Date.now() - start) / 1000;
  const toOld = await watch?.finish();
  if (settle && code === 0) await settled(port, settle);
  return { seconds, load: await load.finish(), toOld, code };
}

// ---------------------------------------------------------------------------------------------
// The tools

interface Tool {
  name: string;
  apps: string;
  port(): number;
  repo(): string;
  /** Target, database and first deploy of v1.2.2 (not timed). */
  setup(): Promise<void>;
  /** Deploys `ref` of orchestrator (this project: and v1.2.3 of sevastopol); exit code. */
  deploy(ref: string): Promise<number>;
  /** Rolls back to the release before; exit code. */
  rollback(): Promise<number>;
  /** What watches a release after its switch, set up before the healthy release the flaky one follows (none: nothing). */
  watchAfterSwitch?(): string;
  lastOutput: string;
  stop(): Promise<void>;
}

/** This project: `pulumi up` of a local stack, tools/rollback.ts. */
class ThisProject implements Tool {
  name = "this project";
  apps = "orchestrator + sevastopol";
  lastOutput = "";
  private h = new DeployHarness(`t-peers${process.pid}`);
  port = () => this.h.target.nginx.port;
  repo = () => this.h.opts.repos.orchestrator;

  async setup(): Promise<void> {
    await this.h.start({ orchestrator: "v1.2.2", sevastopol: "v1.2.2" });
    if ((await this.deploy("v1.2.2")) !== 0) throw new Error(`first deploy failed:\n${this.lastOutput.slice(-3000)}`);
  }

  async deploy(ref: string): Promise<number> {
    // sevastopol has v1.2.2 and v1.2.3 only: a later orchestrator goes with its v1.2.3.
    this.h.configure({ refs: { orchestrator: ref, sevastopol: ref === "v1.2.2" ? ref : "v1.2.3" } });
    const r = await this.h.up(`deploy ${ref}`);
    this.lastOutput = `${r.stdout}\n${r.stderr}`;
    return r.code ?? -1;
  }

  /** A bake window as runbook 000's rule (back at once above a 10% error rate), short as on the local stack. */
  watchAfterSwitch(): string {
    this.h.configure({ extra: { bake: FLAKY_BAKE } });
    return `bake ${FLAKY_BAKE.seconds} s, max ${FLAKY_BAKE.maxErrorPercent}% 5xx`;
  }

  async rollback(): Promise<number> {
    // The command the README gives (npx would add its own 0.2 s start).
    const r = await run("npm", ["run", "-s", "rollback", "--", "--stack", this.h.stack, "--yes"], {
      cwd: REPO_ROOT,
      env: this.h.backend.env,
    });
    this.lastOutput = r.out;
    return r.code;
  }

  async stop(): Promise<void> {
    await this.h.stop();
  }
}

/** A target, a database and the example repos, for a peer. */
abstract class Peer implements Tool {
  abstract name: string;
  apps = "orchestrator";
  lastOutput = "";
  target!: LocalTarget;
  pg!: PostgresInstance;
  work!: string;
  repos!: { orchestrator: string };
  appPort!: number;
  keyFile!: string;
  port = () => this.target.nginx.port;
  repo = () => this.repos.orchestrator;
  jwt = "peers-bench-jwt-secret-0123456789";

  async startParts(): Promise<void> {
    this.work = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-peers-"));
    fs.chmodSync(this.work, 0o755);
    this.target = await startLocalTarget();
    this.pg = await startPostgres();
    this.repos = await makeExampleRepos(path.join(this.work, "repos"));
    this.appPort = await freePort();
    this.keyFile = path.join(this.work, "id_ed25519");
    fs.writeFileSync(this.keyFile, this.target.ssh.privateKey, { mode: 0o600 });
    // nginx in front of the app's one port, as PM2's documentation shows it (upstream keepalive).
    fs.writeFileSync(
      path.join(this.target.nginx.sitesDir, "nostromo.conf"),
      `upstream orchestrator_app {
  server 127.0.0.1:${this.appPort};
  keepalive 64;
}
server {
  listen 127.0.0.1:${this.target.nginx.port};
  location / {
    proxy_pass http://orchestrator_app;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
  }
}
`,
    );
    must("nginx reload", await run("/bin/sh", ["-c", this.target.nginx.reloadCommand]));
  }

  /** PATH and PM2_HOME (and the CA settings) a shell on the target needs. */
  remoteEnv(): Record<string, string> {
    return { PATH: [...this.target.binPath, "/usr/local/bin", "/usr/bin", "/bin"].join(":"), ...this.target.env };
  }

  abstract setup(): Promise<void>;
  abstract deploy(ref: string): Promise<number>;
  abstract rollback(): Promise<number>;

  async stop(): Promise<void> {
    await this.target?.stop();
    await this.pg?.stop();
    if (this.work) fs.rmSync(this.work, { recursive: true, force: true });
  }
}

/** `pm2 deploy` with an ecosystem file as PM2's documentation has it. */
class Pm2Deploy extends Peer {
  name = "pm2 deploy";
  private deployPath = "";

  ecosystem(ref: string): string {
    const conf = {
      apps: [
        {
          name: "orchestrator",
          script: "src/server.js",
          exec_mode: "cluster",
          instances: 2,
          env_production: { NODE_ENV: "production", PORT: String(this.appPort), DATABASE_URL: this.pg.url, JWT_SECRET: this.jwt },
        },
      ],
      deploy: {
        production: {
          user: this.target.ssh.user,
          host: "127.0.0.1",
          ssh_options: [`Port=${this.target.ssh.port}`, "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"],
          key: this.keyFile,
          ref,
          repo: this.repos.orchestrator,
          path: this.deployPath,
          // Exported before post-deploy: the SSH session's PATH is minimal, and the migration
          // reads DATABASE_URL from the environment.
          env: { ...this.remoteEnv(), DATABASE_URL: this.pg.url, NODE_ENV: "production" },
          "post-deploy": "npm ci && npm run migrate:production && pm2 startOrReload ecosystem.config.js --env production",
        },
      },
    };
    return `module.exports = ${JSON.stringify(conf, null, 2)};\n`;
  }

  private pm2(args: string[]): Promise<Ran> {
    return run("pm2", ["deploy", "ecosystem.config.js", "production", ...args], {
      cwd: this.work,
      env: { ...process.env, PM2_HOME: this.target.pm2Home },
    });
  }

  async setup(): Promise<void> {
    await this.startParts();
    this.deployPath = path.join(this.work, "pm2-deploy", "production");
    fs.writeFileSync(path.join(this.work, "ecosystem.config.js"), this.ecosystem("v1.2.2"));
    must("pm2 deploy setup", await this.pm2(["setup"]));
    // The ecosystem file belongs in the repo; the example repos' tags have none, so it is put in
    // the clone beside them (untracked: `git reset --hard <ref>` keeps it).
    fs.writeFileSync(path.join(this.deployPath, "source", "ecosystem.config.js"), this.ecosystem("v1.2.2"));
    if ((await this.deploy("v1.2.2")) !== 0) throw new Error(`first deploy failed:\n${this.lastOutput.slice(-3000)}`);
  }

  async deploy(ref: string): Promise<number> {
    fs.writeFileSync(path.join(this.work, "ecosystem.config.js"), this.ecosystem(ref));
    const r = await this.pm2(["--force"]);
    this.lastOutput = r.out;
    return r.code;
  }

  async rollback(): Promise<number> {
    const r = await this.pm2(["revert", "1"]);
    this.lastOutput = r.out;
    return r.code;
  }
}

/** Runbook 000 as a script: in place, in one folder, one fork-mode PM2 process. */
class Runbook extends Peer {
  name = "runbook 000 (script)";
  private script = "";
  private deployed: string[] = [];

  async setup(): Promise<void> {
    await this.startParts();
    const dir = path.join(this.target.root, "orchestrator");
    const env = Object.entries(this.remoteEnv()).map(([k, v]) => `export ${k}=${q(v)}`);
    const dotEnv = [`PORT=${this.appPort}`, `DATABASE_URL=${this.pg.url}`, `JWT_SECRET=${this.jwt}`, "NODE_ENV=production"];
    this.script = path.join(this.work, "runbook-000.sh");
    fs.writeFileSync(
      this.script,
      `#!/bin/bash
# Runbook 000 (deploy of Orchestrator), in place on the server. Usage: deploy|rollback <ref>
set -euo pipefail
${env.join("\n")}
mode=$1 ref=$2
dir=${q(dir)}
if [ ! -d "$dir/.git" ]; then
  git clone -q ${q(this.repos.orchestrator)} "$dir"
  printf '%s\\n' ${dotEnv.map(q).join(" ")} > "$dir/.env"
fi
cd "$dir"
git fetch -q --tags origin
git checkout -q --detach "$ref"
npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
[ "$mode" = rollback ] || npm run migrate:production --silent
if pm2 describe orchestrator > /dev/null 2>&1; then
  pm2 restart orchestrator
else
  pm2 start dist/server.js --name orchestrator
fi
`,
    );
    if ((await this.deploy("v1.2.2")) !== 0) throw new Error(`first deploy failed:\n${this.lastOutput.slice(-3000)}`);
  }

  private async ssh(mode: string, ref: string): Promise<number> {
    const t = this.target.ssh;
    const r = await run(
      "ssh",
      [
        ...["-p", String(t.port), "-i", this.keyFile, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"],
        ...["-o", "LogLevel=ERROR", "-o", "BatchMode=yes", `${t.user}@${t.host}`, "bash", "-s", "--", mode, ref],
      ],
      { stdin: this.script },
    );
    this.lastOutput = r.out;
    return r.code;
  }

  async deploy(ref: string): Promise<number> {
    const code = await this.ssh("deploy", ref);
    if (code === 0) this.deployed.push(ref);
    return code;
  }

  async rollback(): Promise<number> {
    const previous = this.deployed[this.deployed.length - 2];
    const code = await this.ssh("rollback", previous);
    if (code === 0) this.deployed.push(previous);
    return code;
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

interface Figures {
  upgrade: Timed[];
  rollback: Timed[];
  noop: number[];
  bad?: Timed & { servedAfter: string };
  /** The release answering 500 to 20% of /api/crew (health and smoke pass): failures in AFTER_SAMPLE GETs after it. */
  flaky?: Timed & { failingAfter: number; watch: string };
  error?: string;
}

async function expectServed(tool: Tool, want: string, after: string): Promise<void> {
  await settled(tool.port(), want);
  const v = await versionAt(tool.port());
  if (v !== want) throw new Error(`${tool.name}: after ${after}, /health answers ${v}, not ${want}\n${tool.lastOutput.slice(-3000)}`);
}

function describe(t: Timed): string {
  const l = t.load;
  return (
    `${t.seconds.toFixed(1)} s, exit ${t.code}` +
    (t.toOld !== undefined ? `, old version after ${t.toOld.toFixed(2)} s` : "") +
    `; new-connection ${l.failed.fresh}/${l.sent.fresh} failed, keep-alive ${l.failed.keepAlive}/${l.sent.keepAlive} failed` +
    (l.samples.length ? ` (${l.samples.join("; ")})` : "")
  );
}

/**
 * A release that answers 500 to 20% of /api/crew while its health and smoke checks pass, deployed
 * under load on /api/crew over a healthy release that has the endpoint (deployed first, untimed).
 */
async function flakyRelease(tool: Tool): Promise<Figures["flaky"]> {
  const route = `"GET /api/crew": async () => [200, { crew: 7 }],`;
  const crew = await addVersion(tool.repo(), "1.2.5", "Crew endpoint", {
    "src/server.js": (s) => s.replace(`const routes = {`, `const routes = {\n  ${route}`),
  });
  // Set up with this deploy (untimed): a bake adds its access log to the nginx site, and that reload
  // must not fall in the flaky release's figures.
  const watch = tool.watchAfterSwitch?.() ?? "nothing";
  if ((await tool.deploy(crew)) !== 0) throw new Error(`deploy of ${crew} failed:\n${tool.lastOutput.slice(-3000)}`);
  await expectServed(tool, "1.2.5", `the deploy of ${crew}`);
  const flaky = await addVersion(
    tool.repo(),
    "1.2.6",
    "Flaky crew",
    {
      "src/server.js": (s) =>
        s
          .replace(route, `"GET /api/crew": async () => (++flaky % 5 === 0 ? [500, { error: "flaky" }] : [200, { crew: 7 }]),`)
          .replace(`const routes = {`, `let flaky = 0;\nconst routes = {`),
    },
    {},
    crew,
  );
  const t = await underLoad(tool.port(), () => tool.deploy(flaky), undefined, undefined, "/api/crew");
  let failingAfter = 0;
  for (let i = 0; i < AFTER_SAMPLE; i++) if ((await get(tool.port(), "/api/crew")).status !== 200) failingAfter++;
  log(
    `${tool.name}: flaky release ${flaky} (watch: ${watch}): ${describe(t)}; ${failingAfter} of ${AFTER_SAMPLE} GET /api/crew fail after it`,
  );
  return { ...t, failingAfter, watch };
}

async function measure(tool: Tool, bad: boolean): Promise<Figures> {
  const f: Figures = { upgrade: [], rollback: [], noop: [] };
  try {
    log(`${tool.name}: setup and first deploy of v1.2.2`);
    await tool.setup();
    await expectServed(tool, "1.2.2", "the first deploy");
    for (let i = 1; i <= CYCLES; i++) {
      const up = await underLoad(tool.port(), () => tool.deploy("v1.2.3"), "1.2.3");
      log(`${tool.name}: upgrade ${i}: ${describe(up)}`);
      if (up.code !== 0) throw new Error(`upgrade failed:\n${tool.lastOutput.slice(-3000)}`);
      await expectServed(tool, "1.2.3", "the upgrade");
      f.upgrade.push(up);
      const rb = await underLoad(tool.port(), () => tool.rollback(), "1.2.2", "1.2.2");
      log(`${tool.name}: rollback ${i}: ${describe(rb)}`);
      if (rb.code !== 0) throw new Error(`rollback failed:\n${tool.lastOutput.slice(-3000)}`);
      await expectServed(tool, "1.2.2", "the rollback");
      f.rollback.push(rb);
    }
    if ((await tool.deploy("v1.2.3")) !== 0) throw new Error(`deploy of v1.2.3 failed:\n${tool.lastOutput.slice(-3000)}`);
    for (let i = 1; i <= NOOP_RUNS; i++) {
      const start = Date.now();
      const code = await tool.deploy("v1.2.3");
      const seconds = (Date.now() - start) / 1000;
      const changes = /Resources:\n((?:[ \t]+\S.*\n?)+)/.exec(tool.lastOutput)?.[1].trim().replace(/\s+/g, " ");
      log(`${tool.name}: no-change deploy ${i}: ${seconds.toFixed(1)} s, exit ${code}${changes ? ` (pulumi: ${changes})` : ""}`);
      if (code !== 0) throw new Error(`no-change deploy failed:\n${tool.lastOutput.slice(-3000)}`);
      f.noop.push(seconds);
    }
    await expectServed(tool, "1.2.3", "the no-change deploys");
    if (bad) {
      const tag = await addVersion(tool.repo(), "1.2.4", "Broken health", {
        "src/server.js": (s) =>
          s.replace(
            `"GET /health": async () => [200, { status: "ok", version: VERSION }]`,
            `"GET /health": async () => [500, { status: "broken", version: VERSION }]`,
          ),
      });
      const t = await underLoad(tool.port(), () => tool.deploy(tag));
      const servedAfter = await versionAt(tool.port());
      f.bad = { ...t, servedAfter };
      log(`${tool.name}: bad release ${tag}: ${describe(t)}; /health answers ${servedAfter} after it`);
      f.flaky = await flakyRelease(tool);
    }
  } catch (err) {
    f.error = (err as Error).message;
    log(`${tool.name}: FAILED: ${f.error}`);
  } finally {
    await tool.stop().catch((e) => log(`${tool.name}: stop: ${(e as Error).message}`));
  }
  return f;
}

// ---------------------------------------------------------------------------------------------
// The table

function stats(xs: number[]): { min: number; med: number; max: number } | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return { min: s[0], med: s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2, max: s[s.length - 1] };
}

const num = (n: number, digits: number) => n.toFixed(digits);

function cell(xs: (number | undefined)[], digits: number, unit = ""): string {
  const s = stats(xs.filter((x): x is number => x !== undefined));
  if (!s) return "–";
  if (xs.length === 1) return `${num(s.med, digits)}${unit}`;
  return `${num(s.min, digits)} / ${num(s.med, digits)} / ${num(s.max, digits)}${unit}`;
}

function failCell(ts: Timed[], kind: Kind): string {
  if (ts.length === 0) return "–";
  const sent = stats(ts.map((t) => t.load.sent[kind]))!.med;
  return `${cell(
    ts.map((t) => t.load.failed[kind]),
    0,
  )} of ~${Math.round(sent)}${ts.length > 1 ? " per run" : ""}`;
}

function ratio(a: (number | undefined)[], b: (number | undefined)[]): string {
  const x = stats(a.filter((v): v is number => v !== undefined));
  const y = stats(b.filter((v): v is number => v !== undefined));
  if (!x || !y) return "–";
  if (y.med === 0) return x.med === 0 ? "– (both 0)" : "∞ (pm2 deploy 0)";
  return num(x.med / y.med, 2);
}

function table(tools: Tool[], figs: Figures[]): string {
  const [ours, pm2] = figs;
  // A trial run of some tools (--only) has no ratio unless it has both.
  const paired = tools[0] instanceof ThisProject && tools[1] instanceof Pm2Deploy;
  type Row = [string, (f: Figures) => string, ((f: Figures) => (number | undefined)[])?];
  const loadRows = (what: string, pick: (f: Figures) => Timed[]): Row[] => [
    [
      `${what}: failed requests, new connection (of sent)`,
      (f) => failCell(pick(f), "fresh"),
      (f) => [pick(f).reduce((n, t) => n + t.load.failed.fresh, 0)],
    ],
    [
      `${what}: failed requests, keep-alive (of sent)`,
      (f) => failCell(pick(f), "keepAlive"),
      (f) => [pick(f).reduce((n, t) => n + t.load.failed.keepAlive, 0)],
    ],
  ];
  /** A row of times: min / median / max in the cell, the values for the ratio. */
  const timeRow = (what: string, values: (f: Figures) => (number | undefined)[], digits: number): Row => [
    what,
    (f) => cell(values(f), digits),
    values,
  ];
  const bad = (f: Figures) => (f.bad ? [f.bad] : []);
  const rows: Row[] = [
    ["apps deployed", (f) => tools[figs.indexOf(f)].apps],
    timeRow("upgrade v1.2.2 → v1.2.3 (s)", (f) => f.upgrade.map((t) => t.seconds), 1),
    ...loadRows("upgrade", (f) => f.upgrade),
    timeRow("rollback to v1.2.2 (s)", (f) => f.rollback.map((t) => t.seconds), 1),
    timeRow("rollback: command start → /health answers 1.2.2 (s)", (f) => f.rollback.map((t) => t.toOld), 2),
    ...loadRows("rollback", (f) => f.rollback),
    timeRow("no-change deploy (s)", (f) => f.noop, 1),
    [
      "bad release (/health 500) (s)",
      (f) => (f.bad ? `${f.bad.seconds.toFixed(1)} (exit ${f.bad.code})` : "not run"),
      (f) => bad(f).map((t) => t.seconds),
    ],
    ...loadRows("bad release", bad).map(([l, c, v]): Row => [l, (f) => (f.bad ? c(f) : "not run"), v]),
    ["bad release: /health through nginx after it", (f) => (f.bad ? f.bad.servedAfter : "not run")],
    [
      "flaky release (500 to 20% of /api/crew) (s)",
      (f) => (f.flaky ? `${f.flaky.seconds.toFixed(1)} (exit ${f.flaky.code}; watch: ${f.flaky.watch})` : "not run"),
      (f) => (f.flaky ? [f.flaky.seconds] : []),
    ],
    ...loadRows("flaky release", (f) => (f.flaky ? [f.flaky] : [])).map(([l, c, v]): Row => [l, (f) => (f.flaky ? c(f) : "not run"), v]),
    [
      `flaky release: GET /api/crew failing after it (of ${AFTER_SAMPLE})`,
      (f) => (f.flaky ? String(f.flaky.failingAfter) : "not run"),
      (f) => (f.flaky ? [f.flaky.failingAfter] : []),
    ],
  ];
  const head = ["", ...tools.map((t) => t.name), "ratio this project / pm2 deploy (medians; failed requests: totals)"];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => " --- ").join("|")}|`];
  for (const [label, show, values] of rows) {
    const cells = figs.map((f) => (f.error && show(f) === "–" ? "failed" : show(f)));
    lines.push(`| ${[label, ...cells, values && paired ? ratio(values(ours), values(pm2)) : ""].join(" | ")} |`);
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const began = Date.now();
  const pm2Log = `/tmp/pm2-deploy-${os.userInfo().username}.log`;
  const pm2LogExisted = fs.existsSync(pm2Log);
  // --only=<name>,… (this, pm2, runbook) measures some of them (a trial run: no ratio then).
  const only = /^--only=(.*)$/.exec(process.argv[2] ?? "")?.[1].split(",");
  const all: [string, Tool][] = [
    ["this", new ThisProject()],
    ["pm2", new Pm2Deploy()],
    ["runbook", new Runbook()],
  ];
  const tools = all.filter(([k]) => !only || only.includes(k)).map(([, t]) => t);
  const figs: Figures[] = [];
  for (const tool of tools) figs.push(await measure(tool, !(tool instanceof Runbook)));
  if (!pm2LogExisted) fs.rmSync(pm2Log, { force: true }); // pm2 deploy's own log of its commands

  console.log(
    `\n## Peers (${CYCLES} upgrade ↔ rollback cycles, ${NOOP_RUNS} no-change deploys, 1 bad release, 1 flaky release; min / median / max)\n`,
  );
  console.log(table(tools, figs));
  console.log(
    `\nLoad during upgrades, rollbacks and the bad release: ${CLIENTS} clients with a new connection per request and ${CLIENTS} keep-alive ` +
      `clients, GET /health through nginx, ${PAUSE_MS} ms pause between one client's requests, from just before the command until it has ended and ` +
      `/health answers the new version (the bad release: until it has ended; the flaky release: GET /api/crew). A failed request: not HTTP 200, or an error. ` +
      `This project's stack deploys orchestrator and sevastopol (both v1.2.2 → v1.2.3); the peers deploy orchestrator only. ` +
      `pm2 deploy: cluster mode, 2 instances, startOrReload; the runbook: one fork-mode process, pm2 restart. ` +
      `The first cycle's upgrade builds the release and runs the migration; later ones deploy a commit deployed before.`,
  );
  for (const [i, f] of figs.entries()) if (f.error) console.log(`\n${tools[i].name} did not finish: ${f.error.split("\n")[0]}`);
  console.log(`\nbench took ${((Date.now() - began) / 60_000).toFixed(1)} min`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
