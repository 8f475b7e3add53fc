/**
 * Where a step's script runs: on a server over SSH (host key pinned), or on the machine running
 * `pulumi` when there is no connection; either way under `timeout`, so a script past its time dies
 * where it runs even if nobody is left to wait for it. Used by the Command provider
 * (components/command.ts) and the operator tools (tools/common.ts).
 *
 * The Command provider is serialized into the state with what it calls: node modules are
 * require()d inside the functions, and nothing here uses anything else from outside. What the
 * runs of one process share (pooled SSH connections) lives on globalThis.
 */

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

/** Exit 124 or 137 after the script's time was up: `timeout` stopped it. */
function ranOutOfTime(code: number | null, startedAt: number, timeoutMs: number): boolean {
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
 * The ssh2 host key algorithms that present a key of this type (the first field of an OpenSSH
 * public key line), so the server shows the pinned key and not another one it also has; none for
 * a type ssh2 would not know (then ssh2's defaults apply and the comparison decides).
 */
export function hostKeyAlgorithms(keyType: string): import("ssh2").ServerHostKeyAlgorithm[] {
  if (keyType === "ssh-rsa") return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"];
  const single = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"] as const;
  return single.filter((a) => a === keyType);
}

/** The key type named inside a public key blob (an SSH string first); "" when it names none. */
export function hostKeyType(blob: Buffer): string {
  if (blob.length < 4) return "";
  const len = blob.readUInt32BE(0);
  const name = len > 0 && len <= 64 && blob.length >= 4 + len ? blob.subarray(4, 4 + len).toString("latin1") : "";
  return /^[a-z0-9@.-]+$/.test(name) ? name : "";
}

/** The key's fingerprint as ssh-keygen -l and ssh print it: `SHA256:<base64, no padding>`. */
export function hostKeyFingerprint(blob: Buffer): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createHash } = require("crypto") as typeof import("crypto");
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** ssh-keyscan's name for a key type (its -t): rsa, ecdsa, ed25519. */
export function keyscanType(keyType: string): string {
  if (keyType === "ssh-rsa") return "rsa";
  if (keyType.startsWith("ecdsa-")) return "ecdsa";
  if (keyType === "ssh-ed25519") return "ed25519";
  return keyType;
}

/**
 * One SSH exec of the script under the server's `timeout`, host key pinned, on a channel of a
 * pooled connection (see sshConnection). A failure before the script started is thrown marked
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
  const pooled = await sshConnection(conn, false);
  try {
    return await execOn(pooled.c, pooled.reused, conn, text, stdin, timeoutMs);
  } catch (err) {
    if (!(err as { stale?: boolean }).stale) throw err;
  }
  const fresh = await sshConnection(conn, true);
  return execOn(fresh.c, false, conn, text, stdin, timeoutMs);
}

/** An SSH connection of this process (see sshConnection). */
interface PooledSsh {
  /** Which server, as who, with which key and pin: only execs of the same key share it. */
  readonly key: string;
  readonly client: import("ssh2").Client;
  readonly socket: import("net").Socket;
  /** Resolves once authenticated; rejects with the failure to connect, worded as sshExec throws it. */
  readonly ready: Promise<void>;
  /** Execs holding it: running, or waiting for it to be ready. */
  busy: number;
  /** Channels it carries at once. */
  cap: number;
  /** Out of the pool (it failed, closed, idled, or pooling is off): ended once no exec holds it. */
  retired: boolean;
  idleTimer?: ReturnType<typeof setTimeout>;
  /** The execs on it, told when the connection fails or closes. */
  readonly watchers: Set<{ error(err: Error): void; close(): void }>;
}

/**
 * An authenticated connection to run an exec on: a pooled one to the same server (host, port,
 * user, key, pin) with a free channel unless `fresh`, else a new one, pooled for later execs. Key
 * exchange and auth cost 0.5–0.9 s a step under load; a channel costs a round trip. At most 8
 * channels a connection (sshd's MaxSessions is 10 by default): when all are busy another is
 * opened. A connection leaves the pool as soon as it fails, ends or closes, and is closed after
 * 15 s unused; an unused one never keeps the process alive. The pool is on globalThis: the
 * provider's functions are serialized one by one and share nothing else, yet run in one process
 * for the whole update. Steps of an older state (a delete) run their own copy of this code in the
 * same process: a change to PooledSsh needs a new global name. NOSTROMO_SSH_POOL=0: a new
 * connection for each exec, closed after it (bench/ssh.ts compares both).
 */
async function sshConnection(conn: SshConnection, fresh: boolean): Promise<{ c: PooledSsh; reused: boolean }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createHash } = require("crypto") as typeof import("crypto");
  const g = globalThis as { __nostromoSshPool?: Map<string, PooledSsh[]> };
  const pool = g.__nostromoSshPool ?? (g.__nostromoSshPool = new Map<string, PooledSsh[]>());
  const pin = conn.hostKey?.trim().split(/\s+/)[1] ?? (conn.insecureIgnoreHostKey ? "insecure" : "");
  const keyHash = createHash("sha256").update(conn.privateKey).digest("hex");
  const key = [conn.host, conn.port, conn.user, keyHash, pin].join(" ");
  const pooling = process.env.NOSTROMO_SSH_POOL !== "0";
  const found = pooling && !fresh ? pool.get(key)?.find((p) => !p.retired && p.busy < p.cap) : undefined;
  const c = found ?? sshDial(conn, key, pooling);
  if (!found && pooling) pool.set(key, [...(pool.get(key) ?? []), c]);
  c.busy++;
  clearTimeout(c.idleTimer);
  c.socket.ref();
  try {
    await c.ready;
  } catch (err) {
    releaseSsh(c);
    throw err;
  }
  return { c, reused: !!found };
}

