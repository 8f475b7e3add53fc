import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { commandProvider } from "../../components/command";
import { runOverSsh } from "../../components/ssh";
import { LocalTarget, freePort, startLocalTarget } from "../../local/target";
import { oddServer } from "../support/oddSshServer";
import { utils } from "ssh2";

const REPO_ROOT = path.resolve(__dirname, "..", "..");

/** `SHA256:…` of an OpenSSH public key line, as ssh-keygen prints it. */
function fingerprint(line: string): string {
  const r = spawnSync("ssh-keygen", ["-l", "-f", "-"], { input: line + "\n", encoding: "utf8" });
  const fp = r.stdout.split(/\s+/)[1];
  assert.match(fp ?? "", /^SHA256:[A-Za-z0-9+/]{43}$/, `ssh-keygen -l: ${r.stdout}${r.stderr}`);
  return fp;
}

/** Shell: sets $p to the sshd process serving this session's connection (the first sshd above it), else 1. */
const OWN_SSHD = `p=$$; while [ "$p" -gt 1 ] && [ "$(ps -o comm= -p "$p")" != sshd ]; do p=$(ps -o ppid= -p "$p" | tr -d ' '); done`;

/** Shell: kills the sshd process serving this session's connection: the connection drops. */
const KILL_OWN_SSHD = `${OWN_SSHD}; [ "$p" -gt 1 ] && kill -9 "$p"`;

