// The local deploy target: a real sshd, nginx and PM2 on loopback, in a temporary folder.
// Run `eval "$(scripts/install-target-deps.sh)"` first: it installs them and puts pm2 and the
// PostgreSQL tools on PATH, where this file looks for them.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { nginxReloadScript } from "./nginxReload";

export interface LocalTarget {
  /** Deploy root (created empty), e.g. <tmp>/opt/nostromo. */
  root: string;
  /** hostKey is the "ssh-ed25519 AAAA..." line of the server's host key, to pin. */
  ssh: { host: string; port: number; user: string; privateKey: string; hostKey: string };
  /** The address sshd and nginx listen on: 127.0.0.1, or the host's own in its network namespace (local/fleet.ts). */
  address: string;
  /** reloadCommand reloads gracefully and returns once new connections get the new config. */
  nginx: { port: number; confPath: string; reloadCommand: string; testCommand: string; sitesDir: string; errorLog: string };
  pm2Home: string;
  /** Dirs a remote script must prepend to PATH: sshd gives sessions a fixed, minimal PATH. */
  binPath: string[];
  /** Env a remote script must set (PM2_HOME). */
  env: Record<string, string>;
  /** Every host key sshd has, by ssh-keygen type (ed25519, and those asked for with hostKeyTypes), to pin. */
  hostKeys: Record<string, string>;
  /** Kills the pm2 daemon, nginx and sshd, then removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

const WAIT_MS = 10_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`; // shell single-quote

/** A loopback port that was free a moment ago (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A free port for an app's slot, below the kernel's ephemeral range (32768 and up): a slot binds
 * its port minutes after it was picked, and a port from the ephemeral range may by then be a
 * listener the engine's gRPC servers took with port 0 (seen: gunicorn's green slot refused with
 * "Address already in use", curl getting HTTP/2 from it).
 */
export async function freeSlotPort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const free = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once("error", () => resolve(false));
      srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error("no free slot port in 20000-31999 after 50 tries");
}

/** True when something accepts a TCP connection on host:port (127.0.0.1 by default). */
export function accepts(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.setTimeout(1000);
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
    s.once("timeout", () => (s.destroy(), resolve(false)));
  });
}

function httpAnswers(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    // agent: false, so no keep-alive socket outlives this check.
    const req = http.get({ host, port, path: "/", agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.once("error", () => resolve(false));
    req.once("timeout", () => (req.destroy(), resolve(false)));
  });
}

/** Polls `ready` until true, failing early when `child` exits. */
async function waitFor(what: string, ready: () => Promise<boolean>, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode}`);
    if (await ready()) return;
    await sleep(100);
  }
  throw new Error(`${what} not ready after ${WAIT_MS / 1000} s`);
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once("exit", () => (clearTimeout(t), resolve(true)));
  });
}

async function signalUntilExit(child: ChildProcess, signals: NodeJS.Signals[]): Promise<void> {
  for (const sig of signals) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(sig);
    if (await waitExit(child, 5_000)) return;
  }
}

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): void {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 30_000, env });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.error?.message ?? ""}${r.stderr}${r.stdout}`);
}

/** A daemon as our child (in network namespace `netns` when given), its stdout/stderr appended to `log`. */
function spawnLogged(cmd: string, args: string[], log: string, netns?: string): ChildProcess {
  const fd = fs.openSync(log, "a");
  try {
    const child = netns
      ? spawn("ip", ["netns", "exec", netns, cmd, ...args], { stdio: ["ignore", fd, fd] })
      : spawn(cmd, args, { stdio: ["ignore", fd, fd] });
    child.on("error", (e) => fs.appendFileSync(log, `spawn ${cmd}: ${e.message}\n`));
    return child;
  } finally {
    fs.closeSync(fd);
  }
}

