/**
 * The rollback's side of the stack file and of its `pulumi up`: the stack file's text before and
 * after the `apps` key is rewritten (to put it back exactly when the update did not start, or to
 * print the change to commit when it did), which resource operations the engine began (from its
 * events, not from a guess), and why an engine command failed, in a few lines.
 */
import { CommandError, ConcurrentUpdateError, ConfigValue, EngineEvent, Stack, UpOptions } from "@pulumi/pulumi/automation";
import * as fs from "fs";
import * as path from "path";
import { PROJECT } from "../lib/history";
import { setConfigBlock } from "../lib/stackFileText";
import { unifiedDiff } from "../lib/unifiedDiff";
import { ToolError } from "./common";

/** `Pulumi.<stack>.yaml` in the project folder (the last part of an org/project/stack name). */
export function stackFileName(stackName: string): string {
  return `Pulumi.${stackName.split("/").pop()}.yaml`;
}

/** JSON with object keys sorted: equal texts for equal values, whatever the key order. */
function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) =>
    x && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(
          Object.keys(x)
            .sort()
            .map((k) => [k, x[k]]),
        )
      : x,
  );
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

// --- Why an engine command failed ------------------------------------------------------------

// eslint-disable-next-line no-control-regex
const stripAnsi = (s: string) => s.replace(/\u001b\[[0-9;]*[A-Za-z]/g, "");

export interface EngineFailure {
  /** What stopped it, one line. */
  reason: string;
  /** The engine's own error text: its `error:` lines and what is indented under them. */
  lines: string[];
  /** Another update holds the stack (a file backend's lock file, or the service's 409). */
  locked: boolean;
}

/** The stderr (else the message) of an Automation API error, without colour codes. */
function errorText(err: unknown): { stderr: string; stdout: string } {
  const result = (err as { commandResult?: { stderr?: unknown; stdout?: unknown } })?.commandResult;
  if (result) return { stderr: stripAnsi(String(result.stderr ?? "")), stdout: stripAnsi(String(result.stdout ?? "")) };
  return { stderr: stripAnsi(err instanceof Error ? err.message : String(err)), stdout: "" };
}

/** The `error:` lines of an engine's output with the lines indented under each, at most `max`. */
function errorLines(text: string, max = 12): string[] {
  const all = text.split("\n").map((l) => l.trimEnd());
  const out: string[] = [];
  for (let i = 0; i < all.length && out.length < max; i++) {
    if (!/^\s*error:/i.test(all[i])) continue;
    out.push(all[i].trim());
    for (let j = i + 1; j < all.length && /^\s+\S/.test(all[j]) && !/^\s*error:/i.test(all[j]) && out.length < max; j++)
      out.push(`  ${all[j].trim()}`);
  }
  return [...new Set(out)];
}

/** A file backend's lock URL as a path (`file:///…/x.json?no_tmp_dir=true` → `/…/x.json`); other URLs as they are. */
function lockFilePath(url: string): string {
  if (!url.startsWith("file://")) return url;
  try {
    return decodeURIComponent(new URL(url).pathname);
  } catch {
    return url;
  }
}

/**
 * Why an engine command (an Automation API CommandError, or anything thrown around it) failed:
 * a reason line and the engine's error lines, trimmed. A held stack lock names what holds it.
 */
export function explainEngineError(err: unknown): EngineFailure {
  const { stderr, stdout } = errorText(err);
  let lines = errorLines(stderr);
  if (lines.length === 0) lines = errorLines(stdout);
  if (lines.length === 0)
    lines = stderr
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean)
      .slice(-8);
  const locked =
    err instanceof ConcurrentUpdateError ||
    /the stack is currently locked by|\[409\] Conflict: Another update is currently in progress/.test(stderr);
  if (locked) {
    // File backend: "  file:///…/.pulumi/locks/<org>/<project>/<stack>/<id>.json: created by user@host (pid N) at T".
    const holders = [...stderr.matchAll(/^\s*(\S+): created by (\S+) \(pid (\d+)\) at (\S+)\s*$/gm)].map(
      (m) => `${m[2]}, pid ${m[3]}, since ${m[4]}: lock file ${lockFilePath(m[1])}`,
    );
    const what = holders.length > 0 ? holders.join("; ") : "the backend reports an update in progress";
    return { reason: `another update holds the stack lock (${what})`, lines, locked };
  }
  // The first error line, completed by the line that says what it is about when it only
  // introduces it ("invalid stack configuration:", a step's "--- stderr ---").
  // The engine's generic summary ("error: update failed") only when nothing more specific was said.
  const generic = (l: string) => /^error:\s*(update|preview|refresh|destroy) failed\s*$/i.test(l);
  let at = lines.findIndex((l) => /^error:/i.test(l) && !generic(l));
  if (at < 0) at = lines.findIndex((l) => /^error:/i.test(l));
  let first = at >= 0 ? lines[at].replace(/^error:\s*/i, "") : undefined;
  const next = lines.slice(at + 1).map((l) => l.trim());
  if (first !== undefined && next.length > 0) {
    if (next[0] === "--- stderr ---" && next[1]) first = `${first}: ${next[1]}`;
    else if (first.endsWith(":")) first = `${first} ${next[0]}`;
  }
  const reason = first
    ? first
    : err instanceof CommandError
      ? `the engine exited with code ${(err as unknown as { commandResult?: { code?: number } }).commandResult?.code ?? "?"}`
      : err instanceof Error
        ? err.message.split("\n")[0]
        : String(err);
  return { reason, lines, locked };
}

