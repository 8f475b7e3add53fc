/**
 * The Command resource's provider: what the engine's dynamic provider process runs for every
 * step (loaded there by the stub in command.ts, never serialized into the state).
 */
import type * as pulumi from "@pulumi/pulumi";
import { redact } from "../lib/redact";
import type { StepKind } from "../lib/steps";
import { RunResult, SshConnection, runLocally, runOverSsh, shellQuote } from "./ssh";

export interface CommandInputs {
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
  redact?: string[];
  /** At most this many scripts of this update at once over SSH, all hosts together (a fleet's rolling.connections). */
  maxConcurrent?: number;
  /** Set (why): the step does not run, its result is `{ skipped: why }`; cleared, the next \`up\` runs it. */
  skip?: string;
}

/**
 * Inputs whose change re-runs the step. Not `lease` (it changes on every `pulumi up`), `step` or
 * `app`: a change of them alone leaves the step unchanged; nor `connection` alone (a rotated key),
 * `delete` or `check`, which update the state without running anything (so `refresh` asks the
 * server the new way), nor `timeoutSeconds` or `redact`.
 */
const RERUN_KEYS = ["create", "update", "stdin", "triggers", "skip"] as const;

/** Seconds a script may run when the step sets no `timeoutSeconds`. */
const DEFAULT_TIMEOUT_SECONDS = 1800;

/** Equal inputs; "" is no value (a `skip` of "" is none). */
function same(a: unknown, b: unknown): boolean {
  const norm = (v: unknown) => (v === "" || v === undefined ? null : v);
  return JSON.stringify(norm(a)) === JSON.stringify(norm(b));
}

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
  /** Changes: a re-run key, drift found by `read`, or what the state keeps for later (connection, delete script). */
  async diff(_id: string, olds: CommandInputs & Partial<RunOutputs>, news: CommandInputs) {
    const moved = !same(olds.connection?.host, news.connection?.host) || !same(olds.connection?.port, news.connection?.port);
    const changed = [
      ...RERUN_KEYS.filter((k) => !same(olds[k], news[k])),
      ...(olds.drift ? ["drift"] : []),
      ...(["connection", "delete", "check"] as const).filter((k) => !same(olds[k], news[k])),
    ];
    return { changes: changed.length > 0, replaces: moved ? ["connection"] : [], deleteBeforeReplace: false };
  },
  async create(inputs: CommandInputs) {
    const out = await runStep(inputs, inputs.create);
    return { id: `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`, outs: { ...inputs, ...out } };
  },
  async update(_id: string, olds: CommandInputs & Partial<RunOutputs>, news: CommandInputs) {
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
   * `pulumi refresh`: asks the server whether what the step made is still there (its `check`, run
   * like the step). Exit 0: `drift` "", exit 3: `drift` is the check's output; anything else
   * fails the refresh. Drift goes into the outputs (diff and update see it as `olds.drift`) and
   * into the inputs: the dynamic provider protocol carries no detailed diff, so the preview names
   * the change by the inputs' `drift` (old) against the program's (none).
   */
  async read(id: string, props: CommandInputs & Partial<RunOutputs>) {
    if (!props.check) return { id, props };
    const r = await runScript({ ...props, stdin: undefined }, props.check);
    if (r.code !== 0 && r.code !== 3) throw new Error(failureText(props, r, "refresh: the check of this step"));
    const drift = r.code === 3 ? `${r.stdout}${r.stderr}`.trim().slice(0, 500) || "drifted" : "";
    const inputs: Record<string, unknown> = { ...props, drift };
    for (const k of ["stdout", "stderr", "result"]) delete inputs[k];
    return { id, props: { ...props, drift }, inputs };
  },
};

const RESULT_PREFIX = "nostromo-result ";

/**
 * The step's result: its last non-empty line of output, `nostromo-result {…}` (a JSON object).
 * The one parser of step results; a missing or malformed line fails the step, naming it.
 */
