/**
 * Where a step's script runs: on a server over SSH (host key pinned), or on the machine running
 * `pulumi` when there is no connection; either way under `timeout`, so a script past its time dies
 * where it runs even if nobody is left to wait for it. Used by the Command provider
 * (components/command.ts) and the operator tools (tools/common.ts).
 *
 * The Command provider is serialized into the state with what it calls: node modules are
 * require()d inside the functions. The connections (pooled, host key pinned) are
 * components/sshConnection.ts's.
 */
import { notStartedError, PooledSsh, releaseSsh, retireSsh, sshConnection } from "./sshConnection";
import { runOn } from "./sshRunner";

/**
 * How to reach a server over SSH. The private key is a Pulumi secret; the server's host key is
 * pinned (an OpenSSH public key line of any type ssh2 knows: `ssh-ed25519 AAAA…`, `ssh-rsa AAAA…`,
 * `ecdsa-sha2-nistp256 AAAA…`; the server is asked for that type) unless `insecureIgnoreHostKey`.
 */
export interface SshConnection {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly privateKey: string;
  readonly hostKey?: string;
  readonly insecureIgnoreHostKey?: boolean;
  /** Attempts to connect before giving up (the server may still be booting). */
  readonly dialAttempts?: number;
  /** Milliseconds each attempt may take, TCP connect and SSH handshake (default 20 000). */
  readonly readyTimeoutMs?: number;
}

export interface RunResult {
  /** The script's exit status; null when none came (the server stopped answering). */
  code: number | null;
  stdout: string;
  stderr: string;
  /**
   * Set when the script ran out of time: "killed" by `timeout` where it ran, or "no answer" when
   * the server did not answer by 30 s past the timeout (its `timeout` still kills the script).
   */
  timedOut?: "killed" | "no answer";
}

/** Whole seconds of `timeout` for a timeout in milliseconds. */
export function timeoutSeconds(timeoutMs: number): number {
  return Math.max(1, Math.ceil(timeoutMs / 1000));
}

/**
 * The script under `timeout`: TERM to its whole process group when its time is up (`sleep` and
 * the like too), KILL 10 s later. Exit 124 or 137 then, which the runners check against the clock
 * (a script may exit 124 by itself).
 */
export function underTimeout(text: string, timeoutMs: number): string[] {
  return ["timeout", "--kill-after=10", String(timeoutSeconds(timeoutMs)), "bash", "-c", text];
}

/** The last 30 lines of a step's output so far, labelled, for an error; "" when there is none. */
export function outputTail(label: string, out: string): string {
  return out.trim() ? `\n--- ${label} so far ---\n${out.trim().split("\n").slice(-30).join("\n")}` : "";
}

/** A connection lost once the script may have started (never retried), with the output so far. */
export function droppedAfterStart(where: string, why: string, stdout: string, stderr: string): Error {
  return new Error(
    `ssh ${where}: the connection dropped after the script started; it may have partly run and was not retried (${why})` +
      outputTail("stderr", stderr) +
      outputTail("stdout", stdout),
  );
}

/** Exit 124 or 137 after the script's time was up: `timeout` stopped it. */
export function ranOutOfTime(code: number | null, startedAt: number, timeoutMs: number): boolean {
  return (code === 124 || code === 137) && Date.now() - startedAt >= timeoutSeconds(timeoutMs) * 1000 - 50;
}

/** Same rule as lib/shell.ts `quote`, repeated here because this code is serialized into the state. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Runs the script with bash on this machine (notifications), under `timeout`. */
export function runLocally(text: string, stdin: string | undefined, timeoutMs: number): Promise<RunResult> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { spawn } = require("child_process") as typeof import("child_process");
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = underTimeout(text, timeoutMs);
    const startedAt = Date.now();
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code: number | null) =>
      resolve({ code, stdout, stderr, ...(ranOutOfTime(code, startedAt, timeoutMs) ? { timedOut: "killed" as const } : {}) }),
    );
    child.stdin.on("error", () => undefined);
    child.stdin.end(stdin ?? "");
  });
}

