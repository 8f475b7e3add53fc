/**
 * What the operator tools (history, metrics, rollback) share: argument parsing with clear errors,
 * the stack on the Automation API, its history as rows, plain config, the server, notifications.
 */
import { ConfigMap, LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { version as SDK_VERSION } from "@pulumi/pulumi/version";
import { execFile } from "child_process";
import { createRequire } from "module";
import * as path from "path";
import * as readline from "readline";
import { parseArgs, ParseArgsConfig, promisify } from "util";
import { configObject, DeployRow, deployRows, HistoryEntry, lastSuccessful, PROJECT, readAllHistory } from "../lib/history";
import { NotifyEvent, notificationPayload, postNotification } from "../lib/notify";
import { RunResult, SshConnection, runOverSsh } from "../components/ssh";
import { ServerConfig } from "../lib/config";

export const REPO_ROOT = path.resolve(__dirname, "..");

/** An error the tool reports as one line and exits with `code` (2: refused or bad usage). */
export class ToolError extends Error {
  constructor(
    message: string,
    readonly code = 2,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "ToolError";
  }
}

/** Runs a tool's main, turning errors into a message and an exit code. */
export function runMain(name: string, main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: Error) => {
      if (err instanceof ToolError) {
        process.stderr.write(`${name}: ${err.message}\n`);
        process.exit(err.code);
      }
      process.stderr.write(`${name}: ${err.stack ?? err.message}\n`);
      process.exit(1);
    },
  );
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** util.parseArgs, strict, no positionals; any problem becomes a ToolError naming the argument. */
export function parseToolArgs<O extends Options>(argv: string[], options: O, usage: string) {
  let parsed: { values: Record<string, string | boolean | undefined> };
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...options, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: false,
    }) as { values: Record<string, string | boolean | undefined> };
  } catch (err) {
    const msg = (err as Error).message.replace(/\. To specify a positional argument.*$/s, "");
    throw new ToolError(`${msg}\nusage: ${usage}`);
  }
  if (parsed.values.help) {
    process.stdout.write(`usage: ${usage}\n`);
    process.exit(0);
  }
  return parsed.values as { [K in keyof O]?: O[K]["type"] extends "boolean" ? boolean : string } & { help?: boolean };
}

export function requireStackName(value: string | undefined, usage: string): string {
  if (!value) throw new ToolError(`--stack is required\nusage: ${usage}`);
  if (!/^[A-Za-z0-9._/-]{1,100}$/.test(value)) throw new ToolError(`--stack: '${value}' is not a stack name`);
  return value;
}

export function updateNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,9}$/.test(value) || Number(value) < 1)
    throw new ToolError(`${flag} must be a stack update number (a whole number from 1), got '${value}'`);
  return Number(value);
}

export async function openStack(stackName: string): Promise<Stack> {
  const { stack, selected } = await openStackAtOnce(stackName);
  await selected;
  return stack;
}

/**
 * The CLI at the version the project pins it to, the SDK's (scripts/engine-versions.env), without
 * running `pulumi version` first: that run was 0.1 s of every tool's start, ahead of its first
 * read. `checkCliVersion` runs it beside the reads instead.
 */
function pinnedCli(): PulumiCommand {
  const cli = Object.create(PulumiCommand.prototype) as { command: string; version: unknown };
  cli.command = "pulumi";
  // The SDK compares its CLI's version with its own semver: the same package, resolved from the SDK.
  const semver = createRequire(require.resolve("@pulumi/pulumi/package.json"))("semver") as { parse(v: string): unknown };
  cli.version = semver.parse(SDK_VERSION);
  return cli as unknown as PulumiCommand;
}

/** Refuses, before anything changes, a CLI on PATH at another version than the pinned one. */
async function checkCliVersion(): Promise<void> {
  let found: string;
  try {
    found = String((await PulumiCommand.get({ skipVersionCheck: true })).version ?? "unknown");
  } catch (err) {
    throw new ToolError(`cannot run the pulumi CLI: ${(err as Error).message.split("\n")[0]}`);
  }
  if (found !== SDK_VERSION)
    throw new ToolError(
      `the pulumi CLI on PATH is v${found}; this project pins v${SDK_VERSION} (scripts/engine-versions.env): run eval "$(scripts/install-pulumi.sh)" first; nothing was changed`,
    );
}

