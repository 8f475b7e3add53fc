/**
 * The rollback's edit of a stack file's `apps` key, as text: the key's block is replaced by the new
 * value written as YAML, and every other byte of the file (comments, quoting, folding of other
 * values) stays as it was, so the change to commit is the apps change and nothing else.
 * Pure: text in, text out (undefined when the file's shape is not one it can edit safely).
 */
import * as yaml from "js-yaml";

/**
 * `text` with the top-level config key `key` (e.g. `nostromo-deploy:apps`) set to `value`:
 * its block replaced in place (its line and every following line indented deeper than it, or
 * blank), else appended to the `config:` map. Undefined when there is no `config:` map at the top
 * level or the key appears more than once.
 */
export function setConfigBlock(text: string, key: string, value: unknown): string | undefined {
  const lines = text.split("\n");
  const configAt = lines.findIndex((l) => /^config:\s*$/.test(l));
  if (configAt < 0) return undefined;
  const keyRe = new RegExp(`^(\\s+)${key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:(\\s|$)`);
  const hits = lines.map((l, i) => (keyRe.test(l) ? i : -1)).filter((i) => i > configAt);
  if (hits.length > 1) return undefined;
  // Indent of the config map's entries: the key's own, else the first entry's, else two spaces.
  const firstEntry = lines.slice(configAt + 1).find((l) => /^\s+\S/.test(l) && !/^\s+#/.test(l));
  const indent = hits.length ? keyRe.exec(lines[hits[0]])![1] : (/^(\s+)/.exec(firstEntry ?? "  ")?.[1] ?? "  ");
  // Keys in the order the file has them (a history's values come back sorted): the diff is then
  // the values that changed, not a reshuffle.
  let current: unknown;
  try {
    current = ((yaml.load(text) as { config?: Record<string, unknown> } | undefined)?.config ?? {})[key];
  } catch {
    return undefined;
  }
  const block = yaml
    .dump({ [key]: orderLike(value, current) }, { lineWidth: -1, noRefs: true, quotingType: '"' })
    .trimEnd()
    .split("\n")
    .map((l) => indent + l);
  if (hits.length === 1) {
    let end = hits[0] + 1;
    while (end < lines.length && (lines[end].trim() === "" || /^(\s*)/.exec(lines[end])![1].length > indent.length)) end++;
    // Blank lines before the next key belong to the file's layout, not to the block.
    while (end > hits[0] + 1 && lines[end - 1].trim() === "") end--;
    return [...lines.slice(0, hits[0]), ...block, ...lines.slice(end)].join("\n");
  }
  // Appended after the config map's last entry line.
  let end = configAt + 1;
  while (end < lines.length && (lines[end].trim() === "" || /^\s/.test(lines[end]))) end++;
  while (end > configAt + 1 && lines[end - 1].trim() === "") end--;
  return [...lines.slice(0, end), ...block, ...lines.slice(end)].join("\n");
}

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** `value` with its maps' keys in the order `like` has them (keys `like` lacks come last, as they are). */
export function orderLike(value: unknown, like: unknown): unknown {
  if (!isMap(value) || !isMap(like)) return value;
  const keys = [...Object.keys(like).filter((k) => k in value), ...Object.keys(value).filter((k) => !(k in like))];
  return Object.fromEntries(keys.map((k) => [k, orderLike(value[k], like[k])]));
}