/**
 * Runs the script over SSH, retrying (with a growing pause) only failures before it started:
 * connection refused or reset, handshake, ready timeout, a refused channel. A host key mismatch
 * (or a server with no key of the pinned type) is never retried, and neither is anything after the script started: it never runs twice.
 * (A pooled connection found dead before the channel opened costs no attempt: sshExec goes on to a new one.)
 */
export async function runOverSsh(conn: SshConnection, text: string, stdin: string | undefined, timeoutMs: number): Promise<RunResult> {
  const attempts = Math.max(1, conn.dialAttempts ?? 10);
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      return await sshExec(conn, text, stdin, timeoutMs);
    } catch (err) {
      lastError = err as Error;
      if (!(err as { retryable?: boolean }).retryable || attempt === attempts) break;
      await new Promise((r) => setTimeout(r, Math.min(500 * attempt, 3000)));
    }
  }
  throw lastError ?? new Error("ssh: no attempt made");
}

/**
 * One SSH exec of the script under the server's `timeout`, host key pinned, on a channel of a
 * pooled connection (see sshConnection): on a step runner of it (components/sshRunner.ts), or as a
 * plain exec when pooling or the runner is off. A failure before the script started is thrown marked
 * `retryable`; a pooled connection found dead when the exec is asked for (nothing ran) is not a
 * failure: the exec runs at once on a new connection. Once the exec request is out, the script
 * may run: a connection lost from then on, before an exit status came, throws (not retryable)
 * saying so, with the output so far. If the server has not answered 30 s past the timeout, the
 * result has no exit code, `timedOut: "no answer"` and the output so far.
 */
export async function sshExec(conn: SshConnection, text: string, stdin: string | undefined, timeoutMs: number): Promise<RunResult> {
  if (!conn.hostKey?.trim().split(/\s+/)[1] && !conn.insecureIgnoreHostKey) {
    const where = `${conn.user}@${conn.host}:${conn.port}`;
    throw new Error(`ssh ${where}: no host key pinned; set the server's hostKey or opt out with insecureIgnoreHostKey`);
  }
  // On a pooled connection, a step runner (components/sshRunner.ts) saves each step a new session.
  const run = process.env.NOSTROMO_SSH_POOL !== "0" && process.env.NOSTROMO_SSH_RUNNER !== "0" ? runOn : execOn;
  const pooled = await sshConnection(conn, false);
  try {
    return await run(pooled.c, pooled.reused, conn, text, stdin, timeoutMs);
  } catch (err) {
    if (!(err as { stale?: boolean }).stale) throw err;
  }
  const fresh = await sshConnection(conn, true);
  return run(fresh.c, false, conn, text, stdin, timeoutMs);
}

/**
 * The exec on a channel of the connection, as sshExec describes it. Only the channel is closed
 * when it ends; the connection stays for the next exec. Failing before the channel opened because
 * a `reused` connection was dead rejects marked `stale` (nothing ran).
 */
