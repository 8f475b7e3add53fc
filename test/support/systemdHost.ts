// A real systemd host for the systemd path of the deploy: a Debian bookworm root (debootstrap,
// built once and cached as a tarball), imported into a dockerd of our own (Debian's docker.io,
// started by hand with every path in a temporary folder) and run with systemd as PID 1, on the
// host's network: its sshd and nginx listen on free loopback ports. Node 22 is this machine's
// binary and npm a cached npm@11, both mounted read-only; PostgreSQL stays on this machine.
// Run `eval "$(scripts/install-systemd-host-deps.sh)"` first (docker.io, debootstrap, npm).
//
// Keys: a fresh ed25519 host key and client key per run, made here with ssh-keygen and mounted
// read-only into the container; the image carries no host key, so the one to pin is always ours.
import { ChildProcess, spawn, spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { accepts, freePort } from "../../local/target";
import { nginxReloadScript } from "../../local/nginxReload";

export interface SystemdHost {
  /** hostKey is the "ssh-ed25519 AAAA..." line of the container's sshd host key, to pin. */
  ssh: { host: "127.0.0.1"; port: number; user: string; privateKey: string; hostKey: string };
  /** Deploy root inside the container (/opt/nostromo). */
  root: string;
  /** Dirs a remote script must prepend to PATH (node 22, npm, PostgreSQL client tools). */
  binPath: string[];
  /** Env a remote script must set (CA settings for the npm registry). */
  env: Record<string, string>;
  /** The container's nginx (a systemd service); reloadCommand returns once the new config serves. */
  nginx: { port: number; sitesDir: string; reloadCommand: string; testCommand: string };
  /** Runs `cmd` with bash inside the container (docker exec); throws with its output on failure. */
  exec(cmd: string): string;
  /** Removes the container, stops dockerd, removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

export interface SystemdHostOptions {
  /** Host dirs mounted read-only at the same path (e.g. the example repos, cloned by the deploy). */
  shareDirs?: string[];
}

const ROOT = "/opt/nostromo";
const SUITE = "bookworm";
const PG_MAJOR = "15"; // bookworm's; pg_dump must be >= the server (this machine's, also bookworm)
const PACKAGES = [
  "systemd",
  "systemd-sysv",
  "dbus",
  "openssh-server",
  "git",
  "curl",
  "ca-certificates",
  "tar",
  "util-linux",
  "procps",
  "nginx",
  `postgresql-client-${PG_MAJOR}`,
  // Python apps (kind python): a virtualenv per release (python3 -m venv, pip from ensurepip).
  "python3",
  "python3-venv",
];

/** nginx reload through systemd, returning once the new workers serve. */
const RELOAD_SCRIPT = nginxReloadScript({
  test: "/usr/sbin/nginx -t -q",
  reload: "systemctl reload nginx.service",
  pidFile: "/run/nginx.pid",
  logHint: "journalctl -u nginx",
});

/** Shell run in the fresh root (chroot) to make it a quiet, predictable test host. */
const CUSTOMIZE = `set -eu
# No host key in the image: each run mounts its own, the one the test pins.
rm -f /etc/ssh/ssh_host_*
# Nothing listens on a fixed port of the (shared) host network: nginx starts once configured.
systemctl disable nginx.service
rm -f /etc/nginx/sites-enabled/default
printf '%s\\n' '# The deploy writes its site here (nginx.sitesDir).' 'include ${ROOT}/nginx/*.conf;' > /etc/nginx/conf.d/nostromo.conf
# Timers and consoles a test host does not need.
systemctl mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer \\
  e2scrub_reap.service systemd-pstore.service getty@tty1.service console-getty.service serial-getty@.service
mkdir -p /opt/node22/bin /opt/npm/node_modules /root/.npm
rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/*
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cacheDir(): string {
  return path.join(process.env.NOSTROMO_CACHE ?? path.join(os.homedir(), ".cache", "nostromo"), "systemd-host");
}

function run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 60_000,
    input: opts.input,
    env: opts.env,
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${r.error?.message ?? `exit ${r.status}`}):\n${(r.stderr ?? "").slice(-3000)}${(r.stdout ?? "").slice(-2000)}`,
    );
  }
  return r.stdout;
}

