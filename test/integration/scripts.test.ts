import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import { DeployConfig, parseDeployConfig } from "../../lib/config";
import { backupScript, lockScript } from "../../lib/scripts";
import { PostgresInstance, startPostgres } from "../../local/postgres";
import { validRaw } from "../support/validConfig";

/** Runs a built script with bash, as the Command resource does on a server. */
function run(text: string, stdin = ""): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync("bash", ["-c", text], { input: stdin, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("integration: script builders run against real services", () => {
  let root: string;
  let cfg: DeployConfig;
  let pg: PostgresInstance;

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-scripts-"));
    const raw = validRaw();
    raw.server.root = root;
    raw.backup = { keep: 2 };
    cfg = parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
    pg = await startPostgres();
    const db = new Client({ connectionString: pg.url });
    await db.connect();
    await db.query(
      "create table items (id serial primary key, tenant text, name text); insert into items (tenant, name) values ('weyland', 'cargo')",
    );
    await db.end();
  });
  after(async () => {
    await pg?.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("the lock refuses another stack naming the holder, and lets the same stack take over", () => {
    const first = run(lockScript(cfg.server, "staging", "{}"));
    assert.strictEqual(first.code, 0, first.stderr);
    const other = run(lockScript(cfg.server, "production", "{}"));
    assert.strictEqual(other.code, 1);
    assert.match(
      other.stderr,
      /^deploy lock held by stack 'staging' \(\S+@\S+, since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\); if no deploy is running there: rm -rf \S+\/\.lock$/m,
    );
    const again = run(lockScript(cfg.server, "staging", "{}"));
    assert.strictEqual(again.code, 0, again.stderr);
    assert.match(again.stdout, /taking over a stale lock of this stack/);
    fs.rmSync(path.join(root, ".lock"), { recursive: true });
  });

  it("a failing step releases this stack's lock and leaves no partial file", () => {
    assert.strictEqual(run(lockScript(cfg.server, "unit", "{}")).code, 0);
    const r = run(backupScript(cfg, "broken"), "postgres://nobody:wrong@127.0.0.1:1/none\n");
    assert.notStrictEqual(r.code, 0);
    assert.match(r.stderr, /deploy lock released after the failure/);
    assert.ok(!r.stderr.includes("wrong@"), "the database URL leaked into the error");
    assert.ok(!fs.existsSync(path.join(root, ".lock")), "the lock is still held");
    assert.deepStrictEqual(
      fs.readdirSync(path.join(root, "backups")).filter((f) => f.startsWith(".partial")),
      [],
    );
  });

  it("the backup is a verified custom-format dump that restores, rotated but never losing the last good deploy's", () => {
    const outs: { path: string; size: number; sha256: string }[] = [];
    for (const label of ["aaa", "bbb", "ccc", "ddd"]) {
      const r = run(backupScript(cfg, label), `${pg.url}\n`);
      assert.strictEqual(r.code, 0, r.stderr);
      assert.ok(!`${r.stdout}${r.stderr}`.includes(pg.url.split("@")[0]), "the database URL leaked into the output");
      outs.push(JSON.parse(r.stdout.trim().split("\n").pop()!));
      if (label === "aaa") {
        // The journal says the first backup belongs to the last successful deploy.
        fs.writeFileSync(path.join(root, "deploys.jsonl"), JSON.stringify({ result: "succeeded", backup: outs[0].path }) + "\n");
      }
      spawnSync("sleep", ["1.1"]); // backups are named by the second
    }
    const list = spawnSync("pg_restore", ["--list", outs[3].path], { encoding: "utf8" });
    assert.strictEqual(list.status, 0, list.stderr);
    assert.match(list.stdout, /TABLE public items/);
    assert.strictEqual(fs.readFileSync(`${outs[3].path}.sha256`, "utf8").split(" ")[0], outs[3].sha256);
    const kept = fs
      .readdirSync(path.join(root, "backups"))
      .filter((f) => f.endsWith(".dump"))
      .sort();
    assert.deepStrictEqual(kept, [outs[0], outs[2], outs[3]].map((o) => path.basename(o.path)).sort());
  });
});
