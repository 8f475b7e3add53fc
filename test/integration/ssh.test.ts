import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { commandProvider, runOverSsh } from "../../components/command";
import { LocalTarget, freePort, startLocalTarget } from "../../local/target";

/** Issue 8, observation 5: SSH retries only the connection; a timeout kills the script where it runs. */
describe("integration: steps over SSH against a real sshd", function () {
  let target: LocalTarget;
  let dir: string;
  const connection = () => ({ ...target.ssh });

  before(async () => {
    target = await startLocalTarget();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-ssh-"));
  });
  after(async () => {
    await target?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("a connection dropped after the script started fails the step saying so, and the script ran once", async () => {
    const counter = path.join(dir, "runs");
    // The script kills the sshd process serving its own session: the connection drops mid-run.
    const script = [
      `echo run >> '${counter}'`,
      `echo started`,
      `p=$$; while [ "$p" -gt 1 ]; do if [ "$(ps -o comm= -p "$p")" = sshd ]; then kill -9 "$p"; break; fi; p=$(ps -o ppid= -p "$p" | tr -d ' '); done`,
      `sleep 5`,
    ].join("\n");
    await assert.rejects(
      commandProvider.create({ step: "migration", app: "api", connection: connection(), create: script } as any),
      (err: Error) => {
        assert.match(err.message, /the connection dropped after the script started \([^)]+\); it may have partly run and was not retried/);
        assert.match(err.message, /--- stdout so far ---\nstarted/);
        return true;
      },
    );
    assert.strictEqual(fs.readFileSync(counter, "utf8"), "run\n", "the script ran more than once");
  });

  it("a step past its timeout is killed on the server, and its output so far is shown", async () => {
    const marker = `nostromo-timeout-marker-${process.pid}`;
    const started = Date.now();
    await assert.rejects(
      commandProvider.create({
        step: "release",
        app: "api",
        connection: connection(),
        create: `echo partial-output; sleep 60 # ${marker}`,
        timeoutSeconds: 2,
      } as any),
      (err: Error) => {
        assert.match(err.message, /timed out after 2 s: the script was killed where it ran; its output so far follows/);
        assert.match(err.message, /--- stdout ---\npartial-output/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
    const left = spawnSync("pgrep", ["-f", marker], { encoding: "utf8" });
    assert.strictEqual(left.stdout.trim(), "", "the timed-out script is still running on the server");
  });

  it("a refused connection is retried, then fails naming where", async () => {
    const closed = await freePort();
    const started = Date.now();
    await assert.rejects(
      runOverSsh({ ...connection(), port: closed, dialAttempts: 3 }, "true", undefined, 10_000),
      new RegExp(`ssh \\S+@127\\.0\\.0\\.1:${closed}: .*ECONNREFUSED`),
    );
    // Two waits between three attempts (0.5 s, then 1 s).
    assert.ok(Date.now() - started >= 1400, `no retry: ${Date.now() - started} ms`);
  });

  it("a step runs with the lease exported, and its result line parsed", async () => {
    const made = await commandProvider.create({
      step: "lock",
      connection: connection(),
      create: `printf 'nostromo-result {"lease":"%s"}\\n' "$NOSTROMO_LEASE"`,
      lease: "t/ssh-1",
    } as any);
    assert.deepStrictEqual(made.outs.result, { lease: "t/ssh-1" });
  });
});
