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

/** Runs a built script with bash under `lease`, as the Command resource does on a server. */
function run(text: string, stdin = "", lease = "unit/lease-1"): { code: number | null; stdout: string; stderr: string } {
  const env = { ...process.env, NOSTROMO_LEASE: lease };
  const r = spawnSync("bash", ["-c", text], { input: stdin, encoding: "utf8", timeout: 60_000, env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The step's result line (the last line of its output). */
function resultOf(stdout: string): Record<string, string> {
  const last = stdout.trim().split("\n").pop()!;
  assert.match(last, /^nostromo-result \{/);
  return JSON.parse(last.slice("nostromo-result ".length));
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

  const forStack = (stack: string) => ({ ...cfg, stack });
  const lockFile = (f: string) => fs.readFileSync(path.join(root, ".lock", f), "utf8").trim();

  it("the lock refuses another stack naming the holder, and lets the same stack's next update take over", () => {
    const first = run(lockScript(forStack("staging")), "", "staging/update-1");
    assert.strictEqual(first.code, 0, first.stderr);
    assert.strictEqual(resultOf(first.stdout).lease, "staging/update-1");
    const other = run(lockScript(forStack("production")), "", "production/update-1");
    assert.strictEqual(other.code, 1);
    assert.match(
      other.stderr,
      /^deploy lock held by stack 'staging' \(update staging\/update-1, \S+@\S+, since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\); nothing was changed\. That stack's next `pulumi up` takes it back; if no deploy is running there: rm -rf \S+\/\.lock$/m,
    );
    // The refused step says nothing about holding the lock: it never held it.
    assert.doesNotMatch(other.stderr, /stays with this update/);
    const again = run(lockScript(forStack("staging")), "", "staging/update-2");
    assert.strictEqual(again.code, 0, again.stderr);
    assert.match(again.stdout, /taking over the lock left by update staging\/update-1 of this stack/);
    assert.strictEqual(lockFile("lease"), "staging/update-2");
    fs.rmSync(path.join(root, ".lock"), { recursive: true });
  });

  it("a step runs only with a lease, and every step of an update that does not hold the lock yet takes it after preflight", () => {
    const none = spawnSync("bash", ["-c", backupScript(cfg, "nolease")], {
      input: "",
      encoding: "utf8",
      env: { ...process.env, NOSTROMO_LEASE: "" },
    });
    assert.strictEqual(none.status, 1);
    assert.match(none.stderr, /no lease: a step runs only inside a pulumi up that holds the server lock/);
    assert.ok(!fs.existsSync(path.join(root, ".lock")));
    // Sibling steps of one update, at once: one takes the lock (after preflight), none conflicts.
    const siblings = Array.from({ length: 4 }, () =>
      spawnSync("bash", ["-c", `(${lockScript(cfg).replace(/\n$/, "")}) & (${lockScript(cfg).replace(/\n$/, "")}) & wait`], {
        encoding: "utf8",
        env: { ...process.env, NOSTROMO_LEASE: "unit/siblings" },
      }),
    );
    for (const r of siblings) assert.strictEqual(r.status, 0, r.stderr);
    assert.strictEqual(lockFile("lease"), "unit/siblings");
    assert.strictEqual(lockFile("stack"), "unit");
    fs.rmSync(path.join(root, ".lock"), { recursive: true });
  });

  it("a failing step keeps this update's lock (siblings may still run), says how it is cleared, and leaves no partial file", () => {
    const r = run(backupScript(cfg, "broken"), "postgres://nobody:wrong@127.0.0.1:1/none\n", "unit/failing");
    assert.notStrictEqual(r.code, 0);
    assert.match(
      r.stderr,
      /the server lock stays with this update \(lease unit\/failing\): other steps of it may still run; the next `pulumi up` of stack unit takes it over \(if no deploy runs: rm -rf \S+\/\.lock\)/,
    );
    assert.ok(!r.stderr.includes("wrong@"), "the database URL leaked into the error");
    assert.strictEqual(lockFile("lease"), "unit/failing");
    assert.deepStrictEqual(
      fs.readdirSync(path.join(root, "backups")).filter((f) => f.startsWith(".partial")),
      [],
    );
    fs.rmSync(path.join(root, ".lock"), { recursive: true });
  });

  it("the backup is a verified custom-format dump that restores, rotated but never losing the last good deploy's", () => {
    const outs: { path: string; size: number; sha256: string }[] = [];
    for (const label of ["aaa", "bbb", "ccc", "ddd"]) {
      const r = run(backupScript(cfg, label), `${pg.url}\n`);
      assert.strictEqual(r.code, 0, r.stderr);
      assert.ok(!`${r.stdout}${r.stderr}`.includes(pg.url.split("@")[0]), "the database URL leaked into the output");
      const result = resultOf(r.stdout);
      outs.push({ path: result.path, size: Number(result.size), sha256: result.sha256 });
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
