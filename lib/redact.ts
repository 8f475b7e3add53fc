/**
 * Secret values out of what a step prints: every value of the secret config (and the password
 * inside a URL-shaped one) becomes `[secret]` wherever it appears, longest first so a value that
 * contains another is replaced whole. Values under 4 characters are left: replacing `a` or `1`
 * everywhere would hide the output, not the secret.
 */
export const REDACTED = "[secret]";
const MIN_LENGTH = 4;

/** The strings to hide for these secret values: each value, and a URL's password. */
export function redactionList(values: unknown[]): string[] {
  const out = new Set<string>();
  for (const v of values) {
    if (typeof v !== "string" || !v) continue;
    out.add(v);
    try {
      const password = new URL(v).password;
      if (password) {
        out.add(password);
        out.add(decodeURIComponent(password));
      }
    } catch {
      // not a URL
    }
  }
  return [...out].filter((v) => v.length >= MIN_LENGTH).sort((a, b) => b.length - a.length);
}

/**
 * `text` with every string of `list` (redactionList) replaced by [secret]. The prefix of a
 * `keep` line (the steps' result line) is kept whatever the secrets are: the protocol must
 * survive a secret that happens to be a word of it.
 */
export function redact(text: string, list: readonly string[] | undefined, keep?: string): string {
  if (!list || list.length === 0 || !text) return text;
  const hide = (s: string) => list.reduce((out, secret) => out.split(secret).join(REDACTED), s);
  if (!keep) return hide(text);
  return text
    .split("\n")
    .map((l) => (l.startsWith(keep) ? keep + hide(l.slice(keep.length)) : hide(l)))
    .join("\n");
}
