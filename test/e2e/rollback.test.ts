import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import { AddressInfo } from "net";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import { REPO_ROOT, TempBackend, requirePulumi } from "../../local/backend";
import { makeExampleRepos } from "../../local/exampleRepos";
import { localConfig, localSecrets, outputOf, removeStackFile, setPlainConfig, writeStack, LocalStackOptions } from "../../local/stack";
import { readJournal } from "../../local/harness";
import { get } from "../../local/http";
import { runTool } from "../support/tool";
import { PostgresInstance, startPostgres } from "../../local/postgres";
import { LocalTarget, freeSlotPort, startLocalTarget } from "../../local/target";

const journal = (target: LocalTarget) => readJournal(target.root);
/** The pid of PM2 process `name` on the target (0: not running). */
function pm2Pid(target: LocalTarget, name: string): number {
  const out = execFileSync("pm2", ["jlist"], { encoding: "utf8", env: { ...process.env, ...target.env } });
  return (JSON.parse(out) as { name: string; pid: number }[]).find((p) => p.name === name)?.pid ?? 0;
}

/** An incoming-webhook stand-in on 127.0.0.1 (the rollback tool posts its notification here). */
async function webhook() {
  const received: { method: string; contentType: string; body: any }[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      received.push({ method: req.method ?? "", contentType: String(req.headers["content-type"]), body: JSON.parse(body) });
      res.end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/rollback`,
    received,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe("e2e: rollback, history and metrics tools on the Automation API", function () {
  const stack = `t-rb${process.pid}`;
  let backend: TempBackend;
  let target: LocalTarget;
  let pg: PostgresInstance;
  let opts: LocalStackOptions;
  let work: string;
  let hook: Awaited<ReturnType<typeof webhook>>;
  const timings: Record<string, number> = {};
  const refs = (v: string) => ({ orchestrator: v, sevastopol: v });

  // Not spawnSync: the webhook receiver in this process must answer the deploy's notifications.
  const up = async (label: string) => {
    const start = Date.now();
    const r = await backend.pulumiAsync(REPO_ROOT, ["up", "--yes", "--skip-preview", "--stack", stack]);
    timings[label] = (Date.now() - start) / 1000;
    return r;
  };

  const tool = (name: string, args: string[]) => runTool(backend, name, args);

  /** Number of updates in the stack's history (a file backend records no update numbers). */
  const historyLength = () =>
    JSON.parse(backend.pulumiOk(REPO_ROOT, ["stack", "history", "--json", "--stack", stack]).stdout).length as number;
  const appliedMigrations = async (db: Client) =>
    (await db.query("select name from schema_migrations order by name")).rows.map((x: { name: string }) => x.name);
  const outputs = () => JSON.parse(backend.pulumiOk(REPO_ROOT, ["stack", "output", "--json", "--stack", stack]).stdout);

  before(async () => {
    requirePulumi();
    work = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-rb-"));
    fs.chmodSync(work, 0o755);
    backend = new TempBackend("rollback");
    target = await startLocalTarget();
    pg = await startPostgres();
    hook = await webhook();
    const repos = await makeExampleRepos(path.join(work, "repos"));
    opts = {
      target,
      databaseUrl: pg.url,
      repos,
      refs: refs("v1.2.2"),
      slotPorts: { blue: await freeSlotPort(), green: await freeSlotPort() },
    };
    writeStack(backend, stack, localConfig(opts), {
      ...localSecrets(target.ssh.privateKey, pg.url),
      notifyWebhookUrl: hook.url,
    });
  });

  after(async () => {
    console.log(`      timings (s): ${JSON.stringify(timings)}`);
    if (backend) backend.pulumi(REPO_ROOT, ["stack", "rm", "--yes", "--force", "--stack", stack]);
    removeStackFile(stack);
    await hook?.close();
    await target?.stop();
    await pg?.stop();
    backend?.remove();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("1. deploys v1.2.2; a rollback with a single deploy in history is refused and changes nothing", async () => {
    const r = await up("deploy v1.2.2");
    assert.strictEqual(r.code, 0, outputOf(r));
    const stackFile = fs.readFileSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), "utf8");
    const rb = await tool("rollback", ["--stack", stack, "--yes"]);
    assert.strictEqual(rb.code, 2, outputOf(rb));
    assert.match(
      rb.stderr,
      /^rollback: refused: nothing to roll back to: no successful update in the stack's history \(1 deploy\) deployed app refs other than the current ones \(orchestrator@v1\.2\.2, sevastopol@v1\.2\.2\)$/m,
    );
    assert.strictEqual(historyLength(), 1);
    assert.strictEqual(fs.readFileSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), "utf8"), stackFile);
  });

  it("   bad arguments are named", async () => {
    const cases: [string[], RegExp][] = [
      [["--stack", stack, "--to", "abc"], /--to must be a stack update number \(a whole number from 1\), got 'abc'/],
      [["--stack", stack, "--bogus"], /Unknown option '--bogus'/],
      [["--yes"], /--stack is required/],
    ];
    for (const [args, re] of cases) {
      const r = await tool("rollback", args);
      assert.strictEqual(r.code, 2, outputOf(r));
      assert.match(r.stderr, re);
    }
  });

  it("   a pulumi CLI at another version than the pinned one is refused before anything changes", async () => {
    // The tools take the CLI's version as pinned and check it beside their first reads.
    const real = execFileSync("sh", ["-c", "command -v pulumi"], { env: backend.env, encoding: "utf8" }).trim();
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-cli-"));
    fs.writeFileSync(path.join(bin, "pulumi"), `#!/bin/sh\n[ "$1" = version ] && { echo v3.200.0; exit 0; }\nexec ${real} "$@"\n`, {
      mode: 0o755,
    });
    const stackFile = fs.readFileSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), "utf8");
    try {
      const env = { ...backend.env, PATH: `${bin}:${backend.env.PATH}` };
      const r = await runTool({ env }, "rollback", ["--stack", stack, "--yes"]);
      assert.strictEqual(r.code, 2, outputOf(r));
      assert.match(r.stderr, /the pulumi CLI on PATH is v3\.200\.0; this project pins v3\.\d+\.\d+ \(scripts\/engine-versions\.env\)/);
      assert.strictEqual(historyLength(), 1);
      assert.strictEqual(fs.readFileSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), "utf8"), stackFile);
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });

  it("2. deploys v1.2.3 (migration 002); rows are written after it", async () => {
    setPlainConfig(stack, localConfig({ ...opts, refs: refs("v1.2.3") }));
    const r = await up("deploy v1.2.3");
    assert.strictEqual(r.code, 0, outputOf(r));
    assert.deepStrictEqual(JSON.parse((await get(target.nginx.port, "/health")).body), { status: "ok", version: "1.2.3" });
    const db = new Client({ connectionString: pg.url });
    await db.connect();
    try {
      assert.deepStrictEqual(await appliedMigrations(db), ["001_init.sql", "002_add_admin_indexes.sql"]);
      await db.query("insert into items (tenant, name) select 'weyland', 'after-1.2.3-' || g from generate_series(1, 20) g");
    } finally {
      await db.end();
    }
  });

  it("3. rollback --restore-db --yes: code back to 1.2.2, database back at the backup taken before 002, safety backup kept", async () => {
    const lines = journal(target).length;
    const backupBefore = outputs().backup.path as string;
    const rb = await tool("rollback", ["--stack", stack, "--restore-db", "--yes"]);
    timings["rollback --restore-db (tool)"] = rb.seconds;
    assert.strictEqual(rb.code, 0, outputOf(rb));
    console.log(
      `      ${rb.stdout
        .split("\n")
        .filter((l) => /^\s+(before|after|rollback time):/.test(l))
        .join("\n      ")}`,
    );

    assert.deepStrictEqual(JSON.parse((await get(target.nginx.port, "/health")).body), { status: "ok", version: "1.2.2" });
    assert.match((await get(target.nginx.port, "/")).body, /1\.2\.2/);
    assert.strictEqual(journal(target).length, lines + 1);
    assert.strictEqual(journal(target)[lines].apps.orchestrator.ref, "v1.2.2");

    assert.match(
      rb.stdout,
      /^ {2}before: update 2: orchestrator 1\.2\.3 \(v1\.2\.3, [0-9a-f]{12}\), sevastopol \(v1\.2\.3, [0-9a-f]{12}\)$/m,
    );
    assert.match(
      rb.stdout,
      /^ {2}after: {2}update 3: orchestrator 1\.2\.2 \(v1\.2\.2, [0-9a-f]{12}\), sevastopol \(v1\.2\.2, [0-9a-f]{12}\)$/m,
    );
    assert.match(
      rb.stdout,
      /^ {2}rollback time: \d+\.\d s \(pulumi up \d+\.\d s, database restore \d+\.\d s, history\/config\/checks \d+\.\d s\)/m,
    );
    assert.ok(rb.stdout.includes(`database restored from ${backupBefore}`), rb.stdout);

    const db = new Client({ connectionString: pg.url });
    await db.connect();
    try {
      assert.deepStrictEqual(await appliedMigrations(db), ["001_init.sql"]);
      assert.strictEqual(Number((await db.query("select count(*) from items where name like 'after-1.2.3-%'")).rows[0].count), 0);
      const cols = (await db.query("select column_name from information_schema.columns where table_name = 'items'")).rows.map(
        (x: { column_name: string }) => x.column_name,
      );
      assert.ok(!cols.includes("created_at"), `items still has the 1.2.3 column: ${cols}`);
    } finally {
      await db.end();
    }
    const safety = /safety backup of the database as it was: (\S+)/.exec(rb.stdout)?.[1];
    assert.ok(safety && fs.existsSync(safety) && fs.statSync(safety).size > 0, `no safety backup: ${safety}`);
    assert.match(path.basename(safety!), new RegExp(`^safety-${stack}-before-restore-\\d{8}T\\d{6}Z\\.dump$`));

    const h = await tool("history", ["--stack", stack]);
    assert.strictEqual(h.code, 0, outputOf(h));
    assert.match(
      h.stdout,
      /^3 +succeeded .*orchestrator@v1\.2\.2 \([0-9a-f]{12}\), sevastopol@v1\.2\.2 \([0-9a-f]{12}\) +ROLLBACK to update 1$/m,
    );
    assert.match(h.stdout, /^2 +succeeded .*orchestrator@v1\.2\.3, sevastopol@v1\.2\.3( {2}|$)/m); // note: the update message (git HEAD subject by default)

    const note = hook.received.find((n) => /^Rolled back to update 1/.test(n.body.text));
    assert.ok(note, JSON.stringify(hook.received));
    assert.strictEqual(note!.method, "POST");
    assert.strictEqual(note!.contentType, "application/json");
    assert.match(
      note!.body.text,
      /^Rolled back to update 1: t-rb\d+: orchestrator v1\.2\.2, sevastopol v1\.2\.2 \(was orchestrator v1\.2\.3, sevastopol v1\.2\.3\) in \d+(m\d\d)?s$/,
    );
  });

  it("4. v1.2.3 again (its release is kept; 002 applied again), then a plain rollback: a switch to the kept 1.2.2 release", async () => {
    setPlainConfig(stack, localConfig({ ...opts, refs: refs("v1.2.3") }));
    const r = await up("redeploy v1.2.3 (kept release)");
    assert.strictEqual(r.code, 0, outputOf(r));
    const db = new Client({ connectionString: pg.url });
    await db.connect();
    try {
      assert.deepStrictEqual(await appliedMigrations(db), ["001_init.sql", "002_add_admin_indexes.sql"]);
      const lines = journal(target).length;
      // The 1.2.2 release built by update 1 must be switched to, not rebuilt.
      const marker122 = path.join(target.root, "releases", "orchestrator", journal(target)[0].apps.orchestrator.sha, ".nostromo-built");
      const builtAt = fs.statSync(marker122).mtimeMs;

      const pidBefore: Record<string, number> = {
        "orchestrator-blue": pm2Pid(target, "orchestrator-blue"),
        "orchestrator-green": pm2Pid(target, "orchestrator-green"),
      };
      const rb = await tool("rollback", ["--stack", stack, "--yes"]);
      timings["rollback to kept release (tool)"] = rb.seconds;
      assert.strictEqual(rb.code, 0, outputOf(rb));
      const reported = Number(/rollback time: (\d+\.\d) s/.exec(rb.stdout)?.[1]);
      timings["rollback to kept release (reported)"] = reported;
      console.log(
        `      rollback to a kept release: ${reported} s reported by the tool, ${rb.seconds.toFixed(1)} s wall (incl. ts-node start); fresh deploy took ${timings["deploy v1.2.2"]} s`,
      );

      assert.deepStrictEqual(JSON.parse((await get(target.nginx.port, "/health")).body), { status: "ok", version: "1.2.2" });
      assert.strictEqual(journal(target).length, lines + 1);
      assert.match(rb.stdout, /^ {2}to {4}update 3: orchestrator@v1\.2\.2, sevastopol@v1\.2\.2$/m);
      assert.match(rb.stdout, /^ {2}before: update 4: orchestrator 1\.2\.3 \(v1\.2\.3, [0-9a-f]{12}\)/m);
      assert.match(rb.stdout, /^ {2}after: {2}update 5: orchestrator 1\.2\.2 \(v1\.2\.2, [0-9a-f]{12}\)/m);
      assert.match(rb.stdout, /^release orchestrator@[0-9a-f]{12} already built: kept \(switched without a rebuild\)$/m);
      assert.match(rb.stdout, /^release sevastopol@[0-9a-f]{12} already built: kept/m);
      assert.strictEqual(fs.statSync(marker122).mtimeMs, builtAt, "the 1.2.2 release was rebuilt");
      // Issue 11: 1.2.2 still ran in the idle slot: traffic went to it at once, and the update kept that process.
      const at =
        /^switched at once, (\d+\.\d) s after the command started: serving orchestrator=[0-9a-f]{12}\/(blue|green) sevastopol=[0-9a-f]{12} \(read from the server\)$/m.exec(
          rb.stdout,
        );
      assert.ok(at, rb.stdout);
      timings["rollback: old version serving after (s)"] = Number(at[1]);
      assert.match(
        rb.stdout,
        /^orchestrator [0-9a-f]{12} already runs in slot (blue|green) with this environment and answers its health checks: kept, not restarted$/m,
      );
      assert.strictEqual(
        pm2Pid(target, `orchestrator-${at[2]}`),
        pidBefore[`orchestrator-${at[2]}`],
        "the kept slot's process was restarted",
      );
      // The database is left alone, and the tool says so.
      assert.match(rb.stdout, /database: left as it is \(no --restore-db\)/);
      assert.match(
        rb.stdout,
        /note: the database schema may be ahead of the code: update 4 deployed orchestrator@v1\.2\.3, which has a migrate command, and its migrations stay applied\. The backup taken before them: \S+\.dump/,
      );
      assert.deepStrictEqual(await appliedMigrations(db), ["001_init.sql", "002_add_admin_indexes.sql"]);

      const h = await tool("history", ["--stack", stack]);
      assert.match(h.stdout, /^5 +succeeded .* +ROLLBACK to update 3$/m);
    } finally {
      await db.end();
    }
  });

  it("5. refusals: nothing left that was not rolled back from, the backup is gone, no terminal without --yes, --to a failed update, --to an unknown one", async () => {
    // Both earlier releases were rolled back from (updates 3 and 5): a plain rollback refuses
    // rather than redeploy either, and says how to go back anyway.
    const plain = await tool("rollback", ["--stack", stack, "--yes"]);
    assert.strictEqual(plain.code, 2, outputOf(plain));
    assert.match(
      plain.stderr,
      /refused: nothing to roll back to: .* without having been rolled back from already: updates? .*rolled back by .*; name one with --to N to go back to it anyway/,
    );
    // --restore-db when the backup to restore is gone (back to 1.2.3: the one update 5 took
    // before running 1.2.2's migrate while 1.2.3 served): refused before anything changes.
    const backup = outputs().backup.path as string;
    fs.renameSync(backup, `${backup}.hidden`);
    try {
      const gone = await tool("rollback", ["--stack", stack, "--to", "4", "--restore-db", "--yes"]);
      assert.strictEqual(gone.code, 2, outputOf(gone));
      assert.match(
        gone.stderr,
        new RegExp(`refused: the backup ${backup.replace(/[.]/g, "\\.")} is gone from the server \\(or empty\\); nothing was changed`),
      );
    } finally {
      fs.renameSync(`${backup}.hidden`, backup);
    }
    const noTty = await tool("rollback", ["--stack", stack, "--to", "4", "--restore-db"]);
    assert.strictEqual(noTty.code, 2, outputOf(noTty));
    assert.match(noTty.stderr, /refused: no terminal to confirm on; pass --yes to roll back and restore the database/);
    assert.strictEqual(historyLength(), 5);

    // A failed update: its migration step fails (a program error, such as an unknown ref, stops
    // `up` before the update starts, and a file backend records no history entry for it).
    const config = localConfig({ ...opts, refs: refs("v1.2.2") }) as { apps: Record<string, Record<string, unknown>> };
    const failing = {
      ...config,
      apps: { ...config.apps, orchestrator: { ...config.apps.orchestrator, migrate: "echo 'migration 003 failed' >&2; exit 1" } },
    };
    setPlainConfig(stack, failing);
    const bad = await up("failed update");
    assert.notStrictEqual(bad.code, 0);
    assert.match(outputOf(bad), /migration 003 failed/);
    setPlainConfig(stack, localConfig({ ...opts, refs: refs("v1.2.2") }));
    const hist = JSON.parse(backend.pulumiOk(REPO_ROOT, ["stack", "history", "--json", "--stack", stack]).stdout);
    assert.strictEqual(hist.length, 6);
    assert.strictEqual(hist[0].result, "failed"); // newest first

    const failed = await tool("rollback", ["--stack", stack, "--to", "6", "--yes"]);
    assert.strictEqual(failed.code, 2, outputOf(failed));
    assert.match(failed.stderr, /^rollback: refused: update 6 failed: only a successful update can be rolled back to$/m);
    const unknown = await tool("rollback", ["--stack", stack, "--to", "42", "--yes"]);
    assert.strictEqual(unknown.code, 2, outputOf(unknown));
    assert.match(unknown.stderr, /^rollback: refused: update 42 not found in the stack's history \(versions 1 to 6\)$/m);
    const same = await tool("rollback", ["--stack", stack, "--to", "1", "--yes"]);
    assert.match(same.stderr, /refused: update 1 deployed the same app refs as the current config/);
    assert.strictEqual(historyLength(), 6);
    assert.deepStrictEqual(JSON.parse((await get(target.nginx.port, "/health")).body), { status: "ok", version: "1.2.2" });
  });

  it("6. history and metrics read it all back", async () => {
    const h = await tool("history", ["--stack", stack]);
    assert.strictEqual(h.code, 0, outputOf(h));
    console.log(h.stdout.replace(/^/gm, "      "));
    assert.match(h.stdout, /^6 +failed .*orchestrator@v1\.2\.2, sevastopol@v1\.2\.2/m);

    const svg = path.join(work, "chart.svg");
    const m = await tool("metrics", ["--stack", stack, "--out", svg]);
    assert.strictEqual(m.code, 0, outputOf(m));
    console.log(m.stdout.replace(/^/gm, "      "));
    assert.match(m.stdout, /^deploys: +6 \(5 succeeded, 1 failed, 2 rollbacks\)$/m);
    assert.match(m.stdout, /^change failure rate: +16\.7%$/m);
    assert.match(m.stdout, /^MTTR: +n\/a \(1 incident, 1 not yet recovered\)$/m);
    // The example repos' commits are dated 2024: lead time is long, but it is measured.
    assert.match(m.stdout, /^lead time: +mean \S+, median \S+ \(\d+ changes\)$/m);
    const text = fs.readFileSync(svg, "utf8");
    assert.strictEqual((text.match(/<rect x="\d+" y="\d+" width="24"/g) ?? []).length, 6);
    assert.strictEqual((text.match(/fill="#c62828"><title>/g) ?? []).length, 1);
  });
});
