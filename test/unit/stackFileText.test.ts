import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { setConfigBlock } from "../../lib/stackFileText";
import { unifiedDiff } from "../../lib/unifiedDiff";

const KEY = "nostromo-deploy:apps";
/** The removed and added lines of the unified diff a → b. */
const changed = (a: string, b: string) => {
  const lines = unifiedDiff(a, b, "f")
    .split("\n")
    .filter((l) => /^[-+](?![-+]{2} )/.test(l));
  return {
    removed: lines.filter((l) => l[0] === "-").map((l) => l.slice(1)),
    added: lines.filter((l) => l[0] === "+").map((l) => l.slice(1)),
  };
};

describe("unit: the rollback's edit of the stack file's apps key (only that key changes)", () => {
  it("the shipped production file: a ref changed back is the only changed line; comments, quoting and the other keys stay byte for byte", () => {
    const text = fs.readFileSync(path.join(__dirname, "..", "..", "Pulumi.production.yaml"), "utf8");
    // As a history gives it back: every map's keys sorted.
    const sorted = (v: any): any =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, sorted(v[k])]),
          )
        : v;
    const apps = sorted((yaml.load(text) as any).config[KEY]);
    apps.orchestrator.ref = "v1.2.2";
    const out = setConfigBlock(text, KEY, apps)!;
    assert.deepStrictEqual((yaml.load(out) as any).config[KEY], apps);
    const d = changed(text, out);
    // The flow list `[/health/db]` comes back as a block list; the ref line is the real change.
    assert.deepStrictEqual(d.removed, ["      ref: v1.2.3", "        extraPaths: [/health/db]"]);
    assert.deepStrictEqual(d.added, ["      ref: v1.2.2", "        extraPaths:", "          - /health/db"]);
    assert.ok(out.includes("# The server's host key, pinned"), "a comment was lost");
  });

  it("apps as one line of JSON text (as the engine writes it) becomes a YAML block; the next key and a blank line stay", () => {
    const text = `config:\n  p:server:\n    host: h\n  ${KEY}: '{"api":{"ref":"v2"}}'\n\n  p:smoke: []\n# end\n`;
    const out = setConfigBlock(text, KEY, { api: { ref: "v1" } });
    assert.strictEqual(out, `config:\n  p:server:\n    host: h\n  ${KEY}:\n    api:\n      ref: v1\n\n  p:smoke: []\n# end\n`);
  });

  it("a file without the key gets it at the end of its config map; odd shapes are left to the engine (undefined)", () => {
    assert.strictEqual(
      setConfigBlock("config:\n  p:a: 1\nother: x\n", KEY, { api: {} }),
      `config:\n  p:a: 1\n  ${KEY}:\n    api: {}\nother: x\n`,
    );
    assert.strictEqual(setConfigBlock("secretsprovider: x\n", KEY, {}), undefined);
    assert.strictEqual(setConfigBlock(`config:\n  ${KEY}: 1\n  ${KEY}: 2\n`, KEY, {}), undefined);
  });
});
