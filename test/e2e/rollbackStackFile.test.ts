import * as assert from "assert";
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as os from "os";
import * as path from "path";
import { REPO_ROOT, RunResult } from "../../local/backend";
import { DeployHarness } from "../../local/harness";
import { localConfig, outputOf, setPlainConfig } from "../../local/stack";

/**
 * The rollback tool and the stack file (issue 9): a rollback whose update cannot start (the
 * stack's lock is held) says why and leaves Pulumi.<stack>.yaml as it was, byte for byte; a
 * rollback that goes through prints the exact change it made to the file, to commit.
 */
describe("e2e: rollback and the stack file (lock held, change to commit)", function () {
  const h = new DeployHarness(`t-rbsf${process.pid}`);
  const stackFile = () => path.join(REPO_ROOT, `Pulumi.${h.stack}.yaml`);
  const refs = (v: string) => ({ orchestrator: v, sevastopol: v });

  /** `npm run rollback -- …` as an operator runs it (ts-node, repo root, the backend's env), no TTY. */
  const rollback = (args: string[]): Promise<RunResult> =>
    new Promise((resolve, reject) => {
      const child = spawn("npx", ["--no-install", "ts-node", "tools/rollback.ts", "--stack", h.stack, ...args], {
        cwd: REPO_ROOT,
        env: h.backend.env,
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 900_000,
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
  const configApps = () => h.backend.pulumiOk(REPO_ROOT, ["config", "get", "apps", "--stack", h.stack]).stdout;
  const historyLength = () =>
    JSON.parse(h.backend.pulumiOk(REPO_ROOT, ["stack", "history", "--json", "--stack", h.stack]).stdout).length as number;

  before(async () => {
    await h.start(refs("v1.2.2"));
    const first = await h.up("deploy v1.2.2");
    assert.strictEqual(first.code, 0, outputOf(first));
    h.configure({ refs: refs("v1.2.3") });
    const second = await h.up("deploy v1.2.3");
    assert.strictEqual(second.code, 0, outputOf(second));
    assert.strictEqual(await h.servedVersion(), "1.2.3");
  });

  after(async () => {
    await h.stop();
  });

  it("with the stack's backend lock held, rollback --yes fails naming the lock and its holder, and the stack file stays byte for byte", async () => {
    // The file backend's lock (pkg/backend/diy/lock.go): .pulumi/locks/organization/<project>/<stack>/<id>.json
    // for a stack kept as .pulumi/stacks/<project>/<stack>.json (.pulumi/locks/<stack>/ without a project).
    const stacksDir = path.join(h.backend.stateDir, ".pulumi", "stacks");
    const checkpoint = fs.readdirSync(stacksDir, { recursive: true, encoding: "utf8" }).find((f) => path.basename(f) === `${h.stack}.json`);
    assert.ok(checkpoint, `no checkpoint of ${h.stack} under ${stacksDir}`);
    const project = path.dirname(checkpoint!);
    const lockDir = path.join(h.backend.stateDir, ".pulumi", "locks", ...(project === "." ? [] : ["organization", project]), h.stack);
    fs.mkdirSync(lockDir, { recursive: true });
    const lockFile = path.join(lockDir, "5f0c7a2e-held-by-another-update.json");
    fs.writeFileSync(
      lockFile,
      JSON.stringify({ pid: 4242, username: "ci-runner", hostname: "deploy-host-7", timestamp: "2026-05-01T10:00:00Z" }),
    );

    const fileBefore = fs.readFileSync(stackFile());
    const appsBefore = configApps();
    const lengthBefore = historyLength();
    try {
      const rb = await rollback(["--yes"]);
      assert.strictEqual(rb.code, 1, outputOf(rb));
      assert.match(
        rb.stderr,
        /^rollback: the rollback update did not start changing anything: another update holds the stack lock \(ci-runner@deploy-host-7, pid 4242, since 2026-05-01T10:00:00Z: lock file \/\S+\/\.pulumi\/locks\/organization\/nostromo-deploy\/t-rbsf\d+\/5f0c7a2e-held-by-another-update\.json\); nothing was changed\.$/m,
      );
      assert.match(rb.stderr, /^ {4}error: the stack is currently locked by 1 lock\(s\)/m);
      assert.match(
        rb.stderr,
        /the update never started \(the engine reported no event\); Pulumi\.t-rbsf\d+\.yaml is back as it was, byte for byte/,
      );
      assert.match(rb.stderr, /`pulumi cancel --stack t-rbsf\d+` removes its lock/);
      assert.doesNotMatch(rb.stderr, /^\s+at /m, "a stack trace was printed");
    } finally {
      fs.rmSync(lockFile);
    }
    assert.ok(fs.readFileSync(stackFile()).equals(fileBefore), "the stack file changed");
    assert.strictEqual(configApps(), appsBefore);
    assert.strictEqual(historyLength(), lengthBefore);
    assert.strictEqual(await h.servedVersion(), "1.2.3");
  });

  it("a rollback that goes through prints the change it made to the stack file; git apply of it to the old file gives the new file", async () => {
    const before = fs.readFileSync(stackFile(), "utf8");
    const rb = await rollback(["--yes"]);
    assert.strictEqual(rb.code, 0, outputOf(rb));
    assert.strictEqual(await h.servedVersion(), "1.2.2");
    const after = fs.readFileSync(stackFile(), "utf8");
    assert.notStrictEqual(after, before);

    const name = `Pulumi.${h.stack}.yaml`;
    assert.match(
      rb.stdout,
      new RegExp(
        `^the rollback rewrote ${name.replace(/[.]/g, "\\.")} \\(its apps key\\)\\. Commit this change \\(\`git commit -m "rollback to update 1" -- ${name.replace(/[.]/g, "\\.")}\`\\), or revert the commit that brought the undone version`,
        "m",
      ),
    );
    // The diff: from its `--- a/` line, every line a diff line.
    const lines = rb.stdout.split("\n");
    const start = lines.indexOf(`--- a/${name}`);
    assert.ok(start >= 0, rb.stdout);
    let end = start + 2;
    while (end < lines.length && /^([ +\-\\]|@@ )/.test(lines[end])) end++;
    const patch = `${lines.slice(start, end).join("\n")}\n`;
    // Only the apps change, as YAML: the refs' lines, nothing else of the file.
    assert.deepStrictEqual(
      patch
        .split("\n")
        .filter((l) => /^[-+](?![-+]{2} )/.test(l))
        .sort(),
      ["+      ref: v1.2.2", "+      ref: v1.2.2", "-      ref: v1.2.3", "-      ref: v1.2.3"],
      patch,
    );

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-apply-"));
    try {
      fs.writeFileSync(path.join(dir, name), before);
      fs.writeFileSync(path.join(dir, "rollback.patch"), patch);
      const r = spawnSync("git", ["apply", "rollback.patch"], { cwd: dir, encoding: "utf8" });
      assert.strictEqual(r.status, 0, `${r.stderr}\n${patch}`);
      assert.strictEqual(fs.readFileSync(path.join(dir, name), "utf8"), after);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  it("a program error before any step (an unknown config key): rollback --to 2 says so, no resource operation began, the stack file stays byte for byte", async () => {
    setPlainConfig(h.stack, { bogusKey: 1 });
    const fileBefore = fs.readFileSync(stackFile());
    const lengthBefore = historyLength();
    try {
      const rb = await rollback(["--to", "2", "--yes"]);
      assert.strictEqual(rb.code, 1, outputOf(rb));
      assert.match(
        rb.stderr,
        /^rollback: the rollback update did not start changing anything: invalid stack configuration: bogusKey: unknown key.*; nothing was changed\.$/m,
      );
      assert.match(rb.stderr, /bogusKey: unknown key/);
      assert.match(
        rb.stderr,
        /the engine began no resource operation \(it reported none but `same`, reads and providers' own\); Pulumi\.t-rbsf\d+\.yaml is back as it was, byte for byte/,
      );
      assert.ok(fs.readFileSync(stackFile()).equals(fileBefore), "the stack file changed");
    } finally {
      const doc = yaml.load(fs.readFileSync(stackFile(), "utf8")) as { config: Record<string, unknown> };
      delete doc.config["nostromo-deploy:bogusKey"];
      fs.writeFileSync(stackFile(), yaml.dump(doc));
    }
    assert.strictEqual(historyLength(), lengthBefore + 1); // the failed update is recorded, with no change
  });

  it("a rollback that fails after it began changing the servers keeps the target's apps in the stack file and says so", async () => {
    const smoke = localConfig(h.opts).smoke as unknown[];
    setPlainConfig(h.stack, { smoke: [...smoke, { name: "fails on purpose", path: "/api/common/indicadores", expectStatus: 418 }] });
    const before = fs.readFileSync(stackFile(), "utf8");
    const rb = await rollback(["--to", "2", "--yes"]);
    assert.strictEqual(rb.code, 1, outputOf(rb));
    assert.match(
      rb.stderr,
      /^rollback: the rollback update failed after \d+\.\d s: step failed on .*: smoke test failed: fails on purpose: .*expected HTTP 418/m,
    );
    assert.match(rb.stderr, /the engine had begun \d+ resource operation\(s\) \(first: .+\): the servers may be half way\./);
    assert.match(
      rb.stderr,
      /Pulumi\.t-rbsf\d+\.yaml is kept as the rollback wrote it: its apps key now names update 2's apps \(orchestrator@v1\.2\.3, sevastopol@v1\.2\.3\)/,
    );
    assert.match(rb.stderr, /^--- a\/Pulumi\.t-rbsf\d+\.yaml$/m);
    assert.doesNotMatch(rb.stderr, /^\s+at /m, "a stack trace was printed");
    assert.notStrictEqual(fs.readFileSync(stackFile(), "utf8"), before);
    assert.match(configApps(), /"ref":\s*"v1\.2\.3"/);
  });
});