/** Takes the connection out of the pool; ends it now if no exec holds it. */
function retireSsh(c: PooledSsh): void {
  const g = globalThis as { __nostromoSshPool?: Map<string, PooledSsh[]> };
  const left = (g.__nostromoSshPool?.get(c.key) ?? []).filter((p) => p !== c);
  if (left.length > 0) g.__nostromoSshPool?.set(c.key, left);
  else g.__nostromoSshPool?.delete(c.key);
  c.retired = true;
  clearTimeout(c.idleTimer);
  if (c.busy === 0) c.client.end();
}

/** An exec is done with the connection: unused, it waits 15 s for the next without holding the process. */
function releaseSsh(c: PooledSsh): void {
  c.busy--;
  if (c.busy > 0) return;
  if (c.retired) {
    c.client.end();
    return;
  }
  c.socket.unref();
  c.idleTimer = setTimeout(() => retireSsh(c), 15_000);
  c.idleTimer.unref();
}

/** The error of a failure before the script started: retried by runOverSsh. */
function notStartedError(where: string, message: string): Error {
  return Object.assign(new Error(`ssh ${where}: ${message}`), { retryable: true });
}

/**
 * A new connection, host key pinned (the server asked for the pinned key's type). Its `ready`
 * rejects with sshExec's errors: a host key mismatch or no key of the pinned type (never
 * retried), else a retryable one. A connection that fails never serves an exec.
 */