/**
 * What `Stack.select` constructs before it awaits the select's `ready` (the constructor and
 * `ready` are private in the class's types only).
 */
const StackSelecting = Stack as unknown as new (name: string, ws: LocalWorkspace, mode: "select") => Stack;

/**
 * The stack, usable at once, beside its `pulumi stack select` (`selected`; a missing stack
 * rejects it with a ToolError): every Stack call names the stack itself (`--stack`), so reads
 * need not wait for the select. Await `selected` before trusting a read's failure.
 */
export async function openStackAtOnce(stackName: string): Promise<{ stack: Stack; selected: Promise<void> }> {
  const refused = (err: unknown) => {
    const text = String((err as { stderr?: string }).stderr || (err as Error).message);
    const line = text.split("\n").find((l) => /error:/i.test(l)) ?? text.split("\n")[0];
    return new ToolError(`cannot select stack '${stackName}': ${line.replace(/^.*error:\s*/i, "").trim()}`);
  };
  let ws: LocalWorkspace;
  try {
    ws = await LocalWorkspace.create({ workDir: REPO_ROOT, pulumiCommand: pinnedCli() });
  } catch (err) {
    throw refused(err);
  }
  const stack = new StackSelecting(stackName, ws, "select");
  const selected = Promise.all([
    (stack as unknown as { ready: Promise<void> }).ready.catch((err: unknown) => {
      throw refused(err);
    }),
    checkCliVersion(),
  ]).then(() => undefined);
  selected.catch(() => undefined); // awaited by the caller; never an unhandled rejection meanwhile
  return { stack, selected };
}

/**
 * Stack outputs as plain values, a secret one as "[secret]": one CLI call that decrypts nothing
 * (Stack.outputs makes two in a row, one of them decrypting every secret).
 */