/** Shell: prints the client's port of this session's connection: one per TCP connection. */
const CLIENT_PORT = `echo "$SSH_CONNECTION" | cut -d' ' -f2`;

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

  it("a connection dropped after the script started fails the step saying so, with its output so far, and the script ran once", async () => {
    const counter = path.join(dir, "runs");
    // The script kills the sshd process serving its own session (`sshd: user@notty`, the first
    // sshd above it): its connection drops mid-run, and no other session is touched.
    const script = [`echo run >> '${counter}'`, `echo started`, `sleep 0.3`, KILL_OWN_SSHD, `sleep 5`].join("\n");
    await assert.rejects(
      commandProvider.create({ step: "migration", app: "api", connection: connection(), create: script } as any),
      (err: Error) => {
        const where = `${target.ssh.user}@127.0.0.1:${target.ssh.port}`;
        assert.ok(
          err.message.startsWith(
            `ssh ${where}: the connection dropped after the script started; it may have partly run and was not retried`,
          ),
          err.message,
        );
        assert.match(err.message, /\n--- stdout so far ---\nstarted$/);
        return true;
      },
    );
    await new Promise((r) => setTimeout(r, 1500)); // a retry would have appended by now
    assert.strictEqual(fs.readFileSync(counter, "utf8"), "run\n", "the script ran more than once");
  });

  it("sequential execs to a server share one connection, each with its own output", async () => {
    const ports = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const r = await runOverSsh(connection(), `${CLIENT_PORT}; echo out-${i}`, undefined, 10_000);
      const [port, out] = r.stdout.trim().split("\n");
      assert.deepStrictEqual([r.code, out], [0, `out-${i}`], r.stderr);
      ports.add(port);
    }
    assert.strictEqual(ports.size, 1, `TCP connections used: ${[...ports].join(", ")}`);
  });

  it("concurrent execs take at most 8 channels a connection and open more connections, none refused", async () => {
    // One attempt each: a refused channel would fail its exec.
    const runs = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        runOverSsh({ ...connection(), dialAttempts: 1 }, `${CLIENT_PORT}; sleep 1; echo ran-${i}`, undefined, 10_000),
      ),
    );
    const perPort = new Map<string, number>();
    runs.forEach((r, i) => {
      const [port, out] = r.stdout.trim().split("\n");
      assert.deepStrictEqual([r.code, out], [0, `ran-${i}`], r.stderr);
      perPort.set(port, (perPort.get(port) ?? 0) + 1);
    });
    // 8 channels on one connection, 4 on another.
    assert.deepStrictEqual([...perPort.values()].sort(), [4, 8], `channels by connection: ${[...perPort]}`);
  });

  it("a pooled connection that died between two execs: the next runs once on a new connection, costing no attempt", async () => {
    const counter = path.join(dir, "runs-after-death");
    const first = await runOverSsh(connection(), `${OWN_SSHD}; echo "$p"; ${CLIENT_PORT}`, undefined, 10_000);
    const [pid, firstPort] = first.stdout.trim().split("\n");
    assert.ok(Number(pid) > 1, `no sshd above the session: ${first.stdout}`);
    // Killed now, the exec below starts before this process has seen the connection go: it asks
    // the dead connection for a channel. One attempt: a retry counted as one would fail.
    process.kill(Number(pid), "SIGKILL");
    const started = Date.now();
    const next = await runOverSsh({ ...connection(), dialAttempts: 1 }, `echo run >> '${counter}'; ${CLIENT_PORT}`, undefined, 10_000);
    assert.strictEqual(next.code, 0, next.stderr);
    assert.notStrictEqual(next.stdout.trim(), firstPort, "ran on the dead connection");
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
    assert.strictEqual(fs.readFileSync(counter, "utf8"), "run\n", "the script ran more than once");
  });

  it("a pooled connection dropped while its script runs fails the step saying so, and the script ran once", async () => {
    const counter = path.join(dir, "runs-pooled");
    const warm = await runOverSsh(connection(), CLIENT_PORT, undefined, 10_000);
    const script = [`echo run >> '${counter}'`, CLIENT_PORT, `sleep 0.3`, KILL_OWN_SSHD, `sleep 5`].join("\n");
    await assert.rejects(runOverSsh(connection(), script, undefined, 10_000), (err: Error) => {
      assert.match(err.message, /: the connection dropped after the script started; it may have partly run and was not retried/);
      // The same client port as the exec before: it ran on the pooled connection.
      assert.ok(err.message.endsWith(`\n--- stdout so far ---\n${warm.stdout.trim()}`), err.message);
      return true;
    });
    await new Promise((r) => setTimeout(r, 1500)); // a retry would have appended by now
    assert.strictEqual(fs.readFileSync(counter, "utf8"), "run\n", "the script ran more than once");
  });

  it("a process whose execs are done exits at once: pooled connections do not hold it", function () {
    this.timeout(120_000);
    const script = `
      const { runOverSsh } = require("./components/ssh");
      runOverSsh(JSON.parse(process.env.NOSTROMO_TEST_CONN), "echo done", undefined, 10000)
        .then((r) => process.stdout.write(r.stdout + Date.now() + "\\n"));`;
    const r = spawnSync(process.execPath, ["-r", "ts-node/register", "-e", script], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      env: { ...process.env, TS_NODE_TRANSPILE_ONLY: "true", NOSTROMO_TEST_CONN: JSON.stringify(connection()) },
      timeout: 110_000,
    });
    const exitedAt = Date.now();
    const [out, doneAt] = r.stdout.trim().split("\n");
    assert.deepStrictEqual([r.status, out], [0, "done"], r.stderr);
    assert.ok(exitedAt - Number(doneAt) < 1000, `exited ${exitedAt - Number(doneAt)} ms after its exec`);
  });

  it("a step past its timeout is killed on the server, and its output so far is shown", async () => {
    const marker = `nostromo-timeout-marker-${process.pid}`;
    const started = Date.now();
    await assert.rejects(
      commandProvider.create({
        step: "release",
        app: "api",
        connection: connection(),
        create: `echo partial-output; echo some-warning >&2; sleep 60 # ${marker}`,
        timeoutSeconds: 2,
      } as any),
      (err: Error) => {
        assert.match(err.message, /^step timed out after 2 s on \S+@127\.0\.0\.1:\d+ \(the script was killed on the server\)\n/);
        assert.match(err.message, /--- stderr so far ---\nsome-warning\n--- stdout so far ---\npartial-output$/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms`);
    const left = spawnSync("pgrep", ["-f", marker], { encoding: "utf8" });
    assert.strictEqual(left.stdout.trim(), "", "the timed-out script is still running on the server");
  });

  it("a script that exits 124 by itself is not taken for a timeout", async () => {
    await assert.rejects(
      commandProvider.create({ step: "release", connection: connection(), create: "echo own; exit 124", timeoutSeconds: 30 } as any),
      /^Error: step failed on \S+ \(exit 124\)\n--- stdout ---\nown$/,
    );
  });

  it("a refused connection is retried dialAttempts times with a pause, then fails naming where", async () => {
    const closed = await freePort();
    const started = Date.now();
    await assert.rejects(
      runOverSsh({ ...connection(), port: closed, dialAttempts: 3 }, "true", undefined, 10_000),
      new RegExp(`^Error: ssh \\S+@127\\.0\\.0\\.1:${closed}: connect ECONNREFUSED`),
    );
    // Two pauses between three attempts (0.5 s, then 1 s).
    assert.ok(Date.now() - started >= 1400, `no retry: ${Date.now() - started} ms`);
  });

  it("a host key that does not match the pinned one is refused at once, never retried", async () => {
    const other = utils.generateKeyPairSync("ed25519").public;
    const started = Date.now();
    await assert.rejects(
      runOverSsh({ ...connection(), hostKey: other, dialAttempts: 5 }, "true", undefined, 10_000),
      /host key does not match the pinned hostKey; refusing to connect/,
    );
    assert.ok(Date.now() - started < 450, `retried: ${Date.now() - started} ms`);
  });

  it("a channel the server refuses is retried; an exec request the server got before the drop is not (plain exec)", async () => {
    // The plain exec (the step runner's own case is test/integration/sshRunner.test.ts).
    process.env.NOSTROMO_SSH_RUNNER = "0";
    // Refused twice, then a session that answers: three attempts, one run.
    const refusing = await oddServer((n, accept, reject) => {
      if (n < 3) return reject();
      accept().on("exec", (acceptExec) => {
        const stream = acceptExec();
        stream.write('nostromo-result {"ok":"yes"}\n');
        stream.exit(0);
        stream.end();
      });
    });
    const dropping = await oddServer((_n, accept, _reject, end) => accept().on("exec", () => end()));
    try {
      const conn = (s: { port: number; hostKey: string }) => ({ ...connection(), port: s.port, hostKey: s.hostKey, dialAttempts: 3 });
      const ok = await runOverSsh(conn(refusing), "true", undefined, 10_000);
      assert.deepStrictEqual([ok.code, ok.stdout, refusing.sessions()], [0, 'nostromo-result {"ok":"yes"}\n', 3]);
      // The server got the exec request (it may have started the script), then the connection went.
      await assert.rejects(
        runOverSsh(conn(dropping), "true", undefined, 10_000),
        /: the connection dropped after the script started; it may have partly run and was not retried/,
      );
      assert.strictEqual(dropping.sessions(), 1, "the exec request was sent again");
    } finally {
      delete process.env.NOSTROMO_SSH_RUNNER;
      refusing.close();
      dropping.close();
    }
  });

  it("a step runs with the lease exported, and its result line parsed", async () => {
    const made = await commandProvider.create({
      step: "lock",
      connection: connection(),
      create: `printf 'nostromo-result {"lease":"%s"}\\n' "$NOSTROMO_LEASE"`,
      lease: "t/ssh-1",
    } as any);
    assert.deepStrictEqual(made.outs.result, { lease: "t/ssh-1" });
    assert.strictEqual(made.outs.drift, "");
  });

  it("read runs the check on the server: exit 0 no drift, exit 3 drift with its output, anything else fails the refresh", async () => {
    const props = { step: "slot-start", app: "api", connection: connection(), lease: "t/ssh-2", create: "true", result: { slot: "blue" } };
    const check = (body: string) => commandProvider.read!("id-1", { ...props, check: body } as any);

    const fine = await check(`[ "$NOSTROMO_LEASE" = t/ssh-2 ] || exit 1; echo all good`);
    assert.strictEqual(fine.props.drift, "");
    assert.deepStrictEqual(fine.props.result, { slot: "blue" });

    const drifted = await check(`echo "api: no slot runs abc123"; echo "and answers /health" >&2; exit 3`);
    assert.strictEqual(drifted.props.drift, "api: no slot runs abc123\nand answers /health");
    assert.strictEqual(drifted.inputs.drift, drifted.props.drift);

    await assert.rejects(
      check(`echo "pm2: cannot connect" >&2; exit 1`),
      /^Error: refresh: the check of this step failed on \S+@127\.0\.0\.1:\d+ \(exit 1\)\n--- stderr ---\npm2: cannot connect$/,
    );
    const none = await commandProvider.read!("id-1", props as any);
    assert.deepStrictEqual(none.props, props);
  });
});

/** Issue 9: a server with ed25519, RSA and ECDSA host keys (as Debian sets one up); a pin of any type. */
describe("integration: SSH host keys of every type against a real sshd", function () {
  let target: LocalTarget;
  const connection = () => ({ ...target.ssh });
  const where = () => `${target.ssh.user}@127.0.0.1:${target.ssh.port}`;

  before(async () => {
    target = await startLocalTarget({ hostKeyTypes: ["rsa", "ecdsa"] });
  });
  after(async () => {
    await target?.stop();
  });

  for (const type of ["rsa", "ecdsa"]) {
    it(`pinning the server's ${type} host key connects (the server is asked for that type)`, async () => {
      const pin = target.hostKeys[type];
      assert.ok(pin, `the target has no ${type} host key`);
      const r = await runOverSsh({ ...connection(), hostKey: pin, dialAttempts: 1 }, "echo pinned-ok", undefined, 10_000);
      assert.deepStrictEqual([r.code, r.stdout], [0, "pinned-ok\n"]);
    });
  }

  it("a wrong key of the pinned type is refused at once, naming the key offered and how to re-pin", async () => {
    const wrong = utils.generateKeyPairSync("ecdsa", { bits: 256 }).public;
    const started = Date.now();
    await assert.rejects(runOverSsh({ ...connection(), hostKey: wrong, dialAttempts: 5 }, "true", undefined, 10_000), (err: Error) => {
      const lines = err.message.split("\n");
      assert.strictEqual(lines[0], `ssh ${where()}: the server's host key does not match the pinned hostKey; refusing to connect.`);
      assert.strictEqual(
        lines[1],
        `The server offered ecdsa-sha2-nistp256 ${fingerprint(target.hostKeys.ecdsa)}; ` +
          `the pinned hostKey (server.hostKey) is ecdsa-sha2-nistp256 ${fingerprint(wrong)}.`,
      );
      assert.ok(lines[2].includes(`ssh-keyscan -t ecdsa -p ${target.ssh.port} 127.0.0.1`), lines[2]);
      assert.ok(lines[2].includes("server.hostKey"), lines[2]);
      return true;
    });
    // Five attempts would pause 0.5 + 1 + 1.5 + 2 s in between.
    assert.ok(Date.now() - started < 2000, `retried: ${Date.now() - started} ms`);
  });

  it("a wrong RSA key is refused naming the server's RSA key, not its ed25519 one", async () => {
    const wrong = utils.generateKeyPairSync("rsa", { bits: 2048 }).public;
    await assert.rejects(runOverSsh({ ...connection(), hostKey: wrong, dialAttempts: 1 }, "true", undefined, 10_000), (err: Error) => {
      assert.ok(err.message.includes(`The server offered ssh-rsa ${fingerprint(target.hostKeys.rsa)};`), err.message);
      assert.ok(err.message.includes(`ssh-keyscan -t rsa -p ${target.ssh.port} 127.0.0.1`), err.message);
      return true;
    });
  });

  it("the operator tools print a host key mismatch as a message, exit 1, no stack trace", function () {
    this.timeout(120_000);
    const wrong = utils.generateKeyPairSync("ed25519").public;
    const script = `
      const { runMain, sshRun } = require("./tools/common");
      const conn = JSON.parse(process.env.NOSTROMO_TEST_CONN);
      runMain("rollback", async () => { await sshRun(conn, "true"); });`;
    const r = spawnSync(process.execPath, ["-r", "ts-node/register", "-e", script], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      env: {
        ...process.env,
        TS_NODE_TRANSPILE_ONLY: "true",
        NOSTROMO_TEST_CONN: JSON.stringify({ ...connection(), hostKey: wrong, dialAttempts: 3 }),
      },
      timeout: 110_000,
    });
    assert.strictEqual(r.status, 1, r.stderr);
    assert.ok(
      r.stderr.startsWith(`rollback: ssh ${where()}: the server's host key does not match the pinned hostKey; refusing to connect.\n`),
      r.stderr,
    );
    assert.match(r.stderr, new RegExp(`The server offered ssh-ed25519 ${fingerprint(target.ssh.hostKey).replace(/[+/]/g, "\\$&")};`));
    assert.match(r.stderr, /ssh-keyscan -t ed25519 -p \d+ 127\.0\.0\.1/);
    assert.doesNotMatch(r.stderr, /^\s+at /m, "a stack trace was printed");
  });

  it("a server with no key of the pinned type says so at once, not retried", async () => {
    const only = await startLocalTarget(); // ed25519 only
    try {
      const started = Date.now();
      await assert.rejects(
        runOverSsh({ ...only.ssh, hostKey: target.hostKeys.rsa, dialAttempts: 5 }, "true", undefined, 10_000),
        (err: Error) => {
          assert.ok(
            err.message.startsWith(
              `ssh ${only.ssh.user}@127.0.0.1:${only.ssh.port}: the server offers no ssh-rsa host key, the type of the pinned hostKey`,
            ),
            err.message,
          );
          assert.ok(err.message.includes(`ssh-keyscan -p ${only.ssh.port} 127.0.0.1`), err.message);
          return true;
        },
      );
      assert.ok(Date.now() - started < 2000, `retried: ${Date.now() - started} ms`);
    } finally {
      await only.stop();
    }
  });
});
