import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const LOADER = path.resolve(__dirname, "..", "..", "lib", "tsLoader.js");

/** Runs `main.ts` of `files` in a fresh node with the loader registered (no ts-node); its output. */
function run(files: Record<string, string>): { code: number | null; stdout: string; stderr: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-tsloader-"));
  try {
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
    const r = spawnSync(process.execPath, ["-e", `require(${JSON.stringify(LOADER)}).register(); require("./main.ts")`], {
      cwd: dir,
      encoding: "utf8",
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe("unit: lib/tsLoader.js (the program's and the providers' TypeScript)", () => {
  it("compiles what this project writes as tsc would: extensionless imports, parameter properties, declared fields, import type", () => {
    const r = run({
      "main.ts": [
        `import type { Shape } from "./shape";`,
        `import * as shape from "./shape";`,
        `import defaultThing from "./shape";`,
        `const s: Shape = new shape.Square(3);`,
        `console.log(JSON.stringify({ area: s.area(), side: (s as shape.Square).side, declared: (s as shape.Square).kept, def: defaultThing }));`,
      ].join("\n"),
      "shape.ts": [
        `export interface Shape { area(): number }`,
        `class Base { kept = "base"; }`,
        `export class Square extends Base implements Shape {`,
        `  declare kept: string;`,
        `  constructor(readonly side: number) { super(); }`,
        `  area(): number { return this.side * this.side; }`,
        `}`,
        `export default "default export";`,
      ].join("\n"),
    });
    assert.strictEqual(r.code, 0, r.stderr);
    assert.deepStrictEqual(JSON.parse(r.stdout), { area: 9, side: 3, declared: "base", def: "default export" });
  });

  it("maps a stack to the TypeScript line that threw", () => {
    const r = run({
      "main.ts": [
        `interface Unused {`,
        `  a: string;`,
        `}`,
        `type Also = Unused;`,
        `export function boom(x: Also | undefined): never {`,
        `  throw new Error("boom " + x);`,
        `}`,
        `boom(undefined);`,
      ].join("\n"),
    });
    assert.notStrictEqual(r.code, 0);
    assert.match(r.stderr, /Error: boom undefined\n\s+at boom \(.*main\.ts:6:\d+\)/, r.stderr);
  });
});
