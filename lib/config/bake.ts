/**
 * `bake`: how long the deploy watches the new release after the switch, and what sends traffic
 * back on its own (the runbooks: roll back above 10% errors in production, under 1% in staging;
 * grep the logs for ERROR, FATAL, Traceback).
 */
import { Reader } from "./reader";

export interface BakeConfig {
  /** Seconds of traffic the new slots are watched for after the switch. */
  seconds: number;
  /** Switch back when more than this percent of the new slots' answers are 5xx. */
  maxErrorPercent: number;
  /** Switch back when their p95 latency is more than this many times the old slots' p95 ... */
  p95Factor: number;
  /** ... and more than this many milliseconds above it (a tiny p95 doubling is noise). */
  p95FloorMs: number;
  /** Fewer requests than this in the window: too few to judge; probes are sent, then `tooFew`. */
  minRequests: number;
  tooFew: "pass" | "fail";
  /** Plain substrings that, in a new slot's own log lines since its start, switch back. */
  logPatterns: string[];
}

export const BAKE_KEYS = ["seconds", "maxErrorPercent", "p95Factor", "p95FloorMs", "minRequests", "tooFew", "logPatterns"] as const;
export const DEFAULT_LOG_PATTERNS = ["ERROR", "FATAL", "UnhandledPromiseRejection", "Traceback"];

/** Parses `bake` (absent: no bake window). */
export function parseBake(r: Reader, v: unknown): BakeConfig | undefined {
  const b = r.object(v, "bake");
  if (!b) return undefined;
  r.knownKeys(b, "bake", BAKE_KEYS);
  return {
    seconds: r.int(b.seconds, "bake.seconds", 1, 3600) ?? 0,
    maxErrorPercent: r.int(b.maxErrorPercent, "bake.maxErrorPercent", 0, 100, 10) ?? 10,
    p95Factor: r.int(b.p95Factor, "bake.p95Factor", 1, 100, 3) ?? 3,
    p95FloorMs: r.int(b.p95FloorMs, "bake.p95FloorMs", 0, 60000, 100) ?? 100,
    minRequests: r.int(b.minRequests, "bake.minRequests", 1, 100000, 20) ?? 20,
    tooFew: r.oneOf(b.tooFew, "bake.tooFew", ["pass", "fail"] as const, "pass"),
    logPatterns:
      b.logPatterns === undefined
        ? DEFAULT_LOG_PATTERNS
        : r.stringList(b.logPatterns, "bake.logPatterns", /^[^\n]{1,200}$/, "must be one line of text"),
  };
}
