import * as assert from "assert";
import { createHash } from "crypto";
import { runOverSsh } from "../../components/ssh";
import { PooledSsh } from "../../components/sshConnection";
import { LocalTarget, startLocalTarget } from "../../local/target";
import { oddServer } from "../support/oddSshServer";

/** Shell: prints the step runner's pid (the parent of the step's `timeout`). */
const RUNNER_PID = `ps -o ppid= -p "$PPID" | tr -d ' '`;

/** Every pooled connection of this process, cut as a killed deploy's would be. */
function cutEveryConnection(): void {
  const pool = (globalThis as { __nostromoSshPool2?: Map<string, PooledSsh[]> }).__nostromoSshPool2;
  for (const list of pool?.values() ?? []) for (const c of list) c.client.destroy();
}

describe("integration: the step runner (components/sshRunner.ts) against a real sshd", function () {
  let target: LocalTarget;
  before(async () => {
    target = await startLocalTarget();
  });
  after(async () => {
    await target?.stop();
  });

  it("steps one after the other run on one runner, each with its own output, stdin and exit status", async () => {
    const runs = [];
    for (let i = 0; i < 3; i++) {
      runs.push(await runOverSsh(target.ssh, `cat; echo; ${RUNNER_PID}; echo "err ${i}" >&2; exit ${i}`, `in ${i} ✓`, 10_000));
    }
    assert.deepStrictEqual(
      runs.map((r) => [r.code, r.stdout.split("\n")[0], r.stderr]),
      [0, 1, 2].map((i) => [i, `in ${i} ✓`, `err ${i}\n`]),
    );
    const pids = new Set(runs.map((r) => r.stdout.split("\n")[1]));
    assert.strictEqual(pids.size, 1, `runners: ${[...pids]}`);
  });

  it("a large stdin (300 KB of UTF-8) and a large output (4 MB) pass exactly", async () => {
    const big = "ünïcødé line\n".repeat(20_000);
    const r = await runOverSsh(target.ssh, "sha256sum | cut -d' ' -f1; head -c 3000000 /dev/zero | base64 -w 76", big, 60_000);
    assert.strictEqual(r.code, 0, r.stderr);
    const [digest, ...rest] = r.stdout.split("\n");
    assert.strictEqual(digest, createHash("sha256").update(big).digest("hex"));
    assert.strictEqual(rest.join("\n"), `${Buffer.alloc(3_000_000).toString("base64").replace(/.{76}/g, "$&\n")}\n`);
  });

  it("an idle runner killed on the server: the next step runs once on a new runner, costing no attempt", async () => {
    const first = await runOverSsh(target.ssh, RUNNER_PID, undefined, 10_000);
    process.kill(Number(first.stdout.trim()), "SIGKILL");
    const next = await runOverSsh({ ...target.ssh, dialAttempts: 1 }, `${RUNNER_PID}; echo ran`, undefined, 10_000);
    assert.strictEqual(next.code, 0, next.stderr);
    const [pid, ran] = next.stdout.trim().split("\n");
    assert.notStrictEqual(pid, first.stdout.trim());
    assert.strictEqual(ran, "ran");
  });

  it("a deploy that goes away mid-step: the step is stopped on the server at once, not left running", async () => {
    const running = runOverSsh(target.ssh, "echo $$; sleep 30; echo finished", undefined, 60_000);
    let pid = 0;
    // The step's pid, from the server's process list (its output is not in before the end).
    for (let i = 0; i < 100 && !pid; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const ps = await runOverSsh(target.ssh, "pgrep -f '^sleep 30$' | head -1", undefined, 10_000);
      pid = Number(ps.stdout.trim()) || 0;
    }
    assert.ok(pid > 1, "the step never started");
    cutEveryConnection();
    await assert.rejects(running, /the connection dropped after the script started/);
    const deadline = Date.now() + 3000;
    let alive = true;
    while (alive && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      try {
        process.kill(pid, 0);
      } catch {
        alive = false;
      }
    }
    assert.ok(!alive, "the step still runs on the server 3 s after its deploy went");
  });

  it("a runner the server cannot start fails at once, saying why, never retried; a drop before the script went out is retried", async () => {
    const refusing = await oddServer((_n, accept) =>
      accept().on("exec", (acceptExec) => {
        const stream = acceptExec();
        stream.stderr.write("bash: the step runner needs bash 4.1 or later\n");
        stream.exit(3);
        stream.end();
      }),
    );
    const dropping = await oddServer((_n, accept, _reject, end) => accept().on("exec", () => end()));
    try {
      const conn = (s: { port: number; hostKey: string }) => ({ ...target.ssh, port: s.port, hostKey: s.hostKey, dialAttempts: 3 });
      await assert.rejects(
        runOverSsh(conn(refusing), "true", undefined, 10_000),
        /the step runner did not start \(exit 3\)[\s\S]*bash 4.1/,
      );
      assert.strictEqual(refusing.sessions(), 1);
      // The runner was asked for, never the script: three attempts, none said to have partly run.
      await assert.rejects(runOverSsh(conn(dropping), "true", undefined, 10_000), (err: Error) => !/partly run/.test(err.message));
      assert.strictEqual(dropping.sessions(), 3);
    } finally {
      refusing.close();
      dropping.close();
    }
  });
});
