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

/** What a run adds to the inputs: its output, its parsed result line, and no drift. */
interface RunOutputs {
  stdout: string;
  stderr: string;
  result: Record<string, unknown>;
  drift: string;
}

/**
 * Runs a script through the engine, as @pulumi/command's Command does: create/update/delete
 * scripts, triggers, stdin, stdout/stderr outputs. It is a dynamic provider because the
 * command provider's Go module cannot be had from the module proxy on our machines (README).
 * On top: the result line every step ends with (`result`), the update's lease in the script's
 * environment, and `read` (`pulumi refresh`) running the step's `check` to see drift.
 */
export const commandProvider: pulumi.dynamic.ResourceProvider = {
  async diff(_id: string, olds: CommandInputs & Partial<RunOutputs>, news: CommandInputs) {
    const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
    const changes = RERUN_KEYS.filter((k) => !same(olds[k], news[k]));
    const moved = !same(olds.connection?.host, news.connection?.host) || !same(olds.connection?.port, news.connection?.port);
    const stale = !same(olds.delete, news.delete) || !same(olds.connection, news.connection) || !same(olds.check, news.check);
    return {
      changes: changes.length > 0 || moved || stale || !!olds.drift,
      replaces: moved ? ["connection"] : [],
      deleteBeforeReplace: false,
    };
  },
  async create(inputs: CommandInputs) {
    const out = await runStep(inputs, inputs.create);
    return { id: `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`, outs: { ...inputs, ...out } };
  },
  async update(_id: string, olds: CommandInputs & Partial<RunOutputs>, news: CommandInputs) {
    const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
    const rerun = !!olds.drift || RERUN_KEYS.some((k) => !same(olds[k], news[k]));
    const out: RunOutputs = rerun
      ? await runStep(news, news.update ?? news.create)
      : { stdout: olds.stdout ?? "", stderr: olds.stderr ?? "", result: olds.result ?? {}, drift: "" };
    return { outs: { ...news, ...out } };
  },
  async delete(_id: string, props: CommandInputs) {
    if (props.delete) {
      await runStep(props, props.delete);
    }
  },
  /**
   * `pulumi refresh`: asks the server whether what the step made is still there (its `check`).
   * Drift is kept in the outputs and in the inputs, so the preview shows it and the next `up`
   * runs the step again.
   */
  async read(id: string, props: CommandInputs & Partial<RunOutputs>) {
    if (!props.check) return { id, props };
    const r = await runScript({ ...props, stdin: undefined }, props.check);
    if (r.code !== 0 && r.code !== 3) throw new Error(failureText(props, r, "refresh: the check of this step failed"));
    const drift = r.code === 3 ? `${r.stdout}${r.stderr}`.trim().slice(0, 500) || "drifted" : "";
    const inputs: Record<string, unknown> = { ...props, drift };
    for (const k of ["stdout", "stderr", "result"]) delete inputs[k];
    return { id, props: { ...props, drift }, inputs };
  },
};

/**
 * The step's result: its last non-empty line of output, `nostromo-result {…}` (a JSON object).
 * The one parser of step results; a missing or malformed line fails the step, naming it.
 */
export function parseStepResult(stdout: string, what: string): Record<string, unknown> {
  const last = stdout.trimEnd().split("\n").pop() ?? "";
  const prefix = "nostromo-result ";
  if (!last.startsWith(prefix)) throw new Error(`step ${what}: no result line at the end of its output`);
  let value: unknown;
  try {
    value = JSON.parse(last.slice(prefix.length));
  } catch {
    value = undefined;
  }
  if (!value || typeof value !== "object" || Array.isArray(value))
    throw new Error(`step ${what}: malformed result line: ${last.slice(0, 200)}`);
  return value as Record<string, unknown>;
}

/** Runs one script (with the lease in its environment) locally (bash) or over SSH. */
function runScript(inputs: CommandInputs, text: string): Promise<RunResult> {
  const timeoutMs = (inputs.timeoutSeconds ?? 1800) * 1000;
  const script = inputs.lease ? `export NOSTROMO_LEASE=${shellQuote(inputs.lease)}\n${text}` : text;
  return inputs.connection ? runOverSsh(inputs.connection, script, inputs.stdin, timeoutMs) : runLocally(script, inputs.stdin, timeoutMs);
}

/** The error of a failed run: where, how, and the tail of both outputs. */
function failureText(inputs: CommandInputs, result: RunResult, what = "step failed"): string {
  const trim = (s: string) => s.replace(/\n+$/, "");
  const where = inputs.connection ? `${inputs.connection.user}@${inputs.connection.host}:${inputs.connection.port}` : "localhost";
  const tail = (s: string) => trim(s).split("\n").slice(-30).join("\n");
  return (
    `${what} on ${where} (${
      result.code === null
        ? "no exit status"
        : TIMED_OUT.includes(result.code)
          ? `timed out after ${inputs.timeoutSeconds ?? 1800} s: the script was killed where it ran; its output so far follows`
          : `exit ${result.code}`
    })` +
    (result.stderr.trim() ? `\n--- stderr ---\n${tail(result.stderr)}` : "") +
    (result.stdout.trim() ? `\n--- stdout ---\n${tail(result.stdout)}` : "")
  );
}

