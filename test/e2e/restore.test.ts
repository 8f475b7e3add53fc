import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import { REPO_ROOT, TempBackend, requirePulumi } from "../../local/backend";
import { addVersion, makeExampleRepos } from "../../local/exampleRepos";
import { readJournal } from "../../local/harness";
import { get } from "../../local/http";
import { PostgresInstance, startPostgres } from "../../local/postgres";
import { localConfig, localSecrets, outputOf, removeStackFile, setPlainConfig, writeStack, LocalStackOptions } from "../../local/stack";
import { LocalTarget, freeSlotPort, startLocalTarget } from "../../local/target";
import { runTool } from "../support/tool";

/** 003 commits its first half itself, then fails: a table and a column stay behind. */
const PARTIAL_MIGRATION = `-- 1.2.4: widgets, and an sku per item (commits part of itself, then fails)
create table widgets (id serial primary key, name text);
alter table items add column sku text;
commit;
select 1 / 0;
`;

/**
 * Issue 9, observation 1, as the operator meets it: `rollback --restore-db` after a failed
 * migration restores the backup taken just before that migration (not the last successful
 * deploy's), says before it acts what the restore discards, leaves exactly the dumped database
 * (the half-committed migration's table and column gone), checks the schema against the code that
 * serves; twice in a row, with rows written in between; and refuses when no migration ran.
 */
