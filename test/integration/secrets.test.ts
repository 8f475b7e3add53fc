import * as assert from "assert";
import { spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import { DeployConfig, parseDeployConfig } from "../../lib/config";
import { restoreScript } from "../../lib/restore";
import { backupScript } from "../../lib/scripts";
import { PostgresInstance, startPostgres } from "../../local/postgres";
import { validRaw } from "../support/validConfig";

/** Every process's command line and environment (what `ps` and /proc show other users, and more). */
function processTexts(): string[] {
  const out: string[] = [];
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)) {
    for (const f of ["cmdline", "environ"]) {
      try {
        out.push(fs.readFileSync(`/proc/${pid}/${f}`, "latin1").replace(/\0/g, " "));
      } catch {
        // gone already, or not ours to read
      }
    }
  }
  return out;
}

interface Watched {
  code: number | null;
  stdout: string;
  stderr: string;
  samples: number;
  seen: string[]; // command lines of interest seen while it ran (pg_dump, pg_restore, node)
  leaks: string[]; // every process text that held the password
}

/**
 * Runs a built script with bash (the URL on stdin) while sampling every process's command line and
 * environment every few ms, until it exits (bounded: 60 s, 20000 samples).
 */
async function runWatched(text: string, stdin: string, password: string): Promise<Watched> {
  const child = spawn("bash", ["-c", text], { env: { ...process.env, NOSTROMO_LEASE: "unit/secrets" }, stdio: "pipe" });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  let code: number | null | undefined;
  const done = new Promise<void>((resolve) =>
    child.on("close", (c) => {
      code = c;
      resolve();
    }),
  );
  child.stdin.end(stdin);
  const seen = new Set<string>();
  const leaks = new Set<string>();
  let samples = 0;
  const until = Date.now() + 60_000;
  while (code === undefined && Date.now() < until && samples < 20_000) {
    for (const t of processTexts()) {
      if (t.includes(password)) leaks.add(t.slice(0, 300));
      if (/^(\S*\/)?(pg_dump|pg_restore|node) /.test(t)) seen.add(t.slice(0, 80));
    }
    samples++;
    await new Promise((r) => setTimeout(r, 3));
  }
  await done;
  return { code: code ?? null, stdout, stderr, samples, seen: [...seen], leaks: [...leaks] };
}

const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);

