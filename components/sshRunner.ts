/**
 * The step runner: one long-lived bash per SSH channel that runs the steps sent to it, one after
 * the other, each as the plain exec did (`timeout … bash -c <script>`, its stdin fed, its stdout
 * and stderr passed through as they come). A plain exec costs a new session on the server: sshd
 * starts the user's shell, and bash runs the user's ~/.bashrc for every command that comes over
 * SSH (nvm, pyenv, conda…: 0.1 s and more each). The runner pays that once per channel; a step
 * on it costs a few forks. components/ssh.ts runs every step on one (NOSTROMO_SSH_RUNNER=0: a
 * plain exec each, as bench/ssh.ts compares).
 *
 * Protocol, one request at a time (the next only once the answer is complete: the runner's
 * watch on its standard input would read into a request sent early):
 *   ping:     `<mark> ping\n`, answered `<mark>\n` on stdout (an idle runner still there);
 *   request:  `<mark> <stdin bytes> <timeout seconds> <script bytes>\n`, the stdin, the script;
 *   answer:   the step's stdout, then `\n<mark> <exit status>\n` on stdout, and its stderr, then
 *             `\n<mark>\n` on stderr.
 * `mark` is new for every request, so nothing a step prints can end its answer. The runner
 * prints its ready mark on both once it runs: what the login shell printed before is no step's.
 * When the channel's input ends (the deploy is gone), the runner stops the running step (TERM to
 * `timeout`, which passes it to the script's process group) and exits.
 */
import { randomBytes } from "crypto";
import type { ClientChannel } from "ssh2";
import { RunResult, SshConnection, droppedAfterStart, outputTail, ranOutOfTime, shellQuote, timeoutSeconds } from "./ssh";
import { notStartedError, PooledSsh, releaseSsh, retireSsh } from "./sshConnection";

/** The runner (bash ≥ 4.1: `read -N`); `$1` is its ready mark. */
export const RUNNER_SCRIPT = [
  "trap 'exit 1' PIPE TERM HUP",
  `if [ "\${BASH_VERSINFO[0]}" -lt 4 ] || { [ "\${BASH_VERSINFO[0]}" -eq 4 ] && [ "\${BASH_VERSINFO[1]}" -lt 1 ]; }; then echo "the step runner needs bash 4.1 or later; this server has $BASH_VERSION" >&2; exit 3; fi`,
  // The channel's input, for the watch below: a background job's own stdin would be /dev/null.
  "exec 3<&0",
  `printf '%s\\n' "$1"; printf '%s\\n' "$1" >&2`,
  "while IFS=' ' read -r mark ilen secs slen; do",
  `  if [ "$ilen" = ping ]; then printf '%s\\n' "$mark"; continue; fi`,
  "  in=",
  // Byte counts: read counts characters in the locale's encoding, so C for this read only.
  `  if [ "$ilen" -gt 0 ]; then LC_ALL=C read -r -N "$ilen" in || exit 1; fi`,
  `  script=$(head -c "$slen")`,
  `  printf '%s' "$in" | timeout --kill-after=10 "$secs" bash -c "$script" 3<&- &`,
  "  step=$!",
  // The client sends nothing while a step runs: the input's end means the deploy is gone, and
  // the step is stopped. A watch that has ended (its kill fails) says so to the runner.
  `  ( read -r -n 1 _ <&3; kill -TERM "$step" 2>/dev/null ) &`,
  "  watch=$!",
  `  wait "$step"`,
  "  code=$?",
  `  kill "$watch" 2>/dev/null || exit 1`,
  `  wait "$watch" 2>/dev/null`,
  `  printf '\\n%s\\n' "$mark" >&2`,
  `  printf '\\n%s %s\\n' "$mark" "$code"`,
  "done",
].join("\n");

/** A new mark: `nostromo-<what>-<32 hex>`. */
export function newMark(what: "ready" | "end"): string {
  return `nostromo-${what}-${randomBytes(16).toString("hex")}`;
}

/** The exec command that starts a runner under any POSIX login shell. */
export function runnerCommand(readyMark: string, quote: (text: string) => string): string {
  return `exec bash -c ${quote(RUNNER_SCRIPT)} nostromo-runner ${readyMark}`;
}

