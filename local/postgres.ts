// A throwaway PostgreSQL cluster (Debian's server binaries: initdb + pg_ctl) on a loopback port,
// the database of a local deploy.
import { spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";

export interface PostgresInstance {
  /** postgres://postgres:<password>@127.0.0.1:<port>/nostromo */
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** A loopback TCP port nobody listens on right now (tiny race accepted). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Directory holding initdb/pg_ctl/postgres (the /usr/local/bin entries are symlinks into it). */
function pgBinDir(): string {
  if (process.env.PG_BINDIR) return process.env.PG_BINDIR;
  for (const candidate of ["/usr/local/bin/initdb", "/usr/bin/initdb"]) {
    if (fs.existsSync(candidate)) return path.dirname(fs.realpathSync(candidate));
  }
  const versions = fs.existsSync("/usr/lib/postgresql") ? fs.readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a)) : [];
  if (versions.length) return `/usr/lib/postgresql/${versions[0]}/bin`;
  throw new Error("PostgreSQL server binaries (initdb) not found; set PG_BINDIR");
}

interface RunAs {
  user: string | null; // null: already unprivileged, run directly
  uid: number;
  gid: number;
}

/**
 * initdb and postgres refuse to run as root, so as root we borrow the distro's
 * `postgres` account, or create a system user `nostromo-pg` when there is none.
 */
function unprivilegedUser(): RunAs {
  if (process.getuid?.() !== 0) return { user: null, uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 };
  const ids = (name: string) => {
    const u = spawnSync("id", ["-u", name], { encoding: "utf8" });
    const g = spawnSync("id", ["-g", name], { encoding: "utf8" });
    return u.status === 0 && g.status === 0 ? { uid: Number(u.stdout), gid: Number(g.stdout) } : null;
  };
  for (const name of ["postgres", "nostromo-pg"]) {
    const found = ids(name);
    if (found) return { user: name, ...found };
  }
  const add = spawnSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "nostromo-pg"], { encoding: "utf8" });
  const created = ids("nostromo-pg");
  if (!created) throw new Error(`useradd nostromo-pg failed: ${add.stderr}`);
  return { user: "nostromo-pg", ...created };
}

function asUser(runAs: RunAs, cmd: string, args: string[]): [string, string[]] {
  return runAs.user ? ["runuser", ["-u", runAs.user, "--", cmd, ...args]] : [cmd, args];
}

function run(runAs: RunAs, cwd: string, cmd: string, args: string[], input?: string): Promise<string> {
  const [file, argv] = asUser(runAs, cmd, args);
  return new Promise((resolve, reject) => {
    // cwd is the cluster's own dir: the unprivileged user may not be able to enter ours.
    const child = spawn(file, argv, { cwd, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}\n${out}`))));
    child.stdin.end(input ?? "");
  });
}

/**
 * Starts a throwaway PostgreSQL cluster on 127.0.0.1 with database `nostromo`.
 * TCP logins need the generated password of user `postgres` (scram-sha-256);
 * the unix socket lives in the cluster's private dir (trust, not reachable by others).
 * `reachableFrom`: also on that address, for logins from that subnet (fleet hosts: local/fleet.ts);
 * with `netns`, the server runs in that network namespace (a fleet's database host, whose address
 * `address` is), and 127.0.0.1 in the URL is that host's loopback.
 */
export async function startPostgres(reachableFrom?: { address: string; subnet: string; netns?: string }): Promise<PostgresInstance> {
  const bin = pgBinDir();
  const runAs = unprivilegedUser();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-pg-"));
  const data = path.join(dir, "data");
  const password = crypto.randomBytes(12).toString("hex");
  const pwfile = path.join(dir, "pwfile");
  fs.writeFileSync(pwfile, password + "\n", { mode: 0o600 });
  if (runAs.user) {
    fs.chownSync(dir, runAs.uid, runAs.gid);
    fs.chownSync(pwfile, runAs.uid, runAs.gid);
  }

  let started = false;
  const stop = async (): Promise<void> => {
    process.removeListener("exit", stopOnExit);
    if (started) {
      started = false;
      await run(runAs, dir, path.join(bin, "pg_ctl"), ["stop", "-D", data, "-m", "fast", "-w"]).catch(() => undefined);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  // A crashed or interrupted test run must not leave a postgres behind.
  const stopOnExit = () => {
    if (started) {
      const [file, argv] = asUser(runAs, path.join(bin, "pg_ctl"), ["stop", "-D", data, "-m", "immediate", "-w"]);
      spawnSync(file, argv, { cwd: dir });
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.on("exit", stopOnExit);

  try {
    await run(runAs, dir, path.join(bin, "initdb"), [
      "-D",
      data,
      "-U",
      "postgres",
      "--pwfile",
      pwfile,
      "--auth-host=scram-sha-256",
      "--auth-local=trust",
      "-E",
      "UTF8",
      "--locale=C",
    ]);
    fs.rmSync(pwfile);
    if (reachableFrom) fs.appendFileSync(path.join(data, "pg_hba.conf"), `host all all ${reachableFrom.subnet} scram-sha-256\n`);
    // Create the database in single-user mode: needs no client tools (psql/createdb).
    await run(runAs, dir, path.join(bin, "postgres"), ["--single", "-D", data, "postgres"], "create database nostromo;\n");

    // The port can be taken between freePort() and bind; retry a couple of times (a database
    // host's own loopback has all its ports free: the same numbers do).
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      // Appended settings win over earlier ones; the file stays owned by the cluster user.
      fs.appendFileSync(
        path.join(data, "postgresql.conf"),
        `\nlisten_addresses = '127.0.0.1${reachableFrom ? `,${reachableFrom.address}` : ""}'\nport = ${port}\nunix_socket_directories = '${dir}'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n`,
      );
      try {
        const start = ["start", "-D", data, "-l", path.join(dir, "postgres.log"), "-w", "-t", "60"];
        await (reachableFrom?.netns
          ? run({ user: null, uid: 0, gid: 0 }, dir, "ip", [
              "netns",
              "exec",
              reachableFrom.netns,
              ...asUser(runAs, path.join(bin, "pg_ctl"), start).flat(),
            ])
          : run(runAs, dir, path.join(bin, "pg_ctl"), start));
      } catch (err) {
        if (attempt >= 3) throw err;
        continue;
      }
      started = true;
      return { url: `postgres://postgres:${password}@127.0.0.1:${port}/nostromo`, port, stop };
    }
  } catch (err) {
    const log = path.join(dir, "postgres.log");
    const tail = fs.existsSync(log) ? `\n--- postgres.log ---\n${fs.readFileSync(log, "utf8").slice(-4000)}` : "";
    await stop();
    throw new Error(`${(err as Error).message}${tail}`, { cause: err });
  }
}