function tail(file: string, lines = 20): string {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** First dir on PATH holding every one of `tools`. */
function findOnPath(tools: string[]): string | undefined {
  for (const d of (process.env.PATH ?? "").split(path.delimiter).filter(Boolean)) {
    if (tools.every((t) => fs.existsSync(path.join(d, t)))) return d;
  }
  return undefined;
}

/**
 * `hostKeyTypes`: host keys sshd has besides its ed25519 one (a Debian server has rsa and ecdsa
 * too); `ssh.hostKey` stays the ed25519 one. `netns` and `address`: sshd and nginx run in that
 * network namespace (made by local/fleet.ts) on its address, ports 22 and 80, and everything a
 * deploy starts over SSH (PM2, the slots) runs there too, with the host's own loopback.
 */
export async function startLocalTarget(
  opts: { root?: string; hostKeyTypes?: ("rsa" | "ecdsa")[]; netns?: string; address?: string; clientKeyFile?: string } = {},
): Promise<LocalTarget> {
  const address = opts.address ?? "127.0.0.1";
  const pm2Dir = findOnPath(["pm2"]);
  const pgDir = findOnPath(["initdb", "pg_ctl", "pg_dump", "pg_restore"]);
  for (const [what, dir] of [
    ["pm2", pm2Dir],
    ["PostgreSQL tools", pgDir],
    ["sshd", "/usr/sbin/sshd"],
    ["nginx", "/usr/sbin/nginx"],
  ]) {
    if (!dir || !fs.existsSync(dir)) throw new Error(`local target: no ${what}: run eval "$(scripts/install-target-deps.sh)" first`);
  }
  // /usr/sbin for nginx; node is the one running these tests (>= 22).
  const binPath = [pm2Dir!, path.dirname(process.execPath), pgDir!, "/usr/sbin"];

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-target-"));
  // 0755 like a real /opt: nginx workers (www-data) must reach files the deploy puts under root.
  fs.chmodSync(tmp, 0o755);
  const root = opts.root ?? path.join(tmp, "opt", "nostromo");
  const sitesDir = path.join(root, "nginx");
  const pm2Home = path.join(tmp, "pm2");
  const sshDir = path.join(tmp, "sshd");
  const ngxDir = path.join(tmp, "nginx");
  for (const d of [root, sitesDir, pm2Home, sshDir, path.join(ngxDir, "logs")]) fs.mkdirSync(d, { recursive: true });
  // sshd sessions start with a bare environment: carry over the CA settings this machine needs to
  // reach the package registry (a TLS-intercepting proxy), or `npm ci` on the target stalls.
  const caVars = ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO"];
  const env: Record<string, string> = { PM2_HOME: pm2Home };
  for (const k of caVars) if (process.env[k]) env[k] = process.env[k]!;

  let sshd: ChildProcess | undefined;
  let nginx: ChildProcess | undefined;
  const ngxArgs = ["-p", ngxDir + "/", "-c", path.join(ngxDir, "nginx.conf"), "-e", path.join(ngxDir, "logs", "error.log")];
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // Only when a daemon was started (pm2.pid): no need to wake pm2 for nothing.
    if (fs.existsSync(path.join(pm2Home, "pm2.pid"))) {
      spawnSync(path.join(pm2Dir!, "pm2"), ["kill"], {
        env: { ...process.env, ...env, PATH: [path.dirname(process.execPath), process.env.PATH].join(":") },
        timeout: 30_000,
        stdio: "ignore",
      });
    }
    // Signals to the master we spawned, not `nginx -s quit`: that parses the config first and
    // sends nothing when a deploy left a broken site file. QUIT is graceful; on TERM the master
    // kills its workers itself; KILL last, as it would orphan them.
    if (nginx) await signalUntilExit(nginx, ["SIGQUIT", "SIGTERM", "SIGKILL"]);
    if (sshd) await signalUntilExit(sshd, ["SIGTERM", "SIGKILL"]);
    fs.rmSync(tmp, { recursive: true, force: true });
  };

  let part = "setup";
  let log = "";
  try {
    // --- sshd: own config, keys and port; the current user logs in with the client key.
    part = "sshd";
    log = path.join(sshDir, "sshd.log");
    const hostKeyFile = path.join(sshDir, "ssh_host_ed25519_key");
    // A fleet's hosts take one deploy key (`clientKeyFile`), as a fleet's servers do.
    const clientKeyFile = opts.clientKeyFile ?? path.join(sshDir, "id_ed25519");
    run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "nostromo-local-target", "-f", hostKeyFile]);
    if (!opts.clientKeyFile) run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "nostromo-local-client", "-f", clientKeyFile]);
    fs.copyFileSync(clientKeyFile + ".pub", path.join(sshDir, "authorized_keys"));
    const extraKeyFiles = (opts.hostKeyTypes ?? []).map((t) => {
      const file = path.join(sshDir, `ssh_host_${t}_key`);
      run("ssh-keygen", ["-q", "-t", t, "-N", "", "-C", "nostromo-local-target", "-f", file]);
      return file;
    });
    const sshPort = opts.netns ? 22 : await freePort();
    const sshdConfig = path.join(sshDir, "sshd_config");
    fs.writeFileSync(
      sshdConfig,
      [
        `ListenAddress ${address}`,
        `Port ${sshPort}`,
        `HostKey ${hostKeyFile}`,
        ...extraKeyFiles.map((f) => `HostKey ${f}`),
        `AuthorizedKeysFile ${path.join(sshDir, "authorized_keys")}`,
        `PidFile ${path.join(sshDir, "sshd.pid")}`,
        `PubkeyAuthentication yes`,
        `PasswordAuthentication no`,
        `KbdInteractiveAuthentication no`,
        `PermitRootLogin prohibit-password`,
        `StrictModes no`, // the temp dir's owner/modes are not what sshd expects of ~/.ssh
        `UsePAM no`,
        // A deploy opens many connections at once; the default (10:30:100) drops some.
        `MaxStartups 100`,
        `MaxSessions 100`,
        `Subsystem sftp internal-sftp`,
        `LogLevel VERBOSE`,
        ``,
      ].join("\n"),
    );
    fs.mkdirSync("/run/sshd", { recursive: true }); // privilege separation dir, checked at start
    // Absolute path: sshd re-executes itself per connection.
    sshd = spawnLogged("/usr/sbin/sshd", ["-D", "-e", "-f", sshdConfig], log, opts.netns);
    await waitFor("sshd", () => accepts(sshPort, address), sshd);
    const [keyType, keyBlob] = fs
      .readFileSync(hostKeyFile + ".pub", "utf8")
      .trim()
      .split(/\s+/);
    const pubLine = (file: string) =>
      fs
        .readFileSync(file + ".pub", "utf8")
        .trim()
        .split(/\s+/)
        .slice(0, 2)
        .join(" ");
    const hostKeys: Record<string, string> = { ed25519: `${keyType} ${keyBlob}` };
    (opts.hostKeyTypes ?? []).forEach((t, i) => (hostKeys[t] = pubLine(extraKeyFiles[i])));

    // --- nginx: own prefix; every path it writes (pid, logs, temp) inside the temp dir.
    part = "nginx";
    log = path.join(ngxDir, "logs", "error.log");
    const ngxPort = opts.netns ? 80 : await freePort();
    const confPath = path.join(ngxDir, "nginx.conf");
    const isRoot = process.getuid?.() === 0;
    fs.writeFileSync(
      confPath,
      `# The local target's nginx (local/target.ts).
${isRoot ? "user www-data;\n" : "" /* the compiled-in default group "nobody" is missing on Debian */}daemon off;
worker_processes 1;
pid ${ngxDir}/nginx.pid;
lock_file ${ngxDir}/nginx.lock;
error_log ${ngxDir}/logs/error.log info;
events { worker_connections 256; }
http {
  ${fs.existsSync("/etc/nginx/mime.types") ? "include /etc/nginx/mime.types;" : ""}
  default_type application/octet-stream;
  access_log ${ngxDir}/logs/access.log;
  # Debian compiles in /var/lib/nginx/* temp paths: keep ours in the temp dir.
  client_body_temp_path ${ngxDir}/client_body;
  proxy_temp_path ${ngxDir}/proxy;
  fastcgi_temp_path ${ngxDir}/fastcgi;
  uwsgi_temp_path ${ngxDir}/uwsgi;
  scgi_temp_path ${ngxDir}/scgi;
  include ${sitesDir}/*.conf;
}
`,
    );
    // Placeholder until the first deploy overwrites it: nginx needs a server to listen. A fleet
    // host's on every address of its own (the deploy's site listens so too: local/stack.ts).
    fs.writeFileSync(
      path.join(sitesDir, "nostromo.conf"),
      `server {\n  listen ${opts.netns ? "0.0.0.0" : address}:${ngxPort};\n  default_type text/plain;\n  location / { return 503 "no release yet\\n"; }\n}\n`,
    );
    const reloadScript = path.join(ngxDir, "reload.sh");
    const ngx = `/usr/sbin/nginx ${ngxArgs.map(q).join(" ")}`;
    fs.writeFileSync(
      reloadScript,
      nginxReloadScript({
        test: `${ngx} -t -q`,
        reload: `${ngx} -s reload`,
        pidFile: q(ngxDir + "/nginx.pid"),
        logHint: `see ${ngxDir}/logs/error.log`,
      }),
      { mode: 0o755 },
    );
    // Foreground child (daemon off): its exit is seen at once, and stop() can wait for it.
    nginx = spawnLogged("/usr/sbin/nginx", ngxArgs, log, opts.netns);
    await waitFor("nginx", () => httpAnswers(ngxPort, address), nginx);

    return {
      root,
      address,
      ssh: {
        host: address,
        port: sshPort,
        user: os.userInfo().username,
        privateKey: fs.readFileSync(clientKeyFile, "utf8"),
        hostKey: `${keyType} ${keyBlob}`,
      },
      nginx: {
        port: ngxPort,
        confPath,
        reloadCommand: `/bin/sh ${q(reloadScript)}`,
        testCommand: `${ngx} -t -q`,
        sitesDir,
        errorLog: path.join(ngxDir, "logs", "error.log"),
      },
      hostKeys,
      pm2Home,
      binPath,
      env,
      stop,
    };
  } catch (e) {
    const logTail = tail(log); // read before stop() removes the temp dir
    await stop();
    throw new Error(`local target: ${part} failed to start: ${(e as Error).message}\n--- ${path.basename(log)} (tail) ---\n${logTail}`, {
      cause: e,
    });
  }
}
