import * as assert from "assert";
import { ConfigError, parseDeployConfig } from "../../lib/config";
import { validRaw } from "../support/validConfig";

const parse = (raw: Record<string, any>) => parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
const problems = (raw: Record<string, any>): string[] => {
  try {
    parse(raw);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
};

describe("unit: config apps.<app>.migrationFiles (the preview's list of new migrations)", () => {
  it("takes a glob of repository paths for an app that migrates", () => {
    const raw = validRaw();
    raw.apps.orchestrator.migrationFiles = "migrations/*.sql";
    assert.strictEqual(parse(raw).apps[0].migrationFiles, "migrations/*.sql");
    raw.apps.orchestrator.migrationFiles = "*/migrations/0*.py";
    assert.strictEqual(parse(raw).apps[0].migrationFiles, "*/migrations/0*.py");
  });

  it("refuses an absolute or escaping glob, and one without a migrate command, naming the key", () => {
    for (const bad of ["/migrations/*.sql", "../x/*.sql", "migrations/*.sql; rm -rf /"]) {
      const raw = validRaw();
      raw.apps.orchestrator.migrationFiles = bad;
      assert.match(problems(raw).join("\n"), /^apps\.orchestrator\.migrationFiles: must be a glob of paths in the repository/m, bad);
    }
    const raw = validRaw();
    raw.apps.sevastopol.migrationFiles = "migrations/*.sql";
    assert.ok(
      problems(raw).includes("apps.sevastopol.migrationFiles: names the files `migrate` applies, which is not set"),
      problems(raw).join("\n"),
    );
  });
});
