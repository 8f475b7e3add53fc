import * as pulumi from "@pulumi/pulumi";
import type { StepKind } from "../lib/steps";

/**
 * How to reach a server over SSH. The private key is a Pulumi secret; the server's host key is
 * pinned (an OpenSSH public key line, `ssh-ed25519 AAAA…`) unless `insecureIgnoreHostKey` is set.
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

export interface CommandArgs {
  /** What the step is (lib/steps.ts): the policy pack, tools and mocks find steps by it. */
  readonly step: StepKind;
  /** The app the step belongs to, if any. */
  readonly app?: string;
  /**
   * This update's hold on the server lock (`<stack>/<update id>`), exported to the script as
   * NOSTROMO_LEASE. Not an input that re-runs the step: it changes on every `pulumi up`.
   */
  readonly lease?: pulumi.Input<string>;
  /**
   * Run by `pulumi refresh` (and `up --refresh`): asks the server whether what this step made is
   * still there. Exit 0: in sync; exit 3: drifted, its output says how, and the next `up` runs the
   * step again; anything else fails the refresh.
   */
  readonly check?: pulumi.Input<string>;
  /** Where to run: over SSH, or on the machine running `pulumi` when absent. */
  readonly connection?: pulumi.Input<SshConnection>;
  /** Script run on create, and on update when `update` is absent. */
  readonly create: pulumi.Input<string>;
  /** Script run when an input changes (defaults to `create`). */
  readonly update?: pulumi.Input<string>;
  /** Script run when the resource is deleted. */
  readonly delete?: pulumi.Input<string>;
  /** Fed to the script's standard input: the only way secrets reach a script. */
  readonly stdin?: pulumi.Input<string>;
  /** Any change re-runs the step (e.g. the resolved commit SHA, the script's hash). */
  readonly triggers?: pulumi.Input<unknown[]>;
  /** Seconds before the script is killed and the step fails. */
  readonly timeoutSeconds?: pulumi.Input<number>;
}

interface CommandInputs {
  step: StepKind;
  app?: string;
  lease?: string;
  check?: string;
  connection?: SshConnection;
  create: string;
  update?: string;
  delete?: string;
  stdin?: string;
  triggers?: unknown[];
  timeoutSeconds?: number;
}

/** Inputs whose change re-runs the step; a change of `connection` alone (a rotated key) does not. */
const RERUN_KEYS = ["create", "update", "stdin", "triggers"] as const;

/**
 * Runs a script through the engine, as @pulumi/command's Command does: create/update/delete
 * scripts, triggers, stdin, stdout/stderr outputs. It is a dynamic provider because the
 * command provider's Go module cannot be had from the module proxy on our machines (README).
 */
const commandProvider: pulumi.dynamic.ResourceProvider = {
  async diff(_id: string, olds: CommandInputs, news: CommandInputs) {
    const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
    const changes = RERUN_KEYS.filter((k) => !same(olds[k], news[k]));
    const moved = !same(olds.connection?.host, news.connection?.host) || !same(olds.connection?.port, news.connection?.port);
    const stale = !same(olds.delete, news.delete) || !same(olds.connection, news.connection);
    return {
      changes: changes.length > 0 || moved || stale,
      replaces: moved ? ["connection"] : [],
      deleteBeforeReplace: false,
    };
  },
  async create(inputs: CommandInputs) {
    const out = await runStep(inputs, inputs.create);
    return { id: `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`, outs: { ...inputs, ...out } };
  },
  async update(_id: string, olds: CommandInputs & { stdout?: string; stderr?: string }, news: CommandInputs) {
    const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
    const rerun = RERUN_KEYS.some((k) => !same(olds[k], news[k]));
    const out = rerun ? await runStep(news, news.update ?? news.create) : { stdout: olds.stdout ?? "", stderr: olds.stderr ?? "" };
    return { outs: { ...news, ...out } };
  },
  async delete(_id: string, props: CommandInputs) {
    if (props.delete) {
      await runStep(props, props.delete);
    }
  },
};