/** One request to a runner. NUL cannot pass through bash: refused, naming what holds it. */
export function encodeRequest(mark: string, script: string, stdin: string | undefined, timeoutSeconds: number): Buffer {
  if (script.includes("\0")) throw new Error("a step's script cannot hold a NUL byte");
  if (stdin?.includes("\0")) throw new Error("a step's standard input cannot hold a NUL byte");
  const input = Buffer.from(stdin ?? "");
  const text = Buffer.from(script);
  return Buffer.concat([Buffer.from(`${mark} ${input.length} ${timeoutSeconds} ${text.length}\n`), input, text]);
}

/**
 * One stream of a runner's answer (stdout or stderr), bytes as they come: `ended` once its end
 * line is in. The text before the ready mark (the login shell's) is dropped.
 */
export class AnswerStream {
  private chunks: Buffer[] = [];
  /** The exit status on stdout's end line; "" on stderr's. */
  status: string | undefined;

  constructor(
    private readonly mark: string,
    private readonly stdout: boolean,
    private readyMark?: string,
  ) {}

  push(data: Buffer): void {
    this.chunks.push(data);
    if (this.readyMark) {
      const all = Buffer.concat(this.chunks).toString("latin1");
      const at = all.indexOf(`${this.readyMark}\n`);
      if (at < 0) return;
      this.chunks = [Buffer.from(all.slice(at + this.readyMark.length + 1), "latin1")];
      this.readyMark = undefined;
    }
    // The end line is the answer's last: only the tail needs a look.
    const tail = this.tail(this.mark.length + 16).toString("latin1");
    const end = new RegExp(`\n${this.mark}${this.stdout ? " (\\d+)" : "()"}\n$`).exec(tail);
    if (end) this.status = end[1];
  }

  /** Whether the runner has printed its ready mark. */
  get ready(): boolean {
    return this.readyMark === undefined;
  }

  get ended(): boolean {
    return this.status !== undefined;
  }

  /** What came before the ready mark, while it has not come (a runner that could not start says why). */
  beforeReady(): string {
    return this.ready ? "" : Buffer.concat(this.chunks).toString();
  }

  /** The step's output so far (without the end line once ended). */
  text(): string {
    if (!this.ready) return "";
    const all = Buffer.concat(this.chunks);
    if (!this.ended) return all.toString();
    const endLine = Buffer.byteLength(`\n${this.mark}${this.stdout ? ` ${this.status}` : ""}\n`);
    return all.subarray(0, all.length - endLine).toString();
  }

  /** The last n bytes, from as few chunks as hold them. */
  private tail(n: number): Buffer {
    const last: Buffer[] = [];
    let got = 0;
    for (let i = this.chunks.length - 1; i >= 0 && got < n; i--) {
      last.unshift(this.chunks[i]);
      got += this.chunks[i].length;
    }
    const b = Buffer.concat(last);
    return b.subarray(Math.max(0, b.length - n));
  }
}

/** A runner on a pooled connection; `answer` is told of the request it runs, if any. */
export interface Runner {
  readonly stream: ClientChannel;
  /** The exit status of its channel, once the runner ended. */
  exit?: number | string;
  answer?: { data(out: boolean, d: Buffer): void; closed(): void };
}

/**
 * The step on a runner of the connection: an idle one (asked first whether it still answers: a
 * ping), else a new one on a new channel (which says when it is ready). The script goes out only
 * once the runner has answered, so the contract is components/ssh.ts execOn's: failing before that
 * rejects as not started (`stale` when a `reused` connection or an idle runner turned out dead:
 * sshExec goes on to a new connection); from then on, a drop fails the step saying it may have
 * partly run, with its output so far; no answer by 30 s past the timeout resolves `timedOut: "no answer"`.
 */