/** Runs the step's script, returning its output and result line or throwing with its tail. */
async function runStep(inputs: CommandInputs, text: string): Promise<RunOutputs> {
  const result = await runScript(inputs, text);
  if (result.code !== 0) throw new Error(failureText(inputs, result));
  const trim = (s: string) => s.replace(/\n+$/, "");
  const what = inputs.app ? `${inputs.step} (${inputs.app})` : String(inputs.step);
  let parsed: Record<string, unknown> | undefined;
  let problem = "";
  try {
    parsed = parseStepResult(result.stdout, what);
  } catch (err) {
    problem = (err as Error).message;
  }
  // The step ran, but did not end as a step must: its output is shown with the reason.
  if (!parsed) throw new Error(failureText(inputs, result, problem));
  return { stdout: trim(result.stdout), stderr: trim(result.stderr), result: parsed, drift: "" };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Exit codes of `timeout` when it stopped the script (TERM, then KILL). */
const TIMED_OUT = [124, 137];

/**
 * The script under `timeout`, so it dies where it runs when its time is up (its whole process
 * group: `sleep` and the like too), even if nobody is left to wait for it.
 */
function underTimeout(text: string, timeoutMs: number): string[] {
  return ["timeout", "--kill-after=10", String(Math.max(1, Math.ceil(timeoutMs / 1000))), "bash", "-c", text];
}

function runLocally(text: string, stdin: string | undefined, timeoutMs: number): Promise<RunResult> {
  const { spawn } = require("child_process") as typeof import("child_process");
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = underTimeout(text, timeoutMs);
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
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

/** Only failures before the script started are retried (`retryable`): a started script never runs twice. */
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
 * One SSH exec of the script under the server's `timeout`, host key pinned. Errors before the
 * script started are marked retryable; a connection lost after it started is not (the script
 * may have partly run), and says so with the output so far. If the server does not answer past
 * the timeout (and a grace period), the result has no exit code and the output so far.
 */
export function sshExec(conn: SshConnection, text: string, stdin: string | undefined, timeoutMs: number): Promise<RunResult> {
  const { Client } = require("ssh2") as typeof import("ssh2");
  const where = `${conn.user}@${conn.host}:${conn.port}`;
  return new Promise((resolve, reject) => {
    const client = new Client();
    let hostKeyMismatch = false;
    let started = false;
    let settled = false;
    let stdout = "";
    let stderr = "";
    // Declared before `finish` uses it (the provider's code is serialized: no use before declaration).
    const clock: { timer?: ReturnType<typeof setTimeout> } = {};
    const pinned = conn.hostKey?.trim().split(/\s+/)[1];
    if (!pinned && !conn.insecureIgnoreHostKey) {
      reject(new Error(`ssh ${where}: no host key pinned; set the server's hostKey or opt out with insecureIgnoreHostKey`));
      return;
    }
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(clock.timer);
      client.end();
      fn();
    };
    const dropped = (why: string) =>
      finish(() =>
        reject(
          new Error(
            `ssh ${where}: the connection dropped after the script started (${why}); it may have partly run and was not retried` +
              (stderr.trim() ? `\n--- stderr so far ---\n${stderr.trim().split("\n").slice(-20).join("\n")}` : "") +
              (stdout.trim() ? `\n--- stdout so far ---\n${stdout.trim().split("\n").slice(-20).join("\n")}` : ""),
          ),
        ),
      );
    clock.timer = setTimeout(
      () =>
        finish(() =>
          resolve({
            code: null,
            stdout,
            stderr: `${stderr}ssh ${where}: no answer from the server ${timeoutMs / 1000 + 30} s after the start\n`,
          }),
        ),
      timeoutMs + 30_000,
    );
    client.on("ready", () => {
      client.exec(underTimeout(text, timeoutMs).map(shellQuote).join(" "), (err, stream) => {
        if (err) {
          finish(() => reject(Object.assign(new Error(`ssh ${where}: ${err.message}`), { retryable: true })));
          return;
        }
        started = true;
        let code: number | null = null;
        stream.on("data", (d: Buffer) => (stdout += d.toString()));
        stream.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        // Killed by a signal on the server: no exit code, but an answer all the same.
        stream.on("exit", (c: number | null, signal?: string) => {
          code = c ?? (signal ? 128 : null);
          if (signal) stderr += `killed by SIG${signal} on the server\n`;
        });
        stream.on("close", () => (code === null ? dropped("no exit status") : finish(() => resolve({ code, stdout, stderr }))));
        stream.end(stdin ?? "");
      });
    });
    client.on("error", (err: Error) => {
      if (started) dropped(err.message);
      else if (hostKeyMismatch)
        finish(() => reject(new Error(`ssh ${where}: the server's host key does not match the pinned hostKey; refusing to connect`)));
      else finish(() => reject(Object.assign(new Error(`ssh ${where}: ${err.message}`), { retryable: true })));
    });
    client.on("close", () =>
      started
        ? dropped("connection closed")
        : finish(() => reject(Object.assign(new Error(`ssh ${where}: connection closed before the script started`), { retryable: true }))),
    );
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
  /** The step's result line, parsed (values are strings); see parseStepResult. */
  declare public readonly result: pulumi.Output<Record<string, unknown>>;

  constructor(name: string, args: CommandArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      commandProvider,
      name,
      { ...args, stdout: undefined, stderr: undefined, result: undefined, drift: undefined },
      opts,
      "nostromo",
      "Command",
    );
  }
}