function sshDial(conn: SshConnection, key: string, pooling: boolean): PooledSsh {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Client } = require("ssh2") as typeof import("ssh2");
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const net = require("net") as typeof import("net");
  const where = `${conn.user}@${conn.host}:${conn.port}`;
  // Everything the handlers share, declared first (serialized code: no use before declaration).
  const d = {
    state: "connecting" as "connecting" | "ready" | "failed",
    hostKeyMismatch: false,
    /** The host key the server offered, as `<type> SHA256:<fingerprint>`. */
    offered: "",
    resolve: () => undefined as void,
    reject: (_err: Error) => undefined as void,
  };
  const [pinText, pinned] = conn.hostKey?.trim().split(/\s+/) ?? [];
  // The pin's type as its blob names it (else as its line does): the server is asked for that type.
  const pinBlob = pinned ? Buffer.from(pinned, "base64") : undefined;
  const pinType = pinBlob ? hostKeyType(pinBlob) || pinText : "";
  const pinAlgorithms = hostKeyAlgorithms(pinType);
  const rePin = (type: string) =>
    `If the server's key changed on purpose, re-pin it: run \`ssh-keyscan -t ${keyscanType(type)} -p ${conn.port} ${conn.host}\` ` +
    `and set the config key server.hostKey to the "<type> <key>" part of its line (e.g. pulumi config set --path server.hostKey '…').`;
  const ready = new Promise<void>((resolve, reject) => Object.assign(d, { resolve, reject }));
  const c: PooledSsh = {
    key,
    client: new Client(),
    // Our own socket, to unref it while the connection is unused. No Nagle: each exec is a few
    // small request/answer round trips, which it would hold back for the delayed ACK.
    socket: net.connect({ host: conn.host, port: conn.port, noDelay: true }),
    ready,
    busy: 0,
    cap: 8,
    retired: !pooling,
    watchers: new Set(),
  };
  const failed = (err: Error) => {
    if (d.state !== "connecting") return;
    d.state = "failed";
    retireSsh(c);
    d.reject(err);
  };
  c.client.on("ready", () => {
    d.state = "ready";
    d.resolve();
  });
  c.client.on("error", (err: Error) => {
    if (d.state === "ready") {
      retireSsh(c);
      for (const w of [...c.watchers]) w.error(err);
    } else if (d.hostKeyMismatch)
      failed(
        new Error(
          `ssh ${where}: the server's host key does not match the pinned hostKey; refusing to connect.\n` +
            `The server offered ${d.offered}; the pinned hostKey (server.hostKey) is ${pinType} ${hostKeyFingerprint(pinBlob!)}.\n` +
            rePin(d.offered.split(" ")[0]),
        ),
      );
    else if (pinAlgorithms.length > 0 && /no matching host key format/.test(err.message))
      // The server has no key of the pinned type: it will not grow one by the next attempt.
      failed(
        new Error(
          `ssh ${where}: the server offers no ${pinType} host key, the type of the pinned hostKey (server.hostKey); refusing to connect.\n` +
            rePin(pinType).replace(/-t \S+ /, ""),
        ),
      );
    else failed(notStartedError(where, err.message));
  });
  c.client.on("end", () => retireSsh(c));
  c.client.on("close", () => {
    retireSsh(c);
    failed(notStartedError(where, "connection closed before the script started"));
    for (const w of [...c.watchers]) w.close();
  });
  c.client.connect({
    sock: c.socket,
    host: conn.host,
    port: conn.port,
    username: conn.user,
    privateKey: conn.privateKey,
    readyTimeout: 20000,
    // Ask for the pinned key's type: a server with several host keys (ed25519, ecdsa, rsa, as
    // Debian makes them) would otherwise present the one ssh2 likes best.
    ...(pinAlgorithms.length > 0 ? { algorithms: { serverHostKey: pinAlgorithms } } : {}),
    hostVerifier: (hostKey: Buffer) => {
      if (conn.insecureIgnoreHostKey && !pinned) return true;
      d.hostKeyMismatch = !pinBlob!.equals(hostKey);
      d.offered = `${hostKeyType(hostKey) || "unknown-type"} ${hostKeyFingerprint(hostKey)}`;
      return !d.hostKeyMismatch;
    },
  });
  return c;
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
  const tail = (label: string, out: string) =>
    out.trim() ? `\n--- ${label} so far ---\n${out.trim().split("\n").slice(-30).join("\n")}` : "";
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
    const dropped = (why: string) =>
      finish(() =>
        reject(
          new Error(
            `ssh ${where}: the connection dropped after the script started; it may have partly run and was not retried (${why})` +
              tail("stderr", s.stderr) +
              tail("stdout", s.stdout),
          ),
        ),
      );
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