export async function plainOutputs(stack: Stack): Promise<Record<string, unknown>> {
  const ws = stack.workspace as LocalWorkspace;
  const env = { ...process.env, ...ws.envVars, ...(ws.pulumiHome ? { PULUMI_HOME: ws.pulumiHome } : {}) };
  const args = ["stack", "output", "--json", "--stack", stack.name];
  const { stdout } = await promisify(execFile)(ws.pulumiCommand.command, args, { cwd: ws.workDir, env, maxBuffer: 64 << 20 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

export interface StackView {
  rows: DeployRow[];
  /** Outputs of the current state (those of the newest successful update). */
  outputs: Record<string, unknown>;
}

/**
 * The whole history as rows, oldest first (every page read: `stack.history()` alone returns only
 * the newest 10); the current outputs (`readOutputs`: plainOutputs) give the newest successful
 * update its SHAs.
 */
export async function loadHistory(
  stack: Stack,
  readOutputs: (s: Stack) => Promise<Record<string, unknown>> = plainOutputs,
): Promise<StackView> {
  const [history, outputs] = await Promise.all([
    // Secrets stay encrypted: the rows read plain values only (and decrypting costs a key derivation).
    readAllHistory((pageSize, page) => stack.history(pageSize, page, false) as unknown as Promise<HistoryEntry[]>),
    readOutputs(stack),
  ]);
  const plainRows = deployRows(history as unknown as HistoryEntry[]);
  const current = lastSuccessful(plainRows);
  const newest = plainRows[plainRows.length - 1];
  // The state's outputs belong to the newest update only if it succeeded.
  const known = current && newest && current.version === newest.version ? { [current.version]: { apps: outputs.apps } } : {};
  return { rows: deployRows(history as unknown as HistoryEntry[], known), outputs };
}

/** The stack's plain (non-secret) config, keys without the project prefix, JSON values parsed. */
export async function plainConfig(stack: Stack): Promise<Record<string, unknown>> {
  return plainOf(await stack.getAllConfig());
}

/** The plain config and the secret values (decrypted: never printed) from one CLI call (`read`: its answer, read earlier). */
export async function configAndSecrets(
  stack: Stack,
  read?: ConfigMap,
): Promise<{ config: Record<string, unknown>; secrets: Record<string, string> }> {
  const all = read ?? (await stack.getAllConfig());
  const secrets = Object.fromEntries(
    Object.entries(all)
      .filter(([key, v]) => v.secret && key.startsWith(`${PROJECT}:`))
      .map(([key, v]) => [key.slice(PROJECT.length + 1), v.value]),
  );
  return { config: plainOf(all), secrets };
}

function plainOf(all: ConfigMap): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(all)) {
    if (v.secret || !key.startsWith(`${PROJECT}:`)) continue;
    const parsed = configObject(v);
    out[key.slice(PROJECT.length + 1)] = parsed !== undefined ? parsed : v.value;
  }
  return out;
}

/** A secret config value (decrypted by the CLI), or undefined when unset. Never printed. */
export async function secretConfig(stack: Stack, key: string): Promise<string | undefined> {
  try {
    return (await stack.getConfig(key)).value;
  } catch {
    return undefined;
  }
}

/**
 * The deploy server from the stack's config (server.host/port/user/hostKey) and sshPrivateKey.
 * Paths on it (server.root) come from the validated config (lib/config), which normalises them.
 */
export async function serverTarget(stack: Stack, config: Record<string, unknown>): Promise<Target> {
  return targetOf(config, await secretConfig(stack, "sshPrivateKey"));
}

/**
 * serverTarget with the sshPrivateKey secret already read (a tool that reads it beside other
 * calls). A fleet's server is its primary (`hosts`: the one with the role primary, over `server`'s
 * defaults): it holds the database backups and the migrations' journal.
 */
export function targetOf(config: Record<string, unknown>, privateKey: string | undefined): Target {
  const hosts = (config.hosts ?? {}) as Record<string, Record<string, unknown>>;
  const primary = Object.values(hosts).find((h) => Array.isArray(h?.roles) && h.roles.includes("primary"));
  const s = { ...((config.server ?? {}) as Record<string, unknown>), ...(primary ?? {}) };
  if (typeof s.host !== "string" || typeof s.user !== "string") {
    throw new ToolError(
      `the stack config has no ${config.hosts ? "primary host with host and user (hosts.<name>.roles: [primary])" : "server.host/server.user"}`,
    );
  }
  if (!privateKey) throw new ToolError("the stack config has no sshPrivateKey secret");
  return {
    host: s.host,
    port: Number(s.port ?? 22),
    user: s.user,
    privateKey,
    hostKey: typeof s.hostKey === "string" ? s.hostKey : undefined,
    insecureIgnoreHostKey: s.insecureIgnoreHostKey === true || s.insecureIgnoreHostKey === "true",
  };
}

/** One host of a fleet, from its parsed settings (hosts.<name> over `server`'s defaults). */
export function hostTarget(server: ServerConfig, privateKey: string | undefined): Target {
  if (!privateKey) throw new ToolError("the stack config has no sshPrivateKey secret");
  const { host, port, user, hostKey, insecureIgnoreHostKey } = server;
  return { host, port, user, privateKey, hostKey, insecureIgnoreHostKey };
}

/** Posts the event to `url`, the stack's `notifyWebhookUrl` secret, when set; a failure only warns. */
export async function notifyIfConfigured(url: string | undefined, event: NotifyEvent, log: (line: string) => void): Promise<boolean> {
  if (!url) return false;
  try {
    await postNotification(url, notificationPayload(event));
    log(`notification sent (${event.kind})`);
    return true;
  } catch (err) {
    log(`warning: ${(err as Error).message}`);
    return false;
  }
}

/** y/N on a terminal; false without one (the caller asks for --yes instead). */
export async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY || !process.stdout.isTTY) return false;
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = await new Promise<string>((resolve) => rl.question(`${question} [y/N] `, resolve));
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

// --- SSH to the deploy server (ssh2, host key pinned); secrets only on stdin, never printed.

/** The deploy server as the stack config names it (see components/ssh.ts SshConnection). */
export type Target = SshConnection;

export type RemoteResult = RunResult;

/**
 * Runs a script on the server over SSH, host key pinned, under the server's `timeout`: the runner
 * the deploy's steps use. Only a failure to connect is retried; a connection dropped after the
 * script started throws (the script, a database restore say, never runs twice). Failures come as
 * a ToolError (exit 1): the tool prints the message, which says what to do, without a stack trace.
 */
export async function sshRun(t: Target, text: string, stdin = "", timeoutMs = 30 * 60_000): Promise<RemoteResult> {
  try {
    return await runOverSsh(t, text, stdin, timeoutMs);
  } catch (err) {
    // The runner's errors say where and what (a host key mismatch: the key offered and how to
    // re-pin): the operator gets that message, not a stack trace.
    throw new ToolError((err as Error).message, 1, { cause: err });
  }
}
