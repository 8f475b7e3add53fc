import * as assert from "assert";
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import { DeployConfig, parseDeployConfig } from "../../lib/config";
import { DatabaseSurvey, describeDiscard, parseJournal, pickRestoreBackup, restoreScript, restoreSurveyScript } from "../../lib/restore";
import { backupScript, migrateScript } from "../../lib/scripts";
import { PostgresInstance, startPostgres } from "../../local/postgres";
import { validRaw } from "../support/validConfig";

const SHA_V1 = "1".repeat(40);
const SHA_V2 = "2".repeat(40);

/** Runs a built script with bash under `lease`, as the Command resource does on a server. */
function run(text: string, stdin = "", lease = "unit/lease-1"): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync("bash", ["-c", text], {
    input: stdin,
    encoding: "utf8",
    timeout: 120_000,
    env: { ...process.env, NOSTROMO_LEASE: lease },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Issue 9, observation 1, below the tools: backups recorded with the update that took them, the
 * migrations after them named, and a restore that leaves exactly the dumped database (a migration
 * that commits part of itself leaves nothing behind), under the deploy lock, all or nothing.
 */
describe("integration: database restore against a real PostgreSQL", function () {
  let root: string;
  let cfg: DeployConfig;
  let pg: PostgresInstance;
  let db: Client;
  const q = async (sql: string) => (await db.query(sql)).rows;
  /** Writes on a connection of its own: a backend's exit flushes its statistics counters at once. */
  const write = async (sql: string) => {
    const c = new Client({ connectionString: pg.url });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  const count = async (table: string) => Number((await q(`select count(*) as n from ${table}`))[0].n);
  const columns = async (table: string) =>
    (await q(`select column_name from information_schema.columns where table_name = '${table}' order by ordinal_position`)).map(
      (r) => r.column_name,
    );
  const tables = async () => (await q("select tablename from pg_tables where schemaname = 'public' order by 1")).map((r) => r.tablename);
  /** The schema as pg_dump prints it: equal texts mean an equal schema. */
  const schemaText = () => {
    const u = new URL(pg.url);
    const r = spawnSync("pg_dump", ["--schema-only", "--no-owner", "-h", u.hostname, "-p", u.port, "-U", u.username, u.pathname.slice(1)], {
      encoding: "utf8",
      env: { ...process.env, PGPASSWORD: decodeURIComponent(u.password) },
    });
    assert.strictEqual(r.status, 0, r.stderr);
    return r.stdout.replace(/^\\(un)?restrict .*$/gm, "");
  };
  const journal = () =>
    parseJournal(fs.existsSync(path.join(root, "deploys.jsonl")) ? fs.readFileSync(path.join(root, "deploys.jsonl"), "utf8") : "");
  const deployLine = (ref: string, sha: string) =>
    fs.appendFileSync(
      path.join(root, "deploys.jsonl"),
      JSON.stringify({ stack: "unit", result: "succeeded", apps: { orchestrator: { ref, sha } } }) + "\n",
    );
  const lastResult = (stdout: string) =>
    JSON.parse(
      stdout
        .trim()
        .split("\n")
        .pop()!
        .replace(/^nostromo-result /, ""),
    );

  let v1Schema: string;
  let backup: { path: string; sha256: string };

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-restore-"));
    const raw = validRaw();
    raw.server.root = root;
    cfg = parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
    pg = await startPostgres();
    db = new Client({ connectionString: pg.url });
    await db.connect();
    await write(
      "create table items (id serial primary key, name text); insert into items (name) select 'v1-' || g from generate_series(1, 4) g",
    );
    // v1 is deployed and serving.
    fs.mkdirSync(path.join(root, "releases", "orchestrator", SHA_V1), { recursive: true });
    fs.mkdirSync(path.join(root, "current"), { recursive: true });
    fs.symlinkSync(path.join(root, "releases", "orchestrator", SHA_V1), path.join(root, "current", "orchestrator"));
    deployLine("v1", SHA_V1);
    v1Schema = schemaText();
  });
  after(async () => {
    await db?.end();
    await pg?.stop();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it("the backup step records its update, the SHAs before and after, and the tables' counters; the migration step names the backup it ran after", async () => {
    // A backup an older version left readable by others.
    fs.mkdirSync(path.join(root, "backups"), { recursive: true });
    fs.writeFileSync(path.join(root, "backups", "unit-old.dump"), "old", { mode: 0o644 });
    fs.chmodSync(path.join(root, "backups", "unit-old.dump"), 0o644);
    const r = run(backupScript(cfg, SHA_V2.slice(0, 12), { orchestrator: SHA_V2 }), `${pg.url}\n`, "unit/update-2");
    assert.strictEqual(r.code, 0, r.stderr);
    backup = lastResult(r.stdout);
    assert.strictEqual((fs.statSync(path.join(root, "backups", "unit-old.dump")).mode & 0o777).toString(8), "600");
    // A migration that commits part of itself, then fails: a table and a column stay behind.
    const release = path.join(root, "releases", "orchestrator", SHA_V2);
    fs.mkdirSync(release, { recursive: true });
    fs.writeFileSync(path.join(release, ".env"), `DATABASE_URL='${pg.url}'\n`);
    fs.writeFileSync(
      path.join(release, "partial.sql"),
      "begin; create table widgets (id int); alter table items add column sku text; commit; select 1/0;\n",
    );
    const app = { ...cfg.apps[0], migrate: `psql -X -v ON_ERROR_STOP=1 "$DATABASE_URL" -f partial.sql` };
    const m = run(migrateScript(cfg, app, SHA_V2, backup.path), "", "unit/update-2");
    assert.strictEqual(m.code, 1, m.stdout);
    assert.match(m.stderr, /division by zero/);
    assert.deepStrictEqual(await tables(), ["items", "widgets"]);
    assert.ok((await columns("items")).includes("sku"));
    await write("insert into items (name) select 'later-' || g from generate_series(1, 25) g");

    const events = journal().filter((l) => l.event);
    assert.deepStrictEqual(
      events.map((e) => [e.event, e.lease]),
      [
        ["backup", "unit/update-2"],
        ["migration", "unit/update-2"],
      ],
    );
    const [b, mig] = events as any[];
    assert.strictEqual(b.path, backup.path);
    assert.strictEqual(b.sha256, backup.sha256);
    assert.deepStrictEqual(b.from, { orchestrator: SHA_V1 });
    assert.deepStrictEqual(b.to, { orchestrator: SHA_V2 });
    assert.deepStrictEqual(b.stats["public.items"].slice(0, 1), [4]);
    assert.deepStrictEqual(
      { app: mig.app, sha: mig.sha, backup: mig.backup, status: mig.status },
      {
        app: "orchestrator",
        sha: SHA_V2,
        backup: backup.path,
        status: "failed",
      },
    );
    // The failed update keeps the deploy lock; the next update (the rollback's) releases it.
    assert.strictEqual(fs.readFileSync(path.join(root, ".lock", "lease"), "utf8").trim(), "unit/update-2");
    fs.rmSync(path.join(root, ".lock"), { recursive: true });
    // The pick: back to v1, the backup the failed migration ran after.
    assert.strictEqual(pickRestoreBackup(journal(), { orchestrator: "v1" }, "update 1").backup.path, backup.path);
  });

  it("the survey says what a restore discards: the tables created since and the rows written since", async () => {
    await new Promise((r) => setTimeout(r, 500)); // the writer's counters reach the shared statistics as it exits
    const r = run(restoreSurveyScript(cfg, backup.path), `${pg.url}\n`);
    assert.strictEqual(r.code, 0, r.stderr);
    const survey = JSON.parse(r.stdout.trim()) as DatabaseSurvey;
    assert.strictEqual(survey.sha256, backup.sha256);
    assert.strictEqual(survey.recorded, backup.sha256);
    assert.deepStrictEqual(survey.backupTables, ["public.items"]);
    assert.deepStrictEqual(survey.tables, ["public.items", "public.widgets"]);
    const b = journal().find((l) => l.event === "backup") as any;
    const lines = describeDiscard(b.time, b.stats, survey, new Date());
    assert.match(lines[0], /^everything written to the database since the backup was taken, \S+ \(0 minutes ago\), is discarded$/);
    assert.ok(lines.includes("tables created since the backup, dropped by the restore: public.widgets"), lines.join("\n"));
    assert.ok(
      lines.some((l) => /^ {2}public\.items: 25 inserted, 0 updated, 0 deleted \(29 rows now, 4 in the backup\)$/.test(l)),
      lines.join("\n"),
    );
  });

  it("refused without a change: a wrong sha256, a deploy holding the lock", async () => {
    const wrong = run(restoreScript(cfg, backup.path, "0".repeat(64)), `${pg.url}\n`);
    assert.strictEqual(wrong.code, 3);
    assert.match(wrong.stderr, /has sha256 [0-9a-f]{64}, not the recorded 0{64}; nothing was changed/);
    fs.mkdirSync(path.join(root, ".lock"));
    fs.writeFileSync(path.join(root, ".lock", "stack"), "unit\n");
    fs.writeFileSync(path.join(root, ".lock", "lease"), "unit/update-9\n");
    try {
      const locked = run(restoreScript(cfg, backup.path, backup.sha256), `${pg.url}\n`);
      assert.strictEqual(locked.code, 3);
      assert.match(locked.stderr, /the deploy lock is held by stack 'unit' \(update unit\/update-9, .*nothing was changed/);
    } finally {
      fs.rmSync(path.join(root, ".lock"), { recursive: true });
    }
    assert.strictEqual(await count("items"), 29);
    assert.deepStrictEqual(await tables(), ["items", "widgets"]);
  });

  it("a dump that fails half way through the load changes nothing (one transaction, COMMIT only after the whole dump)", async () => {
    // Its grants come after its tables and rows: a role that is gone by then fails the load late.
    const broken = path.join(root, "backups", "unit-broken.dump");
    await write("create role ghost; grant select on items to ghost");
    const u = new URL(pg.url);
    const dump = spawnSync(
      "pg_dump",
      ["--format=custom", "--no-owner", "-f", broken, "-h", u.hostname, "-p", u.port, "-U", u.username, u.pathname.slice(1)],
      {
        encoding: "utf8",
        env: { ...process.env, PGPASSWORD: decodeURIComponent(u.password) },
      },
    );
    assert.strictEqual(dump.status, 0, dump.stderr);
    await write("revoke select on items from ghost; drop role ghost");
    const sum = crypto.createHash("sha256").update(fs.readFileSync(broken)).digest("hex");
    const r = run(restoreScript(cfg, broken, sum), `${pg.url}\n`);
    assert.notStrictEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /safety backup: /, "the broken dump was refused before the load began: this test tests nothing");
    assert.match(r.stderr, /role "ghost" does not exist/);
    assert.strictEqual(await count("items"), 29);
    assert.deepStrictEqual(await tables(), ["items", "widgets"]);
    assert.ok((await columns("items")).includes("sku"));
    assert.ok(!fs.existsSync(path.join(root, ".lock")), "the restore left the deploy lock behind");
  });

  it("the restore leaves exactly the dumped database, twice in a row: the partial migration's table and column are gone, the rows are the backup's", async () => {
    for (const round of [1, 2]) {
      const r = run(restoreScript(cfg, backup.path, backup.sha256, `round${round}`), `${pg.url}\n`);
      assert.strictEqual(r.code, 0, r.stderr);
      const info = JSON.parse(r.stdout.trim().split("\n").pop()!);
      assert.strictEqual(info.restored, backup.path);
      assert.ok(fs.statSync(info.safety).size > 0);
      assert.deepStrictEqual(await tables(), ["items"], `round ${round}`);
      assert.deepStrictEqual(await columns("items"), ["id", "name"], `round ${round}`);
      assert.strictEqual(await count("items"), 4, `round ${round}`);
      assert.strictEqual(schemaText(), v1Schema, `round ${round}: the schema differs from the dumped one`);
      assert.ok(!fs.existsSync(path.join(root, ".lock")), "the restore left the deploy lock behind");
      // Written between the two restores: the second restore discards it again.
      await write("insert into items (name) values ('between')");
    }
    const restores = journal().filter((l) => l.event === "restore");
    assert.strictEqual(restores.length, 2);
    assert.strictEqual((restores[0] as any).backup, backup.path);
  });

  it("pickRestoreBackup refuses when no migration ran since the target's deploy, naming --backup", () => {
    deployLine("v1", SHA_V1);
    assert.throws(
      () => pickRestoreBackup(journal(), { orchestrator: "v1" }, "update 3"),
      /no migration ran on the server since update 3 \(orchestrator@v1\) was deployed.*--backup PATH/,
    );
    assert.throws(
      () => pickRestoreBackup(journal(), { orchestrator: "v0" }, "update 0"),
      /the server's journal has no deploy of update 0 \(orchestrator@v0\)/,
    );
  });
});