/**
 * The Debian mirror this machine's apt uses (sources.list or deb822 .sources), for debootstrap:
 * it is the one these machines can reach.
 */
export function aptMirror(): string {
  const files = ["/etc/apt/sources.list"];
  const dir = "/etc/apt/sources.list.d";
  if (fs.existsSync(dir)) for (const f of fs.readdirSync(dir).sort()) if (/\.(list|sources)$/.test(f)) files.push(path.join(dir, f));
  for (const file of files) {
    if (!fs.existsSync(file)) continue;
    const text = fs.readFileSync(file, "utf8");
    if (file.endsWith(".sources")) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (k: string) => new RegExp(`^${k}:\\s*(.+)$`, "mi").exec(stanza)?.[1].trim().split(/\s+/) ?? [];
        if (!field("Types").includes("deb") || !field("Suites").includes(SUITE)) continue;
        const uri = field("URIs").find((u) => /^https?:\/\//.test(u));
        if (uri) return uri;
      }
    } else {
      for (const line of text.split("\n")) {
        const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(https?:\/\/\S+)\s+(\S+)/.exec(line);
        if (m && m[2] === SUITE) return m[1];
      }
    }
  }
  throw new Error(`systemd host: no apt source for Debian ${SUITE} in /etc/apt/sources.list(.d): debootstrap needs a reachable mirror`);
}

/** Process `pid` exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The root filesystem tarball, built once per recipe (packages + customisation) and cached:
 * debootstrap --variant=minbase from this machine's mirror, customised in a chroot, tarred.
 * Concurrent builders wait for the one holding the build lock.
 */
async function rootfsTarball(log: (m: string) => void): Promise<{ file: string; key: string; builtSeconds?: number }> {
  const key = createHash("sha256")
    .update(JSON.stringify([SUITE, PACKAGES, CUSTOMIZE, RELOAD_SCRIPT]))
    .digest("hex")
    .slice(0, 16);
  const dir = cacheDir();
  const file = path.join(dir, `rootfs-${key}.tar`);
  if (fs.existsSync(file)) return { file, key };
  fs.mkdirSync(dir, { recursive: true });
  const lock = path.join(dir, `build-${key}.lock`);
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, "pid"), String(process.pid));
      break;
    } catch {
      let holder = 0;
      try {
        holder = Number(fs.readFileSync(path.join(lock, "pid"), "utf8")) || 0;
      } catch {
        // pid not written yet, or the lock just went away: look again.
      }
      if (holder && !alive(holder)) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (fs.existsSync(file)) return { file, key };
      await sleep(2000);
    }
  }
  const build = path.join(dir, `build-${key}-${process.pid}`);
  const started = Date.now();
  try {
    if (fs.existsSync(file)) return { file, key };
    if (!fs.existsSync("/usr/sbin/debootstrap")) throw new Error(`no debootstrap: run scripts/install-systemd-host-deps.sh first`);
    const mirror = aptMirror();
    log(`building the systemd host's Debian root (debootstrap ${SUITE} from ${mirror}, about a minute)`);
    fs.rmSync(build, { recursive: true, force: true });
    run("/usr/sbin/debootstrap", ["--variant=minbase", `--include=${PACKAGES.join(",")}`, SUITE, path.join(build, "rootfs"), mirror], {
      timeoutMs: 15 * 60_000,
    });
    const rootfs = path.join(build, "rootfs");
    fs.writeFileSync(path.join(rootfs, "usr/local/sbin/nostromo-nginx-reload"), RELOAD_SCRIPT, { mode: 0o755 });
    run("chroot", [rootfs, "/bin/sh", "-c", CUSTOMIZE], { timeoutMs: 120_000 });
    const partial = `${file}.partial-${process.pid}`;
    run("tar", ["--numeric-owner", "-C", rootfs, "-cf", partial, "."], { timeoutMs: 10 * 60_000 });
    fs.renameSync(partial, file);
    // Older recipes' tarballs are dead weight now.
    for (const f of fs.readdirSync(dir))
      if (/^rootfs-[0-9a-f]{16}\.tar$/.test(f) && f !== path.basename(file)) fs.rmSync(path.join(dir, f), { force: true });
    return { file, key, builtSeconds: (Date.now() - started) / 1000 };
  } finally {
    fs.rmSync(build, { recursive: true, force: true });
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** The docker CLI matching Debian's dockerd (API 1.41) when present. */
function dockerCli(): string {
  return fs.existsSync("/usr/bin/docker") ? "/usr/bin/docker" : "docker";
}

function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Mount points under `dir`, deepest first (what a killed dockerd may leave behind). */
function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1])
    .filter((m) => m && (m === dir || m.startsWith(dir + "/")))
    .sort((a, b) => b.length - a.length);
}

