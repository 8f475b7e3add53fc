/**
 * The FleetCutover resource's provider (loaded by the stub in command.ts, as Command's is): the
 * web hosts' cutovers in rolling batches. Each host's cutover is the single server's (verify,
 * out of the load balancer, switch, smoke tests, back in; its own failure switches it back); past
 * `maxFail` failed hosts, every host this run switched goes back too, and the error names each
 * host, what failed there and what it serves now, read from it.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { StepKind } from "../lib/steps";
import { CommandInputs, failureText, parseStepResult, runScript } from "./commandProvider";
import { RunResult, SshConnection, shellQuote } from "./ssh";

export interface FleetCutoverHost {
  name: string;
  connection: SshConnection;
  /** The host's cutover script (lib/scripts/cutover.ts cutoverScript). */
  create: string;
  /** Its refresh question (cutoverCheckScript). */
  check: string;
  /** Its switch-back after a committed cutover (switchBackScript; NOSTROMO_SWITCHED names the apps). */
  switchBack: string;
  /** What it serves now, read only (servingScript). */
  serving: string;
}

export interface FleetCutoverInputs {
  step: StepKind;
  /** The web hosts in config order. */
  hosts: FleetCutoverHost[];
  /** Failed hosts the fleet may go on with (rolling.maxFailPercent of the web hosts); one more sends every switched host back. */
  maxFail: number;
  /**
   * Host names per batch, in order (shown by the preview). Every name is one of `hosts`.
   */
  batches: string[][];
  /**
   * Milliseconds between one batch's end and the next one's start: the load balancer's fail_timeout
   * and some, so a host drained in one batch (its 503s mark it failed there) takes traffic again
   * before the next batch leaves.
   */
  settleMs: number;
  /** At most this many scripts over SSH at once (rolling.connections). */
  maxConcurrent?: number;
  lease?: string;
  stdin?: string;
  triggers?: unknown[];
  timeoutSeconds?: number;
  redact?: string[];
}

/** One host's cutover as the state keeps it. */
export interface HostCutover {
  batch: number;
  serving: string;
  switched: string;
  smoke: string;
  bake: string;
  seconds: number;
}

