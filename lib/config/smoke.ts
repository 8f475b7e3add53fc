/**
 * Smoke steps, and the secrets they send. A step's body and header values name a secret as
 * `${secret:NAME}`; the values live in the stack secret `smokeSecrets` (name → value), reach the
 * server on the cutover's standard input only, and are filled in there in memory (never in the
 * config object, a script's text, a command line or the state in clear). So a smoke step may not
 * hold a credential in clear either: a body key or header that looks like one must use a placeholder.
 */
import { Raw, Reader } from "./reader";
import { SmokeStep } from "./types";

export const SMOKE_KEYS = [
  "name",
  "method",
  "path",
  "body",
  "headers",
  "auth",
  "expectStatus",
  "expectFields",
  "expectValues",
  "expectEvery",
  "captureToken",
] as const;
export const EXPECT_EVERY_KEYS = ["array", "field", "value"] as const;

/** The secret config key holding the smoke steps' secrets (a JSON object, name → string). */
export const SMOKE_SECRETS_KEY = "smokeSecrets";
const SECRET_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
/** `${secret:NAME}`: a placeholder for the value of smokeSecrets.NAME (the smoke program fills it in). */
export const SECRET_REF = /\$\{secret:([A-Za-z][A-Za-z0-9_]{0,63})\}/g;
// Body keys and header names that carry a credential: their value must be a placeholder.
const CREDENTIAL_KEY = /pass(word|wd|phrase)?$|pwd|token|secret|api[-_]?key|credential/i;
const CREDENTIAL_HEADER = /^(authorization|proxy-authorization|cookie)$|token|secret|api[-_]?key|pass(word)?/i;

const howToSet = (name: string) => `pulumi config set --secret --path '${SMOKE_SECRETS_KEY}.${name}' …`;

/** The secret names a value refers to (strings, arrays and objects searched), sorted, once each. */
export function secretRefs(v: unknown): string[] {
  const out = new Set<string>();
  const walk = (x: unknown): void => {
    if (typeof x === "string") for (const m of x.matchAll(SECRET_REF)) out.add(m[1]);
    else if (Array.isArray(x)) x.forEach(walk);
    else if (x && typeof x === "object") Object.values(x).forEach(walk);
  };
  walk(v);
  return [...out].sort();
}

/** The secret names the smoke steps use (bodies and headers): only these are sent to the server. */
export function smokeSecretRefs(steps: SmokeStep[]): string[] {
  return secretRefs(steps.map((s) => [s.body, s.headers]));
}

/**
 * What the program may know of the secret `smokeSecrets` while validating: its names, never its
 * values (`json` is the decrypted config text, read and dropped here). No names when it is not set.
 */
export function smokeSecretNames(json: string | undefined): { names: string[]; problem?: string } {
  if (json === undefined) return { names: [] };
  const problem = `must be an object of name → text (${howToSet("<name>")})`;
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return { names: [], problem };
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) return { names: [], problem };
  const entries = Object.entries(v);
  const bad = entries.filter(([k, x]) => typeof x !== "string" || !SECRET_NAME.test(k));
  if (bad.length > 0) return { names: [], problem: `${problem}; not so: ${bad.map(([k]) => JSON.stringify(k)).join(", ")}` };
  return { names: entries.map(([k]) => k).sort() };
}

/** One line of JSON holding the values of `names` from the secret's JSON text: the cutover's stdin. */
export function smokeSecretsLine(names: string[], json: string | undefined): string {
  const all = (json ? JSON.parse(json) : {}) as Record<string, string>;
  return `${JSON.stringify(Object.fromEntries(names.map((n) => [n, all[n]])))}\n`;
}

/** Checks one body value or header: placeholders well formed and set, no credential in clear. */
function checkSecrets(r: Reader, at: string, v: unknown, names: string[] | undefined, credential: boolean): void {
  if (typeof v === "string") {
    for (const m of v.matchAll(/\$\{secret:([^}]*)(\}?)/g)) {
      const name = m[2] && SECRET_NAME.test(m[1]) ? m[1] : undefined;
      if (!name) r.fail(at, `${JSON.stringify(m[0])} is not a secret placeholder: write \${secret:NAME}, NAME of letters, digits, '_'`);
      else if (names && !names.includes(name))
        r.fail(at, `names the secret "${name}", which ${SMOKE_SECRETS_KEY} does not hold (${howToSet(name)})`);
    }
  }
  if (credential && (typeof v !== "string" || secretRefs(v).length === 0)) {
    r.fail(at, `looks like a credential, in clear in the stack's config: write "\${secret:NAME}" and set it with ${howToSet("NAME")}`);
  }
}

/** Walks a body: every string checked, keys that look like credentials must hold placeholders. */
function checkBody(r: Reader, at: string, v: unknown, names: string[] | undefined): void {
  if (Array.isArray(v)) v.forEach((x, i) => checkBody(r, `${at}[${i}]`, x, names));
  else if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      if (x && typeof x === "object") checkBody(r, `${at}.${k}`, x, names);
      else checkSecrets(r, `${at}.${k}`, x, names, CREDENTIAL_KEY.test(k));
    }
  } else checkSecrets(r, at, v, names, false);
}

/** The smoke steps (`smoke:` list), checked; `names`: those smokeSecrets holds (undefined: not checked). */
export function parseSmoke(r: Reader, v: unknown, names: string[] | undefined): SmokeStep[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    r.fail("smoke", "must be a list of steps");
    return [];
  }
  return v.map((item, i) => {
    const at = `smoke[${i}]`;
    const s: Raw = r.object(item, at) ?? {};
    r.knownKeys(s, at, SMOKE_KEYS);
    const every = r.object(s.expectEvery, `${at}.expectEvery`);
    r.knownKeys(every, `${at}.expectEvery`, EXPECT_EVERY_KEYS);
    const headers = r.stringMap(s.headers, `${at}.headers`, /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/);
    checkBody(r, `${at}.body`, s.body, names);
    for (const [k, h] of Object.entries(headers)) checkSecrets(r, `${at}.headers.${k}`, h, names, CREDENTIAL_HEADER.test(k));
    const path = r.string(s.path, `${at}.path`, { required: true, pattern: /^\/[^\s]*$/, patternText: 'must start with "/"' });
    if (path?.includes("${secret:")) r.fail(`${at}.path`, "secrets are filled in only in body and headers (a path is logged)");
    return {
      name: r.string(s.name, `${at}.name`, { required: true }) ?? `step ${i + 1}`,
      method: r.oneOf(s.method, `${at}.method`, ["GET", "POST"] as const, "GET"),
      path: path ?? "/",
      body: s.body,
      headers,
      auth: r.bool(s.auth, `${at}.auth`, false),
      expectStatus: r.int(s.expectStatus, `${at}.expectStatus`, 100, 599, 200) ?? 200,
      expectFields: r.stringList(s.expectFields, `${at}.expectFields`),
      expectValues: r.stringMap(s.expectValues, `${at}.expectValues`),
      expectEvery: every
        ? {
            array: r.string(every.array, `${at}.expectEvery.array`, { required: true }) ?? "",
            field: r.string(every.field, `${at}.expectEvery.field`, { required: true }) ?? "",
            value: r.string(every.value, `${at}.expectEvery.value`, { required: true }) ?? "",
          }
        : undefined,
      captureToken: r.string(s.captureToken, `${at}.captureToken`),
    };
  });
}
