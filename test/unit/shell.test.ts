import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { quote, script } from "../../lib/shell";

/** mulberry32: a small seeded PRNG, so that a failing case reproduces from the seed in its message. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** NOSTROMO_QUOTE_SEED=<n> reruns the property with another seed. */
const SEED = Number(process.env.NOSTROMO_QUOTE_SEED ?? 20240817);
const RANDOM_CASES = 2000;

/** What shells treat specially: quotes, escapes, expansions, globs, history, operators, printf formats, option-like words. */
// prettier-ignore
const TRICKS = [
  "'", "''", "'\\''", "\\", "\\'", '"', '\\"', "$", "$(", "$()", "$(id)", "`", "`id`", "${HOME}", "$HOME", "$'\\x41'", "$((1+1))", "!",
  "!!", "!$", "\n", "\r\n", "\t", " ", "*", "?", "[a]", "~", "~root", "{a,b}", "#", ";", "&&", "||", "|", "&", "<", ">", ">>", "<<EOF",
  "EOF", "%s", "%b", "%%", "\\0", "\\n", "\\x41", "-n", "-e", "--", "=", "IFS", "\x7f", "\u00a0", "\u2028", "\ufeff",
];

/** Any code point but a surrogate (a JavaScript string holds no raw bytes: 0x80–0xFF appear as UTF-8 of U+0080–U+00FF and wider). */
function codePoint(rand: () => number): string {
  const r = rand();
  if (r < 0.4) return String.fromCharCode(1 + Math.floor(rand() * 255));
  if (r < 0.6) return String.fromCharCode(0x20 + Math.floor(rand() * 0x5f));
  if (r < 0.85) {
    const c = 0x100 + Math.floor(rand() * (0x10000 - 0x100 - 0x800));
    return String.fromCharCode(c >= 0xd800 ? c + 0x800 : c);
  }
  return String.fromCodePoint(0x10000 + Math.floor(rand() * 0x100000));
}

/** The fixed cases, then RANDOM_CASES strings from SEED. */
function cases(): string[] {
  const all: string[] = ["", ...TRICKS];
  for (let c = 1; c <= 0xff; c++) all.push(String.fromCharCode(c), `a${String.fromCharCode(c)}b`);
  all.push(Array.from({ length: 0xff }, (_, i) => String.fromCharCode(i + 1)).join(""));
  all.push(TRICKS.join(""), TRICKS.join(" "), "'".repeat(20_000), "x".repeat(60_000), "\n".repeat(1000), "🚀".repeat(5000));
  const rand = prng(SEED);
  for (let i = 0; i < RANDOM_CASES; i++) {
    const r = rand();
    const length = r < 0.6 ? Math.floor(rand() * 17) : r < 0.95 ? Math.floor(rand() * 200) : Math.floor(rand() * 4000);
    let s = "";
    for (let n = 0; n < length; n++) s += rand() < 0.3 ? TRICKS[Math.floor(rand() * TRICKS.length)] : codePoint(rand);
    all.push(s);
  }
  return all;
}