/**
 * Runs an engine call the tool needs (history, config, outputs), turning its failure into a
 * ToolError (exit 1) that says what could not be done and why, without a stack trace.
 */
export async function engineCall<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof ToolError) throw err;
    const f = explainEngineError(err);
    const more = f.lines.filter((l) => !l.includes(f.reason));
    throw new ToolError(`cannot ${what}: ${f.reason}${more.length > 0 ? `\n  ${more.join("\n  ")}` : ""}`, 1, { cause: err });
  }
}

// --- Which resource operations the engine began ------------------------------------------------

/** Operations that change nothing (a resource kept as it is, or read). */
const NOT_A_CHANGE = new Set(["same", "read", "refresh"]);
/** A provider's own update (its plugin config) changes no server. */
const isProvider = (type: string) => type.startsWith("pulumi:providers:");

/** Follows an update's engine events: whether it started, and which changes it began. */
/**
 * `stack.up` without the three CLI calls the SDK makes after the update, one after the other (the
 * outputs twice, once decrypting every secret, then the newest history entry): about 0.8 s of
 * every rollback. The caller reads what it needs itself, side by side. Its `up` calls `outputs`
 * and `info` on the object it runs on: here one whose own versions of them read nothing.
 */
export async function upOnly(stack: Stack, opts: UpOptions): Promise<void> {
  const bare: Stack = Object.create(stack);
  Object.assign(bare, { outputs: async () => ({}), info: async () => undefined });
  await bare.up(opts);
}

export class UpdateWatch {
  /** The engine sent any event (its prelude first): the update itself ran. */
  engineStarted = false;
  /** Resource operations begun, other than `same`/`read` and providers' own: `<op> <type> <name>`. */
  readonly changes: string[] = [];

  readonly onEvent = (event: EngineEvent): void => {
    this.engineStarted = true;
    const meta = event.resourcePreEvent?.metadata;
    if (meta && !NOT_A_CHANGE.has(meta.op) && !isProvider(meta.type))
      this.changes.push(`${meta.op} ${meta.type} ${meta.urn.split("::").pop()}`);
  };

