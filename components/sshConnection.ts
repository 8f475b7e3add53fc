/**
 * The SSH connections of one process (components/ssh.ts runs each exec on a channel of one):
 * dialled with the host key pinned, pooled per server, retired when they fail, close or idle.
 *
 * Serialized into the state with the Command provider, as components/ssh.ts is: node modules
 * are require()d inside the functions; what the runs of one process share lives on globalThis.
 */
import type { SshConnection } from "./ssh";
import type { Runner } from "./sshRunner";

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

/** An SSH connection of this process (see sshConnection). */
export interface PooledSsh {
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
  /** Its step runners (components/sshRunner.ts) that wait for a step. */
  runners: Runner[];
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
export async function sshConnection(conn: SshConnection, fresh: boolean): Promise<{ c: PooledSsh; reused: boolean }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createHash } = require("crypto") as typeof import("crypto");
  const g = globalThis as { __nostromoSshPool2?: Map<string, PooledSsh[]> };
  const pool = g.__nostromoSshPool2 ?? (g.__nostromoSshPool2 = new Map<string, PooledSsh[]>());
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
export function retireSsh(c: PooledSsh): void {
  const g = globalThis as { __nostromoSshPool2?: Map<string, PooledSsh[]> };
  const left = (g.__nostromoSshPool2?.get(c.key) ?? []).filter((p) => p !== c);
  if (left.length > 0) g.__nostromoSshPool2?.set(c.key, left);
  else g.__nostromoSshPool2?.delete(c.key);
  c.retired = true;
  clearTimeout(c.idleTimer);
  if (c.busy === 0) c.client.end();
}

/** An exec is done with the connection: unused, it waits 15 s for the next without holding the process. */
export function releaseSsh(c: PooledSsh): void {
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
export function notStartedError(where: string, message: string): Error {
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
    // TCP keepalive (probes after 5 s idle, every second, 10 unanswered: Node's libuv sets the
    // last two): a server gone silent, off the network with no reset, fails an exec on it as
    // dropped within about 15 s, not after the step's timeout. (ssh2's own keepalive is a timer
    // that would hold the process alive while the connection waits unused.)
    socket: net.connect({ host: conn.host, port: conn.port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 5000 }),
    ready,
    busy: 0,
    cap: 8,
    retired: !pooling,
    watchers: new Set(),
    runners: [],
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
    c.runners = [];
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
    readyTimeout: conn.readyTimeoutMs ?? 20000,
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
