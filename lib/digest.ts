/**
 * Digests of what reaches a server, so a change of any of it is seen without its value: the
 * .env as a whole (re-runs the steps) and per key (the preview names the keys that changed).
 * Keyed (HMAC with a per-stack secret kept in the state), so a short secret cannot be guessed
 * from its digest in a preview or a stack output. No @pulumi import.
 */
import { createHmac } from "crypto";

export function hmacHex(key: string, text: string): string {
  return createHmac("sha256", key).update(text).digest("hex");
}

/** Digest of each entry (16 hex digits), by key: what the plan compares between deploys. */
export function entryDigests(key: string, entries: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(entries).sort()) out[k] = hmacHex(key, `${k}=${JSON.stringify(entries[k])}`).slice(0, 16);
  return out;
}

/** Keys whose digest differs between two digest maps (added and removed ones too), sorted. */
export function changedKeys(before: Record<string, string> | undefined, after: Record<string, string>): string[] {
  if (!before) return [];
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => before[k] !== after[k]).sort();
}