export function runOn(
  c: PooledSsh,
  reused: boolean,
  conn: SshConnection,
  text: string,
  stdin: string | undefined,
  timeoutMs: number,
): Promise<RunResult> {
  const where = `${conn.user}@${conn.host}:${conn.port}`;
  const mark = newMark("end");
  let request: Buffer;
  try {
    request = encodeRequest(mark, text, stdin, timeoutSeconds(timeoutMs));
  } catch (err) {
    releaseSsh(c);
    return Promise.reject(new Error(`ssh ${where}: ${(err as Error).message}`));
  }
  const idle = c.runners.pop();
  const readyMark = newMark("ready");
  const s = {
    phase: "requested" as "requested" | "started",
    settled: false,
    startedAt: Date.now(),
    runner: undefined as Runner | undefined,
    // An idle runner answers the ping on stdout only; a new one prints its ready mark on both.
    out: new AnswerStream(mark, true, readyMark),
    err: new AnswerStream(mark, false, idle ? undefined : readyMark),
    timer: undefined as ReturnType<typeof setTimeout> | undefined,
    opening: undefined as ReturnType<typeof setTimeout> | undefined,
    watcher: { error: (_err: Error) => undefined as void, close: () => undefined as void },
  };
  return new Promise((resolve, reject) => {
    const finish = (fn: () => void, keepRunner = false) => {
      if (s.settled) return;
      s.settled = true;
      clearTimeout(s.timer);
      clearTimeout(s.opening);
      c.watchers.delete(s.watcher);
      const r = s.runner ?? idle;
      if (r) {
        r.answer = undefined;
        if (keepRunner && !c.retired && r.exit === undefined) c.runners.push(r);
        else r.stream.close();
      }
      releaseSsh(c);
      fn();
    };
    const notStarted = (message: string, dead = false) =>
      finish(() => reject(Object.assign(notStartedError(where, message), dead && (reused || idle) ? { stale: true } : {})));
    const dropped = (why: string) => finish(() => reject(droppedAfterStart(where, why, s.out.text(), s.err.text())));
    const answer = {
      data(out: boolean, d: Buffer) {
        (out ? s.out : s.err).push(d);
        if (s.phase === "requested" && s.out.ready) {
          clearTimeout(s.opening);
          s.phase = "started";
          s.startedAt = Date.now();
          s.runner!.stream.write(request);
        }
        if (!s.out.ended || !s.err.ended) return;
        const code = Number(s.out.status);
        finish(
          () =>
            resolve({
              code,
              stdout: s.out.text(),
              stderr: s.err.text(),
              ...(ranOutOfTime(code, s.startedAt, timeoutMs) ? { timedOut: "killed" as const } : {}),
            }),
          true,
        );
      },
      closed() {
        const r = s.runner!;
        if (s.phase === "started") dropped(r.exit !== undefined ? `the step runner ended (exit ${r.exit})` : "no exit status");
        // A new runner that ended answering (an exit status) cannot run here: never retried.
        else if (r.exit !== undefined && !idle)
          finish(() =>
            reject(
              new Error(`ssh ${where}: the step runner did not start (exit ${r.exit})${outputTail("stderr", s.err.beforeReady()) || "."}`),
            ),
          );
        else notStarted(`the step runner's channel closed before the script was sent`, true);
      },
    };
    const use = (r: Runner) => {
      s.runner = r;
      r.answer = answer;
    };
    s.watcher.error = (err: Error) => (s.phase === "started" ? dropped(err.message) : notStarted(err.message, true));
    s.watcher.close = () => (s.phase === "started" ? dropped("connection closed") : notStarted("connection closed", true));
    c.watchers.add(s.watcher);
    s.timer = setTimeout(
      () => {
        retireSsh(c);
        s.runner?.stream.close();
        if (!s.runner) c.client.destroy();
        finish(() => resolve({ code: null, stdout: s.out.text(), stderr: s.err.text(), timedOut: "no answer" }));
      },
      timeoutSeconds(timeoutMs) * 1000 + 30_000,
    );
    // A runner or connection that answers nothing within the ready timeout is taken for dead: cut
    // (the script was not sent), and the step goes to a new connection.
    if (reused || idle) s.opening = setTimeout(() => c.client.destroy(), 20000);
    if (idle) {
      use(idle);
      idle.stream.write(`${readyMark} ping\n`);
      return;
    }
    try {
      c.client.exec(runnerCommand(readyMark, shellQuote), (err, stream) => {
        if (err) {
          clearTimeout(s.opening);
          if (/^\(SSH\) Channel open failure/.test(err.message) && c.busy > 1) c.cap = c.busy - 1;
          // Only the runner was asked for: the script went nowhere, whatever the failure.
          notStarted(err.message, err.message === "No response from server");
          return;
        }
        const r: Runner = { stream };
        // A write to a channel that has gone: its close tells the step.
        stream.on("error", () => undefined);
        stream.on("data", (d: Buffer) => r.answer?.data(true, d));
        stream.stderr.on("data", (d: Buffer) => r.answer?.data(false, d));
        stream.on("exit", (code: number | null, signal?: string) => (r.exit = code ?? `SIG${signal}`));
        stream.on("close", () => {
          c.runners = c.runners.filter((x) => x !== r);
          r.answer?.closed();
        });
        if (s.settled) stream.close();
        else use(r);
      });
    } catch (err) {
      // ssh2's "Not connected": the connection went before its end was seen.
      notStarted((err as Error).message, true);
    }
  });
}
