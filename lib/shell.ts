/**
 * The one quoting function: every value interpolated into a shell script goes through it.
 * POSIX single quotes; a `'` inside becomes `'\''`. Safe for any byte string without NUL.
 */
export function quote(value: string | number): string {
  const text = String(value);
  if (text.includes("\0")) {
    throw new Error("shell values cannot contain NUL bytes");
  }
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Joins script lines; a script always stops at its first failing command. */
export function script(...lines: (string | false | undefined)[]): string {
  return ["set -eu", ...lines.filter((l): l is string => typeof l === "string" && l.length > 0)].join("\n") + "\n";
}
