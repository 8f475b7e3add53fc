/** `apps.<app>.health`: the paths a slot must answer, each with the JSON fields it must hold. */
import { Raw, Reader } from "./reader";
import { HealthCheck } from "./types";

/** The shorthand for one first check (path, expect, versionField) and 200-only ones (extraPaths). */
export const HEALTH_SHORTHAND_KEYS = ["path", "expect", "versionField", "extraPaths"] as const;
export const HEALTH_CHECK_KEYS = ["path", "expect", "versionField"] as const;

const HEALTH_PATH = { pattern: /^\/[^\s]*$/, patternText: 'must start with "/"' };

/**
 * An app's health paths, each with the JSON fields its answer must hold: `checks` (a list of
 * { path, expect, versionField? }, the version on one of them at most), or the shorthand (path,
 * expect and versionField of one first check, default /health answering status ok and the version;
 * extraPaths that must only answer 200). Both forms at once are refused: which one is meant?
 */
export function parseHealthChecks(r: Reader, h: Raw | undefined, at: string): HealthCheck[] {
  if (h?.checks === undefined || h.checks === null) {
    const versionField = r.string(h?.versionField, `${at}.versionField`) ?? "version";
    return [
      {
        path: r.string(h?.path, `${at}.path`, HEALTH_PATH) ?? "/health",
        expect: r.stringMap(h?.expect ?? { status: "ok" }, `${at}.expect`),
        versionField,
      },
      ...r
        .stringList(h?.extraPaths, `${at}.extraPaths`, HEALTH_PATH.pattern, HEALTH_PATH.patternText)
        .map((path) => ({ path, expect: {} })),
    ];
  }
  const mixed = HEALTH_SHORTHAND_KEYS.filter((k) => h[k] !== undefined && h[k] !== null);
  if (mixed.length > 0) {
    r.fail(
      `${at}.checks`,
      `cannot be combined with ${mixed.join(", ")} (the shorthand for one check): give every path, its expect and versionField, in checks`,
    );
  }
  if (!Array.isArray(h.checks)) return r.fail(`${at}.checks`, "must be a list of { path, expect, versionField }") ?? [];
  if (h.checks.length === 0) r.fail(`${at}.checks`, "must name at least one path");
  const checks = h.checks.map((v: unknown, i: number): HealthCheck => {
    const cat = `${at}.checks[${i}]`;
    const c = v === undefined || v === null ? r.fail(cat, "must be an object") : r.object(v, cat);
    if (!c) return { path: "", expect: {} };
    r.knownKeys(c, cat, HEALTH_CHECK_KEYS);
    const check: HealthCheck = {
      path: r.string(c.path, `${cat}.path`, { required: true, ...HEALTH_PATH }) ?? "",
      expect: r.stringMap(c.expect, `${cat}.expect`),
    };
    const versionField = r.string(c.versionField, `${cat}.versionField`);
    if (versionField) check.versionField = versionField;
    return check;
  });
  const versioned = checks.flatMap((c, i) => (c.versionField ? [i] : []));
  for (const i of versioned.slice(1)) {
    r.fail(`${at}.checks[${i}].versionField`, `the version is compared on one path only, and checks[${versioned[0]}] does`);
  }
  checks.forEach((c, i) => {
    const first = checks.findIndex((o) => o.path === c.path);
    if (c.path && first < i) r.fail(`${at}.checks[${i}].path`, `${c.path} is already checked by checks[${first}]`);
  });
  return checks;
}