  /** How it ended, as facts: `nothing began` or `N operations began (first: …)`. */
  describe(): string {
    if (!this.engineStarted) return "the update never started (the engine reported no event)";
    if (this.changes.length === 0) return "the engine began no resource operation (it reported none but `same`, reads and providers' own)";
    return `the engine had begun ${this.changes.length} resource operation(s) (first: ${this.changes.slice(0, 3).join(", ")})`;
  }
}

// --- The stack file around the rewrite of `apps` ---------------------------------------------------

/**
 * The stack file and the `apps` value before the rollback rewrote it: to put it back exactly, and to
 * print the change it made.
 */
export class StackFileChange {
  readonly file: string;
  private written: string | undefined;

  private constructor(
    readonly stack: Stack,
    readonly root: string,
    readonly stackName: string,
    readonly before: string | undefined,
    readonly appsBefore: ConfigValue | undefined,
  ) {
    this.file = path.join(root, stackFileName(stackName));
  }

  /** Reads the stack file's text and its `apps` value as they are now. */
  static async capture(stack: Stack, root: string, stackName: string): Promise<StackFileChange> {
    const before = readText(path.join(root, stackFileName(stackName)));
    let appsBefore: ConfigValue | undefined;
    try {
      appsBefore = await stack.getConfig("apps");
    } catch {
      appsBefore = undefined;
    }
    return new StackFileChange(stack, root, stackName, before, appsBefore);
  }

  /**
   * Sets `apps` (plain) and remembers the file it wrote. The key's block is rewritten in the file
   * as YAML, every other line kept, so the change to commit is the apps change alone; the engine
   * then reads it back. When it reads something else (or the file is not one the text edit
   * handles), the file is put back and the engine writes the value itself (as JSON text, with
   * the engine's own formatting of the whole file).
   */
  async setApps(apps: Record<string, unknown>): Promise<void> {
    const edited = this.before !== undefined ? setConfigBlock(this.before, `${PROJECT}:apps`, apps) : undefined;
    if (edited !== undefined) {
      fs.writeFileSync(this.file, edited);
      let read: ConfigValue | undefined;
      try {
        read = await this.stack.getConfig("apps");
      } catch {
        read = undefined;
      }
      if (read && canonicalJson(JSON.parse(read.value)) === canonicalJson(apps)) {
        this.written = edited;
        return;
      }
      fs.writeFileSync(this.file, this.before!);
    }
    await engineCall(`write the apps config of stack ${this.stackName} (${stackFileName(this.stackName)}); nothing was changed`, () =>
      this.stack.setConfig("apps", { value: JSON.stringify(apps), secret: false }, false),
    );
    this.written = readText(this.file);
  }

  /**
   * Puts the stack file back as it was: byte for byte when nobody changed it since the rewrite,
   * else the `apps` value alone through the engine. Returns what it did, checked.
   */
  async restore(): Promise<string> {
    const now = readText(this.file);
    const name = stackFileName(this.stackName);
    if (this.before !== undefined && now !== undefined && now === this.written) {
      fs.writeFileSync(this.file, this.before);
      if (readText(this.file) === this.before) return `${name} is back as it was, byte for byte`;
    }
    if (this.appsBefore) await this.stack.setConfig("apps", this.appsBefore, false);
    else await this.stack.removeConfig("apps", false);
    let after: ConfigValue | undefined;
    try {
      after = await this.stack.getConfig("apps");
    } catch {
      after = undefined;
    }
    if (after?.value !== this.appsBefore?.value)
      throw new ToolError(`could not put the apps config of ${name} back: it now reads ${after?.value ?? "(unset)"}`, 1);
    return `the apps value of ${name} is back as it was (the file changed meanwhile, so only that key was put back)`;
  }

  /** The unified diff of the stack file, before the rollback → now ("" when unchanged). */
  diff(): string {
    const now = readText(this.file) ?? "";
    return unifiedDiff(this.before ?? "", now, stackFileName(this.stackName));
  }
}
