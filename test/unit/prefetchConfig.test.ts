import * as assert from "assert";
import { stackArgument } from "../../tools/prefetchConfig";

describe("the rollback tool's early config read (tools/prefetchConfig.ts)", () => {
  it("reads the stack named as parseToolArgs reads it, and none after `--` or without --stack", () => {
    assert.strictEqual(stackArgument(["--stack", "production", "--yes"]), "production");
    assert.strictEqual(stackArgument(["--yes", "--stack=staging"]), "staging");
    assert.strictEqual(stackArgument(["--yes"]), undefined);
    assert.strictEqual(stackArgument(["--", "--stack", "x"]), undefined);
  });
});