describe("integration: no database secret on any command line, backups private (issue 9)", () => {
  let root: string;
  let cfg: DeployConfig;
  let pg: PostgresInstance;
  let password: string;

  const count = async (sql: string): Promise<number> => {
    const db = new Client({ connectionString: pg.url });
    await db.connect();
    try {
      return Number((await db.query(sql)).rows[0].n);
    } finally {
      await db.end();
    }
  };

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-secrets-"));
    const raw = validRaw();
    raw.server.root = root;
    raw.backup = { keep: 2 };
    cfg = parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
    pg = await startPostgres();
    password = decodeURIComponent(new URL(pg.url).password);
    assert.ok(password.length >= 16);
    // Enough rows that dumping and restoring take a moment for the watcher to see them.
    const db = new Client({ connectionString: pg.url });
    await db.connect();
    await db.query(
      "create table cargo (id serial primary key, manifest text); insert into cargo (manifest) select repeat(md5(i::text), 20) from generate_series(1, 150000) i",
    );
    await db.end();
    // A backups folder as an older version left it: 0755.
    fs.mkdirSync(path.join(root, "backups"), { recursive: true, mode: 0o755 });
    fs.chmodSync(path.join(root, "backups"), 0o755);
  });
  after(async () => {
    await pg?.stop();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it("backup: the password is never on a command line (or in an environment) while pg_dump runs; the dump is 0600 in a 0700 folder and restores; URL parameters (sslmode) reach pg_dump", async () => {
    const r = await runWatched(backupScript(cfg, "secrets"), `${pg.url}?sslmode=disable\n`, password);
    assert.strictEqual(r.code, 0, r.stderr);
    assert.ok(
      r.seen.some((c) => /pg_dump /.test(c)),
      `the watcher never saw pg_dump running (${r.samples} samples): ${JSON.stringify(r.seen)}`,
    );
    assert.deepStrictEqual(r.leaks, [], "the database password was visible in a process's command line or environment");
    assert.ok(!`${r.stdout}${r.stderr}`.includes(password), "the password leaked into the output");
    const last = r.stdout.trim().split("\n").pop()!;
    const backupPath = JSON.parse(last.slice("nostromo-result ".length)).path;
    assert.strictEqual(mode(path.join(root, "backups")), "700");
    assert.strictEqual(mode(backupPath), "600");
    assert.strictEqual(mode(`${backupPath}.sha256`), "600");
    const list = spawnSync("pg_restore", ["--list", backupPath], { encoding: "utf8" });
    assert.strictEqual(list.status, 0, list.stderr);
    assert.match(list.stdout, /TABLE DATA public cargo/);
    // URL parameters reach pg_dump: sslmode=require against this server without SSL fails.
    const ssl = await runWatched(backupScript(cfg, "sslreq"), `${pg.url}?sslmode=require\n`, password);
    assert.notStrictEqual(ssl.code, 0);
    assert.match(ssl.stderr, /server does not support SSL/);
    assert.ok(!ssl.stderr.includes(password));
    assert.deepStrictEqual(ssl.leaks, []);
  });

  it("restore: the password is never on a command line while pg_dump (safety copy) and pg_restore run; the safety copy is 0600 in a 0700 folder; the data comes back", async () => {
    // Its own backup to restore (taken directly, so this test stands alone).
    const u = new URL(pg.url);
    const backupPath = path.join(root, "backups", "unit-fixture.dump");
    const dump = spawnSync(
      "pg_dump",
      ["--format=custom", "--no-owner", "-h", u.hostname, "-p", u.port, "-U", "postgres", "-f", backupPath, "nostromo"],
      {
        encoding: "utf8",
        env: { ...process.env, PGPASSWORD: password },
      },
    );
    assert.strictEqual(dump.status, 0, dump.stderr);
    await count("delete from cargo where id > 1000 returning 0 as n");
    assert.strictEqual(await count("select count(*) as n from cargo"), 1000);
    fs.chmodSync(path.join(root, "backups"), 0o755);
    // The backups above held the deploy lock as a deploy's steps do; its record step releases it.
    fs.rmSync(path.join(root, ".lock"), { recursive: true, force: true });
    const r = await runWatched(restoreScript(cfg, backupPath, sha256File(backupPath), "unit-before-restore"), `${pg.url}\n`, password);
    assert.strictEqual(r.code, 0, r.stderr);
    assert.ok(
      r.seen.some((c) => /pg_restore --no-owner/.test(c) || /psql -X/.test(c)),
      `the watcher never saw pg_restore running (${r.samples} samples): ${JSON.stringify(r.seen)}`,
    );
    assert.deepStrictEqual(r.leaks, [], "the database password was visible in a process's command line or environment");
    assert.ok(!`${r.stdout}${r.stderr}`.includes(password), "the password leaked into the output");
    const { safety, restored } = JSON.parse(r.stdout.trim().split("\n").pop()!);
    assert.strictEqual(restored, backupPath);
    assert.strictEqual(await count("select count(*) as n from cargo"), 150000);
    assert.strictEqual(mode(path.join(root, "backups")), "700");
    assert.strictEqual(mode(safety), "600");
    assert.strictEqual(mode(`${safety}.sha256`), "600");
    const list = spawnSync("pg_restore", ["--list", safety], { encoding: "utf8" });
    assert.strictEqual(list.status, 0, list.stderr);
    assert.match(list.stdout, /TABLE DATA public cargo/);
  });
});

function sha256File(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}