function execOn(
  c: PooledSsh,
  reused: boolean,
  conn: SshConnection,
  text: string,
  stdin: string | undefined,
  timeoutMs: number,
): Promise<RunResult> {
  const where = `${conn.user}@${conn.host}:${conn.port}`;
  // Everything the handlers share, declared first (serialized code: no use before declaration).
  const s = {
    phase: "requested" as "requested" | "started",
    settled: false,
    lost: "",
    stdout: "",
    stderr: "",
    startedAt: Date.now(),
    code: null as number | null,
    timer: undefined as ReturnType<typeof setTimeout> | undefined,
    opening: undefined as ReturnType<typeof setTimeout> | undefined,
    stream: undefined as import("ssh2").ClientChannel | undefined,
    /** Told by the connection when it fails or closes; set below. */
    watcher: { error: (_err: Error) => undefined as void, close: () => undefined as void },
  };
  return new Promise((resolve, reject) => {
    const finish = (fn: () => void) => {
      if (s.settled) return;
      s.settled = true;
      clearTimeout(s.timer);
      clearTimeout(s.opening);
      c.watchers.delete(s.watcher);
      releaseSsh(c);
      fn();
    };
    const notStarted = (message: string, dead = false) =>
      finish(() => reject(Object.assign(notStartedError(where, message), dead && reused ? { stale: true } : {})));
    const dropped = (why: string) => finish(() => reject(droppedAfterStart(where, why, s.stdout, s.stderr)));
    const exited = () =>
      finish(() =>
        resolve({
          code: s.code,
          stdout: s.stdout,
          stderr: s.stderr,
          ...(ranOutOfTime(s.code, s.startedAt, timeoutMs) ? { timedOut: "killed" as const } : {}),
        }),
      );
    // After an exit status, a lost connection changes nothing: the script ended.
    const lostAfterStart = (why: string) => (s.code === null ? dropped(why) : exited());
    s.watcher.error = (err: Error) => {
      if (s.phase === "started") lostAfterStart(err.message);
      else s.lost = err.message; // the exec callback decides, on close
    };
    s.watcher.close = () => {
      if (s.phase === "started") lostAfterStart(s.lost || "connection closed");
      else {
        // ssh2 answers the pending exec request right after this event; should it not, the
        // request was out and the script may run.
        s.lost = s.lost || "connection closed";
        setImmediate(() => dropped(s.lost));
      }
    };
    c.watchers.add(s.watcher);
    // Past the server's own `timeout` (and its 10 s to KILL): the server no longer answers. Its
    // connection takes no new exec; a connection that has not opened the channel yet is cut, so
    // that a late answer cannot start the script.
    s.timer = setTimeout(
      () => {
        retireSsh(c);
        if (s.stream) s.stream.close();
        else c.client.destroy();
        finish(() => resolve({ code: null, stdout: s.stdout, stderr: s.stderr, timedOut: "no answer" }));
      },
      timeoutSeconds(timeoutMs) * 1000 + 30_000,
    );
    // A reused connection that opens no channel within the ready timeout is taken for dead: cut
    // (so that a late answer cannot start the script), and the exec goes to a new connection.
    if (reused) s.opening = setTimeout(() => c.client.destroy(), 20000);
    const onExec = (err: Error | undefined, stream: import("ssh2").ClientChannel) => {
      clearTimeout(s.opening);
      if (err) {
        // The server refused the channel or the exec (it answered, so nothing ran), or the
        // connection dropped before the channel opened (ssh2's "No response from server"):
        // retried. A drop after the exec request went out: the script may run; not retried.
        if (err.message === "No response from server") notStarted(err.message, true);
        else if (s.lost) dropped(s.lost);
        else {
          // A channel refused beside others: the server allows fewer sessions than the cap.
          if (/^\(SSH\) Channel open failure/.test(err.message) && c.busy > 1) c.cap = c.busy - 1;
          notStarted(err.message);
        }
        return;
      }
      s.phase = "started";
      s.startedAt = Date.now();
      s.stream = stream;
      stream.on("data", (d: Buffer) => (s.stdout += d.toString()));
      stream.stderr.on("data", (d: Buffer) => (s.stderr += d.toString()));
      // Killed by a signal on the server: no exit code, but an answer all the same.
      stream.on("exit", (code: number | null, signal?: string) => {
        s.code = code ?? (signal ? 128 : null);
        if (signal) s.stderr += `killed by SIG${signal} on the server\n`;
      });
      stream.on("close", () => lostAfterStart(s.lost || "no exit status"));
      stream.end(stdin ?? "");
    };
    try {
      c.client.exec(underTimeout(text, timeoutMs).map(shellQuote).join(" "), onExec);
    } catch (err) {
      // ssh2's "Not connected": the connection went before its end was seen.
      notStarted((err as Error).message, true);
    }
  });
}
