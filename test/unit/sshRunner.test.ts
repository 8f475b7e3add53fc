import * as assert from "assert";
import { spawn } from "child_process";
import { AnswerStream, encodeRequest, newMark, RUNNER_SCRIPT } from "../../components/sshRunner";

/** Feeds `bytes` to a stream one byte at a time: every split a TCP stream may make. */
function byteByByte(stream: AnswerStream, bytes: Buffer): void {
  for (const b of bytes) stream.push(Buffer.from([b]));
}

describe("the step runner's framing (components/sshRunner.ts)", () => {
  it("a request counts bytes, not characters: stdin first, then the script", () => {
    const r = encodeRequest("m1", "echo é", "ünï\n", 30);
    assert.strictEqual(r.toString(), "m1 6 30 7\nünï\necho é");
  });

  it("a NUL byte in the script or its stdin is refused, naming which", () => {
    assert.throws(() => encodeRequest("m", "a\0b", "", 1), /script cannot hold a NUL byte/);
    assert.throws(() => encodeRequest("m", "true", "x\0", 1), /standard input cannot hold a NUL byte/);
  });

  it("an answer split anywhere (inside UTF-8 and the end line) reads back exactly; the login shell's text before the ready mark is dropped", () => {
    const mark = newMark("end");
    const ready = newMark("ready");
    const out = new AnswerStream(mark, true, ready);
    const body = "héllo\nno newline at the end ✓";
    byteByByte(out, Buffer.from(`Welcome to the bashrc!\n${ready}\n${body}\n${mark} 7\n`));
    assert.deepStrictEqual([out.ended, out.status, out.text()], [true, "7", body]);
    const err = new AnswerStream(mark, false);
    byteByByte(err, Buffer.from(`warn\n\n${mark}\n`));
    assert.deepStrictEqual([err.ended, err.text()], [true, "warn\n"]);
  });

  it("a line that only looks like an end line (another mark, or not the last) does not end the answer", () => {
    const mark = newMark("end");
    const out = new AnswerStream(mark, true);
    out.push(Buffer.from(`\n${newMark("end")} 0\n`));
    assert.strictEqual(out.ended, false);
    out.push(Buffer.from(`\n${mark} 0\nmore`));
    assert.strictEqual(out.ended, false);
    assert.ok(out.text().endsWith("more"));
  });

  it("the runner, under bash here, runs steps in turn: exact stdin and output, exit status, the locale left to the step, a ping", async () => {
    const runner = spawn("bash", ["-c", RUNNER_SCRIPT, "runner", "READY"], { env: { ...process.env, LANG: "C.UTF-8" } });
    let stdout = "";
    let stderr = "";
    runner.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    // The client's rule: the next request only once the last answer is in.
    const until = (re: RegExp) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${re} in ${JSON.stringify(stdout)}`)), 5000);
        const check = () => re.test(stdout) && (clearTimeout(t), runner.stdout.off("data", on), resolve());
        const on = (d: Buffer) => ((stdout += d.toString()), check());
        runner.stdout.on("data", on);
        check();
      });
    await until(/^READY\n/);
    runner.stdin.write(encodeRequest("m1", 'cat; printf "|%s|" "${LC_ALL-unset}"; echo oops >&2; exit 5', "a\\b 'c' \r\nü", 10));
    await until(/\nm1 \d+\n$/);
    runner.stdin.write("m2 ping\n");
    await until(/\nm2\n$/);
    runner.stdin.write(encodeRequest("m3", "echo second", "", 10));
    await until(/\nm3 \d+\n$/);
    runner.stdin.end();
    const exit = await new Promise((resolve) => runner.on("close", resolve));
    assert.strictEqual(stdout, "READY\na\\b 'c' \r\nü|unset|\nm1 5\nm2\nsecond\n\nm3 0\n");
    assert.strictEqual(stderr, "READY\noops\n\nm1\n\nm3\n");
    assert.strictEqual(exit, 0);
  });

  it("the runner stops the running step when its input ends (the deploy is gone), and exits", async () => {
    const runner = spawn("bash", ["-c", RUNNER_SCRIPT, "runner", "READY"]);
    let stdout = "";
    runner.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    runner.stdin.write(encodeRequest("m1", "echo $$; sleep 30; echo finished", "", 60));
    const deadline = Date.now() + 5000;
    while (!/READY\n\d+\n/.test(stdout) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const pid = Number(/READY\n(\d+)\n/.exec(stdout)?.[1]);
    assert.ok(pid > 1, stdout);
    const started = Date.now();
    runner.stdin.end();
    const exit = await new Promise((resolve) => runner.on("close", resolve));
    assert.strictEqual(exit, 1);
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
    await new Promise((r) => setTimeout(r, 100));
    assert.throws(() => process.kill(pid, 0), /ESRCH/, "the step still runs");
    assert.ok(!stdout.includes("finished"));
  });
});
