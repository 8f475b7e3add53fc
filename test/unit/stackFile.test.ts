import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { unifiedDiff } from "../../lib/unifiedDiff";
import { explainEngineError, stackFileName, UpdateWatch } from "../../tools/stackFile";
import { EngineEvent } from "@pulumi/pulumi/automation";

/** Applies `patch` to `before` as `git apply` does in a checkout, returning the file's new text. */
function gitApply(file: string, before: string, patch: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-diff-"));
  try {
    fs.writeFileSync(path.join(dir, file), before);
    fs.writeFileSync(path.join(dir, "change.patch"), patch);
    const r = spawnSync("git", ["apply", "--whitespace=nowarn", "change.patch"], { cwd: dir, encoding: "utf8" });
    assert.strictEqual(r.status, 0, `git apply: ${r.stderr}\n${patch}`);
    return fs.readFileSync(path.join(dir, file), "utf8");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const STACK_FILE = `encryptionsalt: v1:abc=
config:
  nostromo-deploy:server:
    host: 127.0.0.1
    port: 2222
  nostromo-deploy:apps:
    orchestrator:
      repo: /tmp/repos/orchestrator.git
      ref: v1.2.3
      kind: node
    sevastopol:
      repo: /tmp/repos/sevastopol.git
      ref: v1.2.3
      kind: static
  nostromo-deploy:smoke:
    - name: login
      path: /api/login
  nostromo-deploy:sshPrivateKey:
    secure: v1:xyz
`;

describe("unit: the rollback's stack file change and engine failures", () => {
  it("prints the change of the apps key as git prints it, and git apply turns the old file into the new one", () => {
    const after = STACK_FILE.replace(
      / {2}nostromo-deploy:apps:\n(?: {4}.*\n)+/,
      `  nostromo-deploy:apps: '{"orchestrator":{"ref":"v1.2.2"}}'\n`,
    );
    const d = unifiedDiff(STACK_FILE, after, "Pulumi.production.yaml");
    assert.match(
      d,
      /^--- a\/Pulumi\.production\.yaml\n\+\+\+ b\/Pulumi\.production\.yaml\n@@ -3,15 \+3,7 @@\n {3}nostromo-deploy:server:\n/,
    );
    assert.match(d, /^- {6}ref: v1\.2\.3$/m);
    assert.match(d, /^\+ {2}nostromo-deploy:apps: '\{"orchestrator":\{"ref":"v1\.2\.2"\}\}'$/m);
    assert.strictEqual(gitApply("Pulumi.production.yaml", STACK_FILE, d), after);
  });

  it("equal texts: no diff; one changed line: one hunk with 3 lines of context each side", () => {
    assert.strictEqual(unifiedDiff(STACK_FILE, STACK_FILE, "f"), "");
    const after = STACK_FILE.replace("ref: v1.2.3\n      kind: node", "ref: v1.2.2\n      kind: node");
    assert.strictEqual(
      unifiedDiff(STACK_FILE, after, "f"),
      [
        "--- a/f",
        "+++ b/f",
        "@@ -6,7 +6,7 @@",
        "   nostromo-deploy:apps:",
        "     orchestrator:",
        "       repo: /tmp/repos/orchestrator.git",
        "-      ref: v1.2.3",
        "+      ref: v1.2.2",
        "       kind: node",
        "     sevastopol:",
        "       repo: /tmp/repos/sevastopol.git",
        "",
      ].join("\n"),
    );
  });

  it("files without a final newline, empty files, changes far apart (two hunks): git apply agrees every time", () => {
    const cases: [string, string][] = [
      ["a\nb\nc", "a\nb\nc\n"],
      ["a\nb\nc\n", "a\nB\nc"],
      ["", "x\ny\n"],
      ["x\ny\n", "y\n"],
      [STACK_FILE, STACK_FILE.replace("port: 2222", "port: 22").replace("secure: v1:xyz", "secure: v1:xyz\n  nostromo-deploy:extra: 1")],
    ];
    for (const [a, b] of cases) assert.strictEqual(gitApply("f.yaml", a, unifiedDiff(a, b, "f.yaml")), b, JSON.stringify([a, b]));
    const two = unifiedDiff(cases[4][0], cases[4][1], "f.yaml");
    assert.strictEqual((two.match(/^@@ /gm) ?? []).length, 2, two);
    assert.match(unifiedDiff("a\nb", "a\nc", "f"), /^-b\n\\ No newline at end of file\n\+c\n\\ No newline at end of file\n$/m);
  });

  it("random edits of a stack file: the printed diff applied to the old text gives exactly the new one", () => {
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
    const base = STACK_FILE.split("\n");
    for (let k = 0; k < 25; k++) {
      const next = [...base];
      for (let e = rnd(4) + 1; e > 0; e--) {
        const at = rnd(next.length);
        const kind = rnd(3);
        if (kind === 0) next.splice(at, 1);
        else if (kind === 1) next.splice(at, 0, `  added-${k}-${e}: ${rnd(100)}`);
        else next[at] = `${next[at]} # ${rnd(10)}`;
      }
      const after = next.join("\n");
      assert.strictEqual(gitApply("f.yaml", STACK_FILE, unifiedDiff(STACK_FILE, after, "f.yaml")), after);
    }
  });

  it("a held file-backend lock: the reason names the lock and what holds it", () => {
    const stderr =
      "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.\n" +
      "  file:///tmp/state/.pulumi/locks/organization/nostromo-deploy/prod/0c1d.json?no_tmp_dir=true: created by deploy@ci-7 (pid 4242) at 2026-05-01T10:00:00Z\n";
    const f = explainEngineError({ commandResult: { stderr, stdout: "Updating (prod)\n", code: 255 } });
    assert.strictEqual(f.locked, true);
    assert.strictEqual(
      f.reason,
      "another update holds the stack lock (deploy@ci-7, pid 4242, since 2026-05-01T10:00:00Z: lock file /tmp/state/.pulumi/locks/organization/nostromo-deploy/prod/0c1d.json)",
    );
    assert.deepStrictEqual(f.lines, [
      "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.",
      "  file:///tmp/state/.pulumi/locks/organization/nostromo-deploy/prod/0c1d.json?no_tmp_dir=true: created by deploy@ci-7 (pid 4242) at 2026-05-01T10:00:00Z",
    ]);
  });

  it("another engine error: its error lines, colour codes removed; a plain Error: its first line", () => {
    const stderr =
      "\u001b[31merror: \u001b[0mMissing required configuration variable 'nostromo-deploy:server'\n    please set a value using the command `pulumi config set nostromo-deploy:server <value>`\nwarning: x\n";
    const f = explainEngineError({ commandResult: { stderr, stdout: "", code: 255 } });
    assert.strictEqual(f.locked, false);
    assert.strictEqual(f.reason, "Missing required configuration variable 'nostromo-deploy:server'");
    const config = explainEngineError({
      commandResult: {
        stderr: "",
        stdout: "Diagnostics:\n    error: invalid stack configuration:\n      bogusKey: unknown key\n",
        code: 255,
      },
    });
    assert.strictEqual(config.reason, "invalid stack configuration: bogusKey: unknown key");
    const step = explainEngineError({
      commandResult: {
        stderr:
          "error: update failed\nerror: step failed on deploy@h:22 (exit 1)\n  --- stderr ---\n  smoke test failed: x\n  switched back\n",
        stdout: "",
        code: 255,
      },
    });
    assert.strictEqual(step.reason, "step failed on deploy@h:22 (exit 1): smoke test failed: x");
    assert.deepStrictEqual(f.lines, [
      "error: Missing required configuration variable 'nostromo-deploy:server'",
      "  please set a value using the command `pulumi config set nostromo-deploy:server <value>`",
    ]);
    assert.strictEqual(explainEngineError(new Error("spawn pulumi ENOENT\n    at x")).reason, "spawn pulumi ENOENT");
  });

  it("the update watch counts only operations that change something", () => {
    const w = new UpdateWatch();
    assert.match(w.describe(), /never started/);
    const pre = (op: string, name: string) =>
      ({
        resourcePreEvent: { metadata: { op, urn: `urn:pulumi:s::p::t::${name}`, type: "command:remote:Command" } },
      }) as unknown as EngineEvent;
    w.onEvent({ preludeEvent: { config: {} } } as unknown as EngineEvent);
    w.onEvent(pre("same", "preflight"));
    w.onEvent(pre("read", "x"));
    w.onEvent({
      resourcePreEvent: {
        metadata: { op: "update", urn: "urn:pulumi:s::p::pulumi:providers:pulumi-nodejs::default", type: "pulumi:providers:pulumi-nodejs" },
      },
    } as unknown as EngineEvent);
    assert.deepStrictEqual(w.changes, []);
    assert.match(w.describe(), /began no resource operation/);
    w.onEvent(pre("update", "orchestrator-start"));
    assert.deepStrictEqual(w.changes, ["update command:remote:Command orchestrator-start"]);
    assert.match(w.describe(), /had begun 1 resource operation\(s\) \(first: update command:remote:Command orchestrator-start\)/);
  });

  it("the stack file of a stack is Pulumi.<name>.yaml, also for an org/project/stack name", () => {
    assert.strictEqual(stackFileName("production"), "Pulumi.production.yaml");
    assert.strictEqual(stackFileName("acme/nostromo-deploy/production"), "Pulumi.production.yaml");
  });
});
