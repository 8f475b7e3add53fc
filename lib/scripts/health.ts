/**
 * What a health answer must hold, shared by the health gate, the refresh check of a slot and the
 * cutover's verification. Not re-exported by ./index.ts: the builders use it, no step is made of it.
 */
import { HealthCheck } from "../config";

/** The JSON fields an answer to `check` must hold: its own and, when given, the version. */
export function expectedHealth(check: HealthCheck, version: string | undefined): Record<string, string> {
  const expect: Record<string, string> = { ...check.expect };
  if (check.versionField && version !== undefined) expect[check.versionField] = version;
  return expect;
}

/** expectedHealth as the scripts take it: JSON text, or "" when any 200 answer will do. */
export function expectedText(check: HealthCheck, version: string | undefined): string {
  const expect = expectedHealth(check, version);
  return Object.keys(expect).length > 0 ? JSON.stringify(expect) : "";
}

/**
 * Node one-liner: exit 0 when the JSON in argv[2] has every field of argv[1] with its value; else
 * exit 1, printing the first field that differs and what it holds (`field database is
 * "disconnected"`, `field version is missing`), or `not JSON`.
 */
export const EXPECT_FIELDS =
  `const e=JSON.parse(process.argv[1]);let b;try{b=JSON.parse(process.argv[2])}catch{console.log("not JSON");process.exit(1)}` +
  `for(const k in e){const v=b!==null&&typeof b==="object"?b[k]:undefined;` +
  `if(v===undefined||String(v)!==e[k]){console.log("field "+k+(v===undefined?" is missing":" is "+JSON.stringify(v)));process.exit(1)}}`;