/** A case as JSON, cut after 200 characters. */
const show = (s: string) => JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}…` : s);

/** The line that prints one case, NUL-terminated. */
const printfLine = (s: string) => `printf '%s\\0' ${quote(s)}`;

/** Splits `strings` into runs whose command (`size` bytes per case) stays well below Linux's 128 KiB limit on one argument. */
function batches(strings: string[], maxBytes: number, size: (s: string) => number): string[][] {
  const out: string[][] = [[]];
  let bytes = 0;
  for (const s of strings) {
    const n = size(s) + 1;
    if (bytes + n > maxBytes && out[out.length - 1].length > 0) {
      out.push([]);
      bytes = 0;
    }
    out[out.length - 1].push(s);
    bytes += n;
  }
  return out;
}

/** Where bash runs: were quoting broken, a case such as `>` or `<<EOF` would write files there, not in the project. */
let scratch = "";

/**
 * Runs `printf '%s\0' <quote(s)>` for every string in one bash per batch (`wrap` turns that script
 * into the command bash runs) and asserts that bash printed the bytes of each string exactly.
 */
function assertRoundTrip(strings: string[], locale: string, wrap: (text: string) => string = (t) => t): void {
  for (const batch of batches(strings, 100_000, (s) => Buffer.byteLength(wrap(printfLine(s))))) {
    const text = wrap(batch.map(printfLine).join("\n"));
    const r = spawnSync("bash", ["-c", text], {
      cwd: scratch,
      env: { ...process.env, LC_ALL: locale },
      maxBuffer: 1 << 28,
      timeout: 30_000,
    });
    if (r.status !== 0) {
      // Name the first case that bash cannot run on its own.
      const bad = batch.find(
        (s) => spawnSync("bash", ["-c", wrap(printfLine(s))], { cwd: scratch, env: { ...process.env, LC_ALL: locale } }).status !== 0,
      );
      assert.fail(
        `bash failed (seed ${SEED}, LC_ALL=${locale}) on ${bad === undefined ? "the batch (no case fails alone)" : `quote(${show(bad)})`}: ${r.error ?? r.stderr}`,
      );
    }
    let at = 0;
    batch.forEach((s) => {
      const end = r.stdout.indexOf(0, at);
      const got = r.stdout.subarray(at, end < 0 ? r.stdout.length : end);
      const want = Buffer.from(s, "utf8");
      if (end < 0 || !got.equals(want)) {
        let d = 0;
        while (d < got.length && d < want.length && got[d] === want[d]) d++;
        assert.fail(
          `quote(${show(s)}) (length ${s.length}, seed ${SEED}, ` +
            `LC_ALL=${locale}): bash printed ${got.length} bytes, want ${want.length}; first difference at byte ${d}: ` +
            `got ${got.subarray(d, d + 8).toString("hex")}, want ${want.subarray(d, d + 8).toString("hex")}`,
        );
      }
      at = end + 1;
    });
    assert.strictEqual(at, r.stdout.length, "bash printed more words than cases: a quoted value split into words");
  }
}

describe("unit: shell quoting", () => {
  it("quotes every value as one POSIX word", () => {
    assert.strictEqual(quote("plain"), "'plain'");
    assert.strictEqual(quote("it's"), `'it'\\''s'`);
    assert.strictEqual(quote("$(rm -rf /) `x` ; | & \n"), "'$(rm -rf /) `x` ; | & \n'");
    assert.strictEqual(quote(""), "''");
    assert.strictEqual(quote("'"), `''\\'''`);
    assert.strictEqual(quote(8080), "'8080'");
  });

  it("refuses a NUL anywhere (no shell word can hold one)", () => {
    for (const s of ["\0", "a\0b", "\0a", "a\0"]) assert.throws(() => quote(s), /NUL/);
  });

  const all = cases();
  before(() => (scratch = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-quote-"))));
  after(() => fs.rmSync(scratch, { recursive: true, force: true }));

  it(`round-trips ${all.length} strings through bash byte for byte (LC_ALL=C)`, function () {
    this.timeout(60_000);
    assertRoundTrip(all, "C");
  });

  it(`round-trips the same strings under a UTF-8 locale (LC_ALL=C.UTF-8)`, function () {
    this.timeout(60_000);
    assertRoundTrip(all, "C.UTF-8");
  });

  it("round-trips quoted twice, as a script sent over SSH (`bash -c <quoted script>`)", function () {
    this.timeout(60_000);
    const nested = (text: string) => `bash -c ${quote(text)}`;
    // The 20 000 quotes case, quoted twice, is larger than one argument may be.
    const fitting = all.filter((s) => Buffer.byteLength(nested(printfLine(s))) < 100_000);
    assert.ok(fitting.length >= all.length - 1, "all but the largest case fit one argument");
    assertRoundTrip(fitting, "C.UTF-8", nested);
  });
});

describe("unit: script()", () => {
  it("starts with set -eu, drops empty, false and undefined lines, ends with a newline", () => {
    assert.strictEqual(script(), "set -eu\n");
    assert.strictEqual(script("echo one", false, undefined, "", "echo 'two'"), "set -eu\necho one\necho 'two'\n");
  });
});