describe("e2e: rollback --restore-db restores the right backup", function () {
  const stack = `t-rs${process.pid}`;
  let backend: TempBackend;
  let target: LocalTarget;
  let pg: PostgresInstance;
  let opts: LocalStackOptions;
  let work: string;
  const stackFile = () => fs.readFileSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), "utf8");
  const up = () => backend.pulumiAsync(REPO_ROOT, ["up", "--yes", "--skip-preview", "--stack", stack]);
  const deploy = (orchestrator: string, sevastopol: string) => {
    setPlainConfig(stack, localConfig({ ...opts, refs: { orchestrator, sevastopol } }));
    return up();
  };
  const rollback = (...args: string[]) => runTool(backend, "rollback", ["--stack", stack, ...args]);
  const sql = async <T = Record<string, unknown>>(text: string): Promise<T[]> => {
    const db = new Client({ connectionString: pg.url });
    await db.connect();
    try {
      return (await db.query(text)).rows as T[];
    } finally {
      await db.end();
    }
  };
  const itemCount = async () => Number((await sql<{ n: string }>("select count(*) as n from items"))[0].n);
  const publicTables = async () =>
    (await sql<{ t: string }>("select tablename as t from pg_tables where schemaname = 'public' order by 1")).map((r) => r.t);
  const itemColumns = async () =>
    (
      await sql<{ c: string }>(
        "select column_name as c from information_schema.columns where table_name = 'items' order by ordinal_position",
      )
    ).map((r) => r.c);
  const migrations = async () => (await sql<{ name: string }>("select name from schema_migrations order by name")).map((r) => r.name);
  const served = async () => JSON.parse((await get(target.nginx.port, "/health")).body).version;
  const backupEvents = () => readJournal(target.root, true).filter((e) => e.event === "backup");

  before(async () => {
    requirePulumi();
    work = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-rs-"));
    fs.chmodSync(work, 0o755);
    backend = new TempBackend("restore");
    target = await startLocalTarget();
    pg = await startPostgres();
    const repos = await makeExampleRepos(path.join(work, "repos"));
    await addVersion(
      repos.orchestrator,
      "1.2.4",
      "Widgets (a migration that commits half of itself)",
      {},
      { "migrations/003_widgets.sql": PARTIAL_MIGRATION },
    );
    opts = {
      target,
      databaseUrl: pg.url,
      repos,
      refs: { orchestrator: "v1.2.2", sevastopol: "v1.2.2" },
      slotPorts: { blue: await freeSlotPort(), green: await freeSlotPort() },
    };
    writeStack(backend, stack, localConfig(opts), localSecrets(target.ssh.privateKey, pg.url));
  });

  after(async () => {
    if (backend) backend.pulumi(REPO_ROOT, ["stack", "rm", "--yes", "--force", "--stack", stack]);
    removeStackFile(stack);
    await target?.stop();
    await pg?.stop();
    backend?.remove();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("1. no migration since the target's deploy: --restore-db refuses, changing nothing", async () => {
    const first = await up();
    assert.strictEqual(first.code, 0, outputOf(first));
    const second = await deploy("v1.2.2", "v1.2.3"); // the frontend only: no backup, no migration
    assert.strictEqual(second.code, 0, outputOf(second));
    assert.strictEqual(backupEvents().length, 1, "update 2 took a backup although nothing migrated");
    const before = stackFile();
    const r = await rollback("--restore-db", "--yes");
    assert.strictEqual(r.code, 2, outputOf(r));
    assert.match(
      r.stderr,
      /^rollback: refused: no migration ran on the server since update 1 \(orchestrator@v1\.2\.2, sevastopol@v1\.2\.2\) was deployed at \S+: the database schema is the one its code serves, and there is nothing to restore\. To restore a backup anyway, name it with --backup PATH; nothing was changed$/m,
    );
    assert.strictEqual(stackFile(), before);
    assert.strictEqual(await served(), "1.2.2");
  });

  let rowsBeforeFailure = 0;
  it("2. v1.2.3 migrates (002); rows are written; v1.2.4's migration commits half of itself and fails; more rows are written", async () => {
    const r = await deploy("v1.2.3", "v1.2.3");
    assert.strictEqual(r.code, 0, outputOf(r));
    await sql("insert into items (tenant, name) select 'weyland', 'after-1.2.3-' || g from generate_series(1, 25) g");
    rowsBeforeFailure = await itemCount();
    const bad = await deploy("v1.2.4", "v1.2.3");
    assert.notStrictEqual(bad.code, 0);
    assert.match(outputOf(bad), /migration 003_widgets\.sql failed: division by zero/);
    assert.deepStrictEqual(await publicTables(), ["indicadores", "items", "schema_migrations", "users", "widgets"]);
    assert.ok((await itemColumns()).includes("sku"));
    assert.strictEqual(await served(), "1.2.3");
    await sql("insert into items (tenant, name) select 'weyland', 'after-failure-' || g from generate_series(1, 4) g");
    assert.strictEqual(await itemCount(), rowsBeforeFailure + 4);
  });

  it("3. rollback --restore-db: the backup taken just before the failed migration; what it discards is said first; exactly that database after; the schema matches the code", async () => {
    const failedBackup = backupEvents().at(-1);
    assert.ok(failedBackup.to.orchestrator, JSON.stringify(failedBackup));
    const r = await rollback("--restore-db", "--yes");
    assert.strictEqual(r.code, 0, outputOf(r));
    console.log(
      `      ${r.stdout
        .split("\n")
        .filter((l) =>
          /^\s+(database:|taken|it undoes|everything|tables|rows| {2}public|a safety)|^schema check|^database restored/.test(l),
        )
        .join("\n      ")}`,
    );
    const out = r.stdout;
    assert.ok(out.includes(`database: will restore ${failedBackup.path} (`), out);
    assert.match(out, /^ {4}taken \S+ by update 4 \(lease t-rs\d+\/\S+\) before migrating orchestrator [0-9a-f]{12} → [0-9a-f]{12}$/m);
    assert.match(out, /it undoes the migrations run since update 3 was deployed: orchestrator@[0-9a-f]{12} \(failed, /);
    assert.match(out, /tables created since the backup, dropped by the restore: public\.widgets/);
    assert.match(out, / public\.items: 4 inserted, 0 updated, 0 deleted/);
    // Said before the code rollback began.
    assert.ok(out.indexOf("tables created since the backup") < out.indexOf("$ pulumi up"), out);
    assert.match(
      out,
      /^schema check: orchestrator: the database's migrations match the serving code \(migrations match this release: 001_init\.sql, 002_add_admin_indexes\.sql\)$/m,
    );
    assert.ok(out.includes(`database restored from ${failedBackup.path}`), out);

    assert.strictEqual(await served(), "1.2.3");
    assert.strictEqual(await itemCount(), rowsBeforeFailure, "not the rows of the backup taken just before the failed migration");
    assert.deepStrictEqual(await publicTables(), ["indicadores", "items", "schema_migrations", "users"]);
    assert.ok(!(await itemColumns()).includes("sku"), "the half-committed column survived the restore");
    assert.deepStrictEqual(await migrations(), ["001_init.sql", "002_add_admin_indexes.sql"]);
  });

  it("4. again, with rows written in between: back to update 2's code and the backup taken before 002", async () => {
    await sql("insert into items (tenant, name) select 'weyland', 'between-' || g from generate_series(1, 3) g");
    const r = await rollback("--restore-db", "--yes");
    assert.strictEqual(r.code, 0, outputOf(r));
    assert.match(r.stdout, /^ {2}to {4}update 2: orchestrator@v1\.2\.2, sevastopol@v1\.2\.3$/m);
    assert.match(r.stdout, /it undoes the migrations run since update 2 was deployed: orchestrator@[0-9a-f]{12} \(succeeded, /);
    assert.match(
      r.stdout,
      /^schema check: orchestrator: the database's migrations match the serving code \(migrations match this release: 001_init\.sql\)$/m,
    );
    assert.strictEqual(await served(), "1.2.2");
    assert.deepStrictEqual(await migrations(), ["001_init.sql"]);
    assert.strictEqual(await sql("select 1 from items where name like 'after-1.2.3-%' or name like 'between-%'").then((x) => x.length), 0);
  });

  it("5. --backup PATH is checked against its sha256: a changed file is refused, changing nothing", async () => {
    const some = backupEvents()[0].path as string;
    const copy = path.join(target.root, "backups", "copied.dump");
    fs.copyFileSync(some, copy);
    fs.writeFileSync(`${copy}.sha256`, `${"0".repeat(64)}  copied.dump\n`);
    const before = stackFile();
    const r = await rollback("--to", "3", "--restore-db", "--backup", copy, "--yes");
    assert.strictEqual(r.code, 2, outputOf(r));
    assert.match(
      r.stderr,
      /refused: \S+copied\.dump has sha256 [0-9a-f]{64}, not the recorded 0{64}: it changed since it was taken; nothing was changed/,
    );
    const relative = await rollback("--to", "3", "--restore-db", "--backup", "copied.dump", "--yes");
    assert.match(relative.stderr, /--backup must be the backup's absolute path on the server, got 'copied\.dump'/);
    assert.strictEqual(stackFile(), before);
    assert.strictEqual(await served(), "1.2.2");
  });
});