interface FleetOutputs {
  results: Record<string, HostCutover>;
  /** Hosts whose cutover failed within maxFail, with why: the next `up` runs them again. */
  lagging: Record<string, string>;
  drift: string;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
/** What re-runs the cutover: a host's scripts or connection's address, the smoke secrets, the triggers. */
const rerunKey = (i: FleetCutoverInputs) =>
  JSON.stringify([
    i.hosts.map((h) => [h.name, h.connection.host, h.connection.port, h.create]),
    i.stdin ?? null,
    i.triggers ?? null,
    i.batches,
  ]);

/**
 * Dials to one host, and how long each may take, before its script is given up: a host gone
 * from the network (no answer at all) must not hold the fleet for the ten 20-s attempts a
 * single server gets. A LAN's SSH handshake takes well under a second.
 */
const DIAL_ATTEMPTS = 2;
const DIAL_TIMEOUT_MS = 8000;

/** The run settings of a script on one host, as the Command provider's helpers take them. */
function on(inputs: FleetCutoverInputs, host: FleetCutoverHost, stdin?: string): CommandInputs {
  return {
    step: inputs.step,
    create: "",
    connection: { ...host.connection, dialAttempts: DIAL_ATTEMPTS, readyTimeoutMs: DIAL_TIMEOUT_MS },
    lease: inputs.lease,
    stdin,
    redact: inputs.redact,
    timeoutSeconds: inputs.timeoutSeconds,
    maxConcurrent: inputs.maxConcurrent,
  };
}

/** A run's result; `notStarted`: the host was not reached, so nothing ran there. */
async function run(inputs: CommandInputs, text: string): Promise<RunResult & { notStarted?: boolean }> {
  try {
    return await runScript(inputs, text);
  } catch (err) {
    return { code: null, stdout: "", stderr: (err as Error).message, notStarted: !!(err as { retryable?: boolean }).retryable };
  }
}

/** Its first lines: an error list stays readable with many hosts. */
const head = (text: string, lines = 12) => text.split("\n").slice(0, lines).join("\n    ");

async function cutover(inputs: FleetCutoverInputs): Promise<FleetOutputs> {
  const byName = new Map(inputs.hosts.map((h) => [h.name, h]));
  const batches = inputs.batches.map((names) => names.map((n) => byName.get(n)!));
  const results: Record<string, HostCutover> = {};
  const failed: Record<string, string> = {};
  const unreached = new Set<string>();
  for (const [index, batch] of batches.entries()) {
    if (index > 0 && inputs.settleMs > 0) await new Promise((r) => setTimeout(r, inputs.settleMs));
    await Promise.all(
      batch.map(async (host) => {
        const started = Date.now();
        const r = await run(on(inputs, host, inputs.stdin), host.create);
        if (r.code !== 0) {
          failed[host.name] =
            `batch ${index + 1}: ${r.notStarted ? `not reached, nothing ran there: ${r.stderr}` : failureText(on(inputs, host), r, "cutover")}`;
          if (r.notStarted) unreached.add(host.name);
          return;
        }
        try {
          const res = parseStepResult(r.stdout, `cutover (${host.name})`);
          const field = (k: string) => String(res[k] ?? "");
          results[host.name] = {
            batch: index + 1,
            serving: field("serving"),
            switched: field("switched"),
            smoke: field("smoke"),
            bake: field("bake"),
            seconds: (Date.now() - started) / 1000,
          };
        } catch (err) {
          failed[host.name] = `batch ${index + 1}: ${(err as Error).message}`;
        }
      }),
    );
    if (Object.keys(failed).length > inputs.maxFail) throw new Error(await switchEveryHostBack(inputs, results, failed, unreached));
  }
  return { results, lagging: failed, drift: "" };
}

/** Every host switched in this run back to what served before; the error text, with what each host serves now. */
async function switchEveryHostBack(
  inputs: FleetCutoverInputs,
  results: Record<string, HostCutover>,
  failed: Record<string, string>,
  unreached: Set<string>,
): Promise<string> {
  const now: Record<string, string> = {};
  await Promise.all(
    inputs.hosts.map(async (host) => {
      const switched = results[host.name]?.switched;
      if (switched) {
        const r = await run(on(inputs, host), `export NOSTROMO_SWITCHED=${shellQuote(switched)}\n${host.switchBack}`);
        const res = r.code === 0 ? parseStepResult(r.stdout, `switch-back (${host.name})`) : undefined;
        now[host.name] = res
          ? `switched back (${res.switchedBack || "nothing"}); serving ${res.serving}${r.stderr.trim() ? `; ${r.stderr.trim()}` : ""}`
          : `its switch-back FAILED: ${head(failureText(on(inputs, host), r, "switch-back"), 6)}`;
        return;
      }
      if (unreached.has(host.name)) {
        now[host.name] = "not reached, nothing ran there: it serves what it served before this deploy (not read: it does not answer)";
        return;
      }
      const r = await run(on(inputs, host), host.serving);
      const serving =
        r.code === 0
          ? String(parseStepResult(r.stdout, `serving (${host.name})`).serving)
          : `not known (${head(failureText(on(inputs, host), r, "read"), 2)})`;
      now[host.name] = `${failed[host.name] ? "failed" : "not switched"}; serving ${serving}`;
    }),
  );
  const n = Object.keys(failed).length;
  return [
    `fleet cutover failed on ${n} of ${inputs.hosts.length} web host${inputs.hosts.length > 1 ? "s" : ""} (rolling.maxFailPercent lets ${inputs.maxFail} fail); every host switched by this deploy was switched back.`,
    ...Object.entries(failed).map(([name, why]) => `  ${name}: ${head(why)}`),
    `what each web host serves now:`,
    ...inputs.hosts.map((h) => `  ${h.name}: ${now[h.name]}`),
  ].join("\n");
}

export const fleetCutoverProvider: pulumi.dynamic.ResourceProvider = {
  async diff(_id: string, olds: FleetCutoverInputs & Partial<FleetOutputs>, news: FleetCutoverInputs) {
    const changes =
      rerunKey(olds) !== rerunKey(news) ||
      Object.keys(olds.lagging ?? {}).length > 0 ||
      !!olds.drift ||
      !same(
        olds.hosts.map((h) => [h.check, h.switchBack]),
        news.hosts.map((h) => [h.check, h.switchBack]),
      );
    return { changes, replaces: [], deleteBeforeReplace: false };
  },
  async create(inputs: FleetCutoverInputs) {
    return { id: `fleet-${Date.now().toString(36)}`, outs: { ...inputs, ...(await cutover(inputs)) } };
  },
  async update(_id: string, olds: FleetCutoverInputs & Partial<FleetOutputs>, news: FleetCutoverInputs) {
    const rerun = rerunKey(olds) !== rerunKey(news) || Object.keys(olds.lagging ?? {}).length > 0 || !!olds.drift;
    const out: FleetOutputs = rerun ? await cutover(news) : { results: olds.results ?? {}, lagging: {}, drift: "" };
    return { outs: { ...news, ...out } };
  },
  async delete() {},
  /** `pulumi refresh`: each web host's check; drift on any host (exit 3) is named with the host. */
  async read(id: string, props: FleetCutoverInputs & Partial<FleetOutputs>) {
    const drift: string[] = [];
    await Promise.all(
      props.hosts.map(async (host) => {
        const r = await run(on(props, host), host.check);
        if (r.code === 3) drift.push(`${host.name}: ${`${r.stdout}${r.stderr}`.trim().slice(0, 300)}`);
        else if (r.code !== 0) throw new Error(failureText(on(props, host), r, `refresh: the cutover check of ${host.name}`));
      }),
    );
    const text = drift.sort().join("\n");
    const inputs: Record<string, unknown> = { ...props, drift: text };
    for (const k of ["results", "lagging"]) delete inputs[k];
    return { id, props: { ...props, drift: text }, inputs };
  },
};