/** Runs one script locally (bash) or over SSH, returning its output or throwing with its tail. */
async function runStep(inputs: CommandInputs, text: string): Promise<{ stdout: string; stderr: string }> {
  const timeoutMs = (inputs.timeoutSeconds ?? 1800) * 1000;
  const result = inputs.connection
    ? await runOverSsh(inputs.connection, text, inputs.stdin, timeoutMs)
    : await runLocally(text, inputs.stdin, timeoutMs);
  const trim = (s: string) => s.replace(/\n+$/, "");
  if (result.code !== 0) {
    const where = inputs.connection ? `${inputs.connection.user}@${inputs.connection.host}:${inputs.connection.port}` : "localhost";
    const tail = (s: string) => trim(s).split("\n").slice(-30).join("\n");
    throw new Error(
      `step failed on ${where} (${result.code === null ? "timed out or killed" : `exit ${result.code}`})` +
        (result.stderr.trim() ? `\n--- stderr ---\n${tail(result.stderr)}` : "") +
        (result.stdout.trim() ? `\n--- stdout ---\n${tail(result.stdout)}` : ""),
    );
  }
  return { stdout: trim(result.stdout), stderr: trim(result.stderr) };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runLocally(text: string, stdin: string | undefined, timeoutMs: number): Promise<RunResult> {
  const { spawn } = require("child_process") as typeof import("child_process");
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", text], { stdio: ["pipe", "pipe", "pipe"], timeout: timeoutMs });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code: number | null) => resolve({ code, stdout, stderr }));
    child.stdin.on("error", () => undefined);
    child.stdin.end(stdin ?? "");
  });
}

async function runOverSsh(conn: SshConnection, text: string, stdin: string | undefined, timeoutMs: number): Promise<RunResult> {
  const attempts = Math.max(1, conn.dialAttempts ?? 10);
  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      return await sshExec(conn, text, stdin, timeoutMs);
    } catch (err) {
      lastError = err as Error;
      // Only connection failures are retried; a host key mismatch never is.
      if (!(err as { retryable?: boolean }).retryable || attempt === attempts) break;
      await new Promise((r) => setTimeout(r, Math.min(500 * attempt, 3000)));
    }
  }
  throw lastError ?? new Error("ssh: no attempt made");
}

/** One SSH exec of `bash -c text`, host key pinned; connection errors are marked retryable. */
export function sshExec(conn: SshConnection, text: string, stdin: string | undefined, timeoutMs: number): Promise<RunResult> {
  const { Client } = require("ssh2") as typeof import("ssh2");
  const where = `${conn.user}@${conn.host}:${conn.port}`;
  return new Promise((resolve, reject) => {
    const client = new Client();
    let hostKeyMismatch = false;
    const pinned = conn.hostKey?.trim().split(/\s+/)[1];
    if (!pinned && !conn.insecureIgnoreHostKey) {
      reject(new Error(`ssh ${where}: no host key pinned; set the server's hostKey or opt out with insecureIgnoreHostKey`));
      return;
    }
    const timer = setTimeout(() => {
      client.end();
      resolve({ code: null, stdout: "", stderr: `ssh ${where}: timed out after ${timeoutMs / 1000} s` });
    }, timeoutMs);
    client.on("ready", () => {
      client.exec(`bash -c ${shellQuote(text)}`, (err, stream) => {
        if (err) {
          clearTimeout(timer);
          client.end();
          reject(Object.assign(new Error(`ssh ${where}: ${err.message}`), { retryable: true }));
          return;
        }
        let stdout = "";
        let stderr = "";
        let code: number | null = null;
        stream.on("data", (d: Buffer) => (stdout += d.toString()));
        stream.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        stream.on("exit", (c: number | null) => (code = c));
        stream.on("close", () => {
          clearTimeout(timer);
          client.end();
          resolve({ code, stdout, stderr });
        });
        stream.end(stdin ?? "");
      });
    });
    client.on("error", (err: Error) => {
      clearTimeout(timer);
      if (hostKeyMismatch) {
        reject(new Error(`ssh ${where}: the server's host key does not match the pinned hostKey; refusing to connect`));
      } else {
        reject(Object.assign(new Error(`ssh ${where}: ${err.message}`), { retryable: true }));
      }
    });
    client.connect({
      host: conn.host,
      port: conn.port,
      username: conn.user,
      privateKey: conn.privateKey,
      readyTimeout: 20000,
      hostVerifier: (key: Buffer) => {
        if (conn.insecureIgnoreHostKey && !pinned) return true;
        hostKeyMismatch = key.toString("base64") !== pinned;
        return !hostKeyMismatch;
      },
    });
  });
}

/** Same rule as lib/shell.ts `quote`, repeated here because this code is serialized into the state. */
function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** A script run by the engine on a server (or locally); see CommandArgs. */
export class Command extends pulumi.dynamic.Resource {
  declare public readonly stdout: pulumi.Output<string>;
  declare public readonly stderr: pulumi.Output<string>;

  constructor(name: string, args: CommandArgs, opts?: pulumi.CustomResourceOptions) {
    super(commandProvider, name, { ...args, stdout: undefined, stderr: undefined }, opts, "nostromo", "Command");
  }
}