export async function startSystemdHost(opts: SystemdHostOptions = {}): Promise<SystemdHost> {
  if (process.getuid?.() !== 0) throw new Error("systemd host: dockerd and debootstrap need root");
  const nodeMajor = Number(process.versions.node.split(".")[0]);
  if (nodeMajor !== 22) throw new Error(`systemd host: mounts this node into the host as node 22, but it is ${process.version}`);
  const npmModules = path.join(cacheDir(), "npm", "node_modules");
  for (const [what, p] of [
    ["dockerd", "/usr/sbin/dockerd"],
    ["npm (cached)", path.join(npmModules, "npm", "bin", "npm-cli.js")],
  ]) {
    if (!fs.existsSync(p)) throw new Error(`systemd host: no ${what} at ${p}: run scripts/install-systemd-host-deps.sh first`);
  }
  const log = (m: string) => console.log(`      [systemd host] ${m}`);
  const timings: Record<string, number> = {};
  let t0 = Date.now();
  const image = await rootfsTarball(log);
  timings.rootfs = (Date.now() - t0) / 1000;

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-sdhost-"));
  const sock = path.join(tmp, "docker.sock");
  const docker = dockerCli();
  const dockerEnv = { ...process.env, DOCKER_HOST: `unix://${sock}` };
  const d = (args: string[], timeoutMs = 120_000, input?: string) => run(docker, args, { timeoutMs, env: dockerEnv, input });
  let dockerd: ChildProcess | undefined;
  let container = "";
  let stopped = false;

  const removeContainer = () => {
    if (container) spawnSync(docker, ["rm", "-f", container], { env: dockerEnv, timeout: 60_000, stdio: "ignore" });
    container = "";
  };
  // A crashed or interrupted run must not leave a container holding loopback ports.
  const onExit = () => {
    removeContainer();
    if (dockerd && dockerd.exitCode === null) dockerd.kill("SIGTERM");
  };
  process.on("exit", onExit);

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.removeListener("exit", onExit);
    removeContainer();
    if (dockerd && dockerd.exitCode === null && dockerd.signalCode === null) {
      const exited = new Promise<void>((r) => dockerd!.once("exit", () => r()));
      dockerd.kill("SIGTERM");
      const t = setTimeout(() => dockerd!.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(t);
    }
    for (const m of mountsUnder(tmp)) spawnSync("umount", ["-l", m], { stdio: "ignore" });
    fs.rmSync(tmp, { recursive: true, force: true });
  };

  let part = "dockerd";
  const logFile = path.join(tmp, "dockerd.log");
  try {
    // --- dockerd of our own: socket, data, state and pid file in the temp dir; no bridge and no
    // iptables (containers use the host's network), so nothing of the machine's is touched.
    t0 = Date.now();
    const fd = fs.openSync(logFile, "a");
    dockerd = spawn(
      "/usr/sbin/dockerd",
      [
        "--host",
        `unix://${sock}`,
        "--data-root",
        path.join(tmp, "data"),
        "--exec-root",
        path.join(tmp, "x"),
        "--pidfile",
        path.join(tmp, "docker.pid"),
        "--bridge",
        "none",
        "--iptables=false",
        "--ip-masq=false",
        "--log-level",
        "warn",
      ],
      { stdio: ["ignore", fd, fd] },
    );
    fs.closeSync(fd);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (dockerd.exitCode !== null) throw new Error(`dockerd exited with code ${dockerd.exitCode}`);
      if (fs.existsSync(sock) && spawnSync(docker, ["version"], { env: dockerEnv, timeout: 10_000, stdio: "ignore" }).status === 0) break;
      if (Date.now() > deadline) throw new Error("dockerd not ready after 60 s");
      await sleep(200);
    }
    timings.dockerd = (Date.now() - t0) / 1000;

    part = "docker import";
    t0 = Date.now();
    const tag = `nostromo-systemd-host:${image.key}`;
    d(["import", image.file, tag], 10 * 60_000);
    timings.import = (Date.now() - t0) / 1000;

    // --- keys and sshd config, mounted read-only.
    part = "keys";
    const sshDir = path.join(tmp, "ssh");
    fs.mkdirSync(sshDir, { mode: 0o700 });
    const hostKeyFile = path.join(sshDir, "ssh_host_ed25519_key");
    const clientKeyFile = path.join(tmp, "id_ed25519");
    run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "nostromo-systemd-host", "-f", hostKeyFile]);
    run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "nostromo-systemd-client", "-f", clientKeyFile]);
    fs.copyFileSync(clientKeyFile + ".pub", path.join(sshDir, "authorized_keys"));
    const sshPort = await freePort();
    const ngxPort = await freePort();
    const dropIn = path.join(tmp, "sshd-nostromo.conf");
    // Debian's sshd_config includes sshd_config.d/*.conf first, and the first value wins.
    fs.writeFileSync(
      dropIn,
      [
        `Port ${sshPort}`,
        `ListenAddress 127.0.0.1`,
        `HostKey /etc/nostromo-ssh/ssh_host_ed25519_key`,
        `AuthorizedKeysFile /etc/nostromo-ssh/authorized_keys`,
        `PermitRootLogin prohibit-password`,
        `PubkeyAuthentication yes`,
        `PasswordAuthentication no`,
        `KbdInteractiveAuthentication no`,
        // No PAM: pam_loginuid cannot write loginuid in an unprivileged container.
        `UsePAM no`,
        `StrictModes no`,
        `MaxStartups 100`,
        `MaxSessions 100`,
        ``,
      ].join("\n"),
    );

    // --- the container: systemd as PID 1, no --privileged (refused here, and not needed).
    part = "container";
    t0 = Date.now();
    const caVars = ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO"];
    const env: Record<string, string> = {};
    const mounts: string[] = [
      "-v",
      "/sys/fs/cgroup:/sys/fs/cgroup:ro",
      "-v",
      `${process.execPath}:/opt/node22/bin/node:ro`,
      "-v",
      `${npmModules}:/opt/npm/node_modules:ro`,
      "-v",
      `${sshDir}:/etc/nostromo-ssh:ro`,
      "-v",
      `${dropIn}:/etc/ssh/sshd_config.d/nostromo.conf:ro`,
    ];
    // This machine's CA bundle (it may hold a TLS-intercepting proxy's CA) for npm and curl.
    const bundle = "/etc/ssl/certs/ca-certificates.crt";
    if (fs.existsSync(bundle)) mounts.push("-v", `${bundle}:${bundle}:ro`);
    for (const k of caVars) {
      const v = process.env[k];
      if (!v || !fs.existsSync(v)) continue;
      env[k] = v;
      if (fs.statSync(v).isFile() && v !== bundle) mounts.push("-v", `${v}:${v}:ro`);
    }
    // npm's download cache survives runs: the second deploy's `npm ci` is fast.
    const npmCache = path.join(cacheDir(), "npm-cache");
    fs.mkdirSync(npmCache, { recursive: true });
    mounts.push("-v", `${npmCache}:/root/.npm`);
    for (const dir of opts.shareDirs ?? []) mounts.push("-v", `${dir}:${dir}:ro`);
    container = d([
      "run",
      "-d",
      "--name",
      `nostromo-systemd-${process.pid}-${path.basename(tmp).slice(-6)}`,
      "-e",
      "container=docker",
      "--network",
      "host",
      "--tmpfs",
      "/run",
      "--tmpfs",
      "/run/lock",
      "--tmpfs",
      "/tmp",
      ...mounts,
      tag,
      "/lib/systemd/systemd",
    ]).trim();

    const exec = (cmd: string): string => d(["exec", container, "/bin/bash", "-c", cmd], 300_000);

    part = "systemd";
    // Boot finished: "running", or "degraded" when some unit failed (shown in the error). Until
    // systemd's bus is up, systemctl fails at once ("Failed to connect to bus"): ask again.
    const bootDeadline = Date.now() + 90_000;
    for (;;) {
      const state = spawnSync(docker, ["exec", container, "systemctl", "is-system-running", "--wait"], {
        env: dockerEnv,
        encoding: "utf8",
        timeout: 90_000,
      });
      if (/^(running|degraded)/.test(state.stdout ?? "")) break;
      if (Date.now() > bootDeadline) {
        const failed = spawnSync(docker, ["exec", container, "systemctl", "--failed", "--no-pager"], {
          env: dockerEnv,
          encoding: "utf8",
        }).stdout;
        throw new Error(`systemd did not finish booting in 90 s: ${state.stdout}${state.stderr}\n${failed}`);
      }
      await sleep(200);
    }

    part = "sshd";
    const sshDeadline = Date.now() + 30_000;
    while (!(await accepts(sshPort))) {
      if (Date.now() > sshDeadline)
        throw new Error(`sshd not listening on 127.0.0.1:${sshPort}:\n${exec("systemctl status ssh.service --no-pager -l || true")}`);
      await sleep(200);
    }

    part = "nginx";
    // A placeholder site until the first deploy writes its own into sitesDir.
    const sitesDir = `${ROOT}/nginx`;
    exec(
      [
        `mkdir -p ${sitesDir}`,
        `printf '%s\\n' 'server {' '  listen 127.0.0.1:${ngxPort};' '  default_type text/plain;' '  location / { return 503 "no release yet\\n"; }' '}' > ${sitesDir}/nostromo.conf`,
        `systemctl enable --now nginx.service`,
      ].join(" && "),
    );
    const ngxDeadline = Date.now() + 30_000;
    while (!(await accepts(ngxPort))) {
      if (Date.now() > ngxDeadline)
        throw new Error(`nginx not listening on 127.0.0.1:${ngxPort}:\n${exec("systemctl status nginx.service --no-pager -l || true")}`);
      await sleep(200);
    }
    timings.boot = (Date.now() - t0) / 1000;
    log(`up in ${JSON.stringify(timings)} s${image.builtSeconds ? ` (root built in ${image.builtSeconds} s)` : " (cached root)"}`);

    const [keyType, keyBlob] = fs
      .readFileSync(hostKeyFile + ".pub", "utf8")
      .trim()
      .split(/\s+/);
    return {
      ssh: {
        host: "127.0.0.1",
        port: sshPort,
        user: "root",
        privateKey: fs.readFileSync(clientKeyFile, "utf8"),
        hostKey: `${keyType} ${keyBlob}`,
      },
      root: ROOT,
      binPath: ["/opt/node22/bin", "/opt/npm/node_modules/.bin", `/usr/lib/postgresql/${PG_MAJOR}/bin`],
      env,
      nginx: { port: ngxPort, sitesDir, reloadCommand: "/usr/local/sbin/nostromo-nginx-reload", testCommand: "/usr/sbin/nginx -t -q" },
      exec,
      stop,
    };
  } catch (e) {
    const logTail = part === "dockerd" || part === "docker import" ? `\n--- dockerd.log (tail) ---\n${tail(logFile)}` : "";
    await stop();
    throw new Error(`systemd host: ${part} failed: ${(e as Error).message}${logTail}`, { cause: e });
  }
}
