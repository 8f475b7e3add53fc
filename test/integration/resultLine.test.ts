import * as assert from "assert";
import { spawnSync } from "child_process";
import { parseStepResult } from "../../components/command";
import { parseDeployConfig } from "../../lib/config";
import { RESULT_FUNCTION, configBackupLines } from "../../lib/scripts";
import { validRaw } from "../support/validConfig";

/** Runs `lines` after the result function in bash (under `locale`), with a lease; its stdout and stderr. */
function bash(lines: string, locale = "C.UTF-8"): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync("bash", ["-c", `set -euo pipefail\n${RESULT_FUNCTION}\n${lines}`], {
    encoding: "utf8",
    env: { ...process.env, NOSTROMO_LEASE: "stack/2026-12-03T10:00:00Z-ab12", LC_ALL: locale },
  });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

describe("integration: a step's result line (nostromo_result, in bash)", () => {
  // Every byte a value can hold in a shell argument: each control character, quotes, backslashes,
  // `=` inside a value, UTF-8, an empty value.
  const controls = Array.from({ length: 31 }, (_, i) => String.fromCharCode(i + 1)).join("");
  const values: Record<string, string> = {
    built: "built",
    previous: "",
    changelog: 'a511fe4 Fix "login" \\ path\nd4653ac Feature: admin indexes\r\n\tindented',
    equation: "a=b=c",
    controls,
    text: "ünïcödé € 漢字 \u007f end",
  };
  for (const locale of ["C.UTF-8", "C"]) {
    it(`parses back to exactly the values given, lease first (locale ${locale})`, () => {
      // The values as UTF-8 bytes, spelled as $'\xNN' so bash gets every byte as it is.
      const bytes = Object.entries(values)
        .map(([k, v]) => `${k}=$'${[...Buffer.from(v, "utf8")].map((b) => `\\x${b.toString(16).padStart(2, "0")}`).join("")}'`)
        .join(" ");
      const r = bash(`nostromo_result ${bytes}`, locale);
      assert.strictEqual(r.status, 0, r.stderr);
      assert.strictEqual(r.stdout.split("\n").length, 2, "one line, then the newline");
      assert.deepStrictEqual(parseStepResult(r.stdout, "probe"), { lease: "stack/2026-12-03T10:00:00Z-ab12", ...values });
      assert.ok(r.stdout.startsWith('nostromo-result {"lease":"stack/2026-12-03T10:00:00Z-ab12","built":"built",'), r.stdout);
    });
  }

  it("past 4 KB of arguments, node writes the same line (bash's replacements slow down on long text)", () => {
    const changelog = Array.from({ length: 400 }, (_, i) => `${i.toString(16).padStart(7, "0")} Commit "${i}" \\ done`).join("\n");
    const r = bash(`changelog=$(cat <<'EOF'\n${changelog}\nEOF\n)\nnostromo_result built=kept changelog="$changelog"`);
    assert.strictEqual(r.status, 0, r.stderr);
    assert.deepStrictEqual(parseStepResult(r.stdout, "probe"), { lease: "stack/2026-12-03T10:00:00Z-ab12", built: "kept", changelog });
    // The same value under 4 KB takes the bash path, and reads back the same.
    const small = changelog.slice(0, 1000);
    const b = bash(`changelog=$(cat <<'EOF'\n${small}\nEOF\n)\nnostromo_result built=kept changelog="$changelog"`);
    assert.deepStrictEqual(parseStepResult(b.stdout, "probe"), {
      lease: "stack/2026-12-03T10:00:00Z-ab12",
      built: "kept",
      changelog: small,
    });
  });

  it("json_lines (the config backup's event) makes a JSON array of a file's non-empty lines", () => {
    const r = bash(
      `f=$(mktemp); printf '%s\\n' '/etc/nginx/sites-enabled/nostromo.conf' '' '/srv/a "quoted"\\path' > "$f"; printf 'no newline at the end' >> "$f"\n` +
        `${configBackupLines(parseDeployConfig("unit", validRaw(), { sshPrivateKey: true, databaseUrl: true })).find((l) => l.startsWith("json_lines() "))}\n` +
        `json_lines "$f"; rm -f "$f"`,
    );
    assert.strictEqual(r.status, 0, r.stderr);
    assert.deepStrictEqual(JSON.parse(r.stdout), [
      "/etc/nginx/sites-enabled/nostromo.conf",
      '/srv/a "quoted"\\path',
      "no newline at the end",
    ]);
  });
});