export function parseStepResult(stdout: string, what: string): Record<string, unknown> {
  const last = stdout.trimEnd().split("\n").pop() ?? "";
  const prefix = RESULT_PREFIX;
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

/**
 * Runs one script (with the lease in its environment) locally (bash) or over SSH, under `timeout`.
 * Its output comes back with the secret values redacted: the state, the errors and the drift
 * text all read it from here.
 */
export async function runScript(inputs: CommandInputs, text: string): Promise<RunResult> {
  const timeoutMs = (inputs.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS) * 1000;
  const script = inputs.lease ? `export NOSTROMO_LEASE=${shellQuote(inputs.lease)}\n${text}` : text;
  const release = inputs.connection && inputs.maxConcurrent ? await sshSlot(inputs.maxConcurrent) : () => undefined;
  const r = await (inputs.connection
    ? runOverSsh(inputs.connection, script, inputs.stdin, timeoutMs).finally(release)
    : runLocally(script, inputs.stdin, timeoutMs));
  return { ...r, stdout: redact(r.stdout, inputs.redact, RESULT_PREFIX), stderr: redact(r.stderr, inputs.redact) };
}

/**
 * One of `limit` places for a script over SSH in this provider process (the engine runs one
 * for every step of an update): resolves with its release once one is free, first come first served.
 */
export function sshSlot(limit: number): Promise<() => void> {
  const g = globalThis as { __nostromoSshSlots?: { active: number; waiting: (() => void)[] } };
  const slots = (g.__nostromoSshSlots ??= { active: 0, waiting: [] });
  const release = () => {
    slots.active--;
    slots.waiting.shift()?.();
  };
  if (slots.active < limit) {
    slots.active++;
    return Promise.resolve(release);
  }
  return new Promise((resolve) =>
    slots.waiting.push(() => {
      slots.active++;
      resolve(release);
    }),
  );
}

/**
 * The error of a failed run, `<subject> failed on <where> (exit N)` or `<subject> timed out after
 * N s on <where> (…)`, then the tail of both outputs (so far, for a timeout).
 */
export function failureText(inputs: CommandInputs, r: RunResult, subject = "step"): string {
  const where = inputs.connection ? `${inputs.connection.user}@${inputs.connection.host}:${inputs.connection.port}` : "localhost";
  const seconds = inputs.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
  const how =
    r.timedOut === "killed"
      ? `timed out after ${seconds} s on ${where} (the script was killed ${inputs.connection ? "on the server" : "where it ran"})`
      : r.timedOut
        ? `timed out after ${seconds} s on ${where} (no answer from the server ${seconds + 30} s after the start; its \`timeout\` kills the script there)`
        : `failed on ${where} (${r.code === null ? "no exit status" : `exit ${r.code}`})`;
  return `${subject} ${how}${outputTail(r, r.timedOut ? " so far" : "")}`;
}

/** The last 60 lines of stderr and stdout (a failure bundle: logs of the slot and nginx), each under a header (`--- stdout ---`). */
function outputTail(r: RunResult, soFar = ""): string {
  const tail = (s: string) => s.replace(/\n+$/, "").split("\n").slice(-60).join("\n");
  return (
    (r.stderr.trim() ? `\n--- stderr${soFar} ---\n${tail(r.stderr)}` : "") +
    (r.stdout.trim() ? `\n--- stdout${soFar} ---\n${tail(r.stdout)}` : "")
  );
}

/** Runs the step's script, returning its output and result line or throwing with its tail. */
async function runStep(inputs: CommandInputs, text: string): Promise<RunOutputs> {
  if (inputs.skip) return { stdout: `skipped: ${inputs.skip}`, stderr: "", result: { skipped: inputs.skip }, drift: "" };
  const result = await runScript(inputs, text);
  if (result.code !== 0) throw new Error(failureText(inputs, result));
  const what = inputs.app ? `${inputs.step} (${inputs.app})` : String(inputs.step);
  let parsed: Record<string, unknown> | undefined;
  let problem = "";
  try {
    parsed = parseStepResult(result.stdout, what);
  } catch (err) {
    problem = (err as Error).message;
  }
  // The step ran, but did not end as a step must: its output is shown with the reason.
  if (!parsed) throw new Error(problem + outputTail(result));
  const trim = (s: string) => s.replace(/\n+$/, "");
  return { stdout: trim(result.stdout), stderr: trim(result.stderr), result: parsed, drift: "" };
}
