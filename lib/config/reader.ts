/**
 * The config reader: collects problems with their paths, so one run reports them all. Beside
 * typed values it refuses keys the deploy does not read (a typo such as `migrat:` would otherwise
 * silently drop the migration) and commands that would break the script line they are put on.
 */
export type Raw = Record<string, unknown>;

/** Edit distance (insert, delete, substitute) between two short strings. */
export function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/** The known key a mistyped one most likely meant: within 2 edits (case aside), or a prefix either way. */
export function suggestKey(key: string, known: readonly string[]): string | undefined {
  const k = key.toLowerCase();
  let best: { name: string; d: number } | undefined;
  for (const name of known) {
    const n = name.toLowerCase();
    const d = levenshtein(k, n);
    const close = d <= 2 && d < Math.max(k.length, n.length) - 1;
    const prefix = k.length >= 3 && (n.startsWith(k) || k.startsWith(n));
    if ((close || prefix) && (!best || d < best.d)) best = { name, d };
  }
  return best?.name;
}

/**
 * Where a command put on one line of a bash script stops being one command there: a line break,
 * or a `#` starting a word outside quotes (bash reads the rest of that line as a comment).
 */
export function commandLineProblem(cmd: string): "a line break" | "a # comment" | undefined {
  if (/[\r\n]/.test(cmd)) return "a line break";
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < cmd.length; i++) {
    const c = cmd[i];
    if (quote === "'") {
      if (c === "'") quote = undefined;
    } else if (c === "\\") {
      i++;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
    } else if (c === "'" || c === '"') {
      quote = c;
    } else if (c === "#" && (i === 0 || /[\s;&|()<>]/.test(cmd[i - 1]))) {
      return "a # comment";
    }
  }
  return undefined;
}

/** Collects problems with their paths, so one run reports them all. */
export class Reader {
  readonly problems: string[] = [];

  fail(path: string, message: string): undefined {
    this.problems.push(`${path}: ${message}`);
    return undefined;
  }

  object(v: unknown, path: string): Raw | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "object" || Array.isArray(v)) return this.fail(path, "must be an object");
    return v as Raw;
  }

  string(v: unknown, path: string, opts: { required?: boolean; pattern?: RegExp; patternText?: string } = {}): string | undefined {
    if (v === undefined || v === null || v === "") {
      return opts.required ? this.fail(path, "is required") : undefined;
    }
    if (typeof v !== "string") return this.fail(path, "must be a string");
    if (opts.pattern && !opts.pattern.test(v)) return this.fail(path, opts.patternText ?? `must match ${opts.pattern}`);
    return v;
  }

  int(v: unknown, path: string, min: number, max: number, fallback?: number): number | undefined {
    if (v === undefined || v === null) return fallback ?? this.fail(path, "is required");
    const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
      return this.fail(path, `must be a whole number from ${min} to ${max}`);
    }
    return n;
  }

  bool(v: unknown, path: string, fallback: boolean): boolean {
    if (v === undefined || v === null) return fallback;
    if (typeof v === "boolean") return v;
    if (v === "true" || v === "false") return v === "true";
    this.fail(path, "must be true or false");
    return fallback;
  }

  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[], fallback: T): T {
    if (v === undefined || v === null) return fallback;
    if (typeof v === "string" && (allowed as readonly string[]).includes(v)) return v as T;
    this.fail(path, `must be one of ${allowed.join(", ")}`);
    return fallback;
  }

  stringMap(v: unknown, path: string, keyPattern?: RegExp): Record<string, string> {
    const o = this.object(v, path);
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(o ?? {})) {
      if (keyPattern && !keyPattern.test(k)) {
        this.fail(`${path}.${k}`, `is not a valid name (${keyPattern})`);
        continue;
      }
      if (typeof val !== "string" && typeof val !== "number" && typeof val !== "boolean") {
        this.fail(`${path}.${k}`, "must be a string");
        continue;
      }
      out[k] = String(val);
    }
    return out;
  }

  stringList(v: unknown, path: string, pattern?: RegExp, patternText?: string): string[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.fail(path, "must be a list");
      return [];
    }
    return v
      .map((item, i) => this.string(item, `${path}[${i}]`, { required: true, pattern, patternText }))
      .filter((s): s is string => s !== undefined);
  }

  /** Refuses the keys of `o` not in `known`, naming the close one it likely meant. */
  knownKeys(o: Raw | undefined, path: string, known: readonly string[]): void {
    for (const key of Object.keys(o ?? {})) {
      if (known.includes(key)) continue;
      const at = path ? `${path}.${key}` : key;
      const close = suggestKey(key, known);
      this.fail(at, close ? `unknown key (did you mean "${close}"?)` : `unknown key (known keys: ${known.join(", ")})`);
    }
  }

  /** A command the deploy's scripts run in place, on one of their lines. */
  command(v: unknown, path: string, opts: { required?: boolean } = {}): string | undefined {
    const cmd = this.string(v, path, opts);
    if (cmd === undefined) return undefined;
    const problem = commandLineProblem(cmd);
    // The problem is recorded (the parse fails); the value is kept so no "is required" follows it.
    if (problem) this.fail(path, `must be one line without a # comment (it is run inside the deploy's scripts); found ${problem}`);
    return cmd;
  }
}
