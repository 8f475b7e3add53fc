import * as assert from "assert";
import { ConfigError, appSecretNames, appSecretValues, parseDeployConfig } from "../../lib/config";
import { validRaw } from "../support/validConfig";

const problems = (names: Record<string, string[]>, change: (raw: Record<string, any>) => void = () => {}): string[] => {
  const raw = validRaw();
  change(raw);
  try {
    parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true, appSecrets: { names } });
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
};

describe("unit: appSecrets (an app's own secrets in its .env; issue 10)", () => {
  it("reads the names only, per app; the values only for the app asked", () => {
    const json = JSON.stringify({ orchestrator: { SECRET_KEY: "s1", REDIS_URL: "redis://:p@h/0" }, sevastopol: {} });
    assert.deepStrictEqual(appSecretNames(json), { names: { orchestrator: ["REDIS_URL", "SECRET_KEY"], sevastopol: [] } });
    assert.deepStrictEqual(appSecretValues(json, "orchestrator"), { SECRET_KEY: "s1", REDIS_URL: "redis://:p@h/0" });
    assert.deepStrictEqual(appSecretValues(json, "other"), {});
    assert.deepStrictEqual(appSecretNames(undefined), { names: {} });
  });

  it("refuses what is not app → { KEY: text }, without showing a value", () => {
    for (const bad of ["[]", "nope", JSON.stringify({ orchestrator: "s3cret" }), JSON.stringify({ orchestrator: { K: 1 } })]) {
      const r = appSecretNames(bad);
      assert.match(r.problem ?? "", /^must be an object of app → \{ ENV_KEY: text \}/, bad);
      assert.ok(!(r.problem ?? "").includes("s3cret"));
    }
  });

  it("refuses, by path: an unknown app, a key a shell cannot hold, one the config's env or the deploy sets", () => {
    assert.deepStrictEqual(problems({ nowhere: ["A"] }), ['appSecrets.nowhere: no app named "nowhere"']);
    assert.deepStrictEqual(problems({ orchestrator: ["secret-key"] }), [
      "appSecrets.orchestrator.secret-key: must be an environment name (A-Z, 0-9, _)",
    ]);
    assert.deepStrictEqual(
      problems({ orchestrator: ["NODE_ENV"] }, (raw) => (raw.apps.orchestrator.env = { NODE_ENV: "production" })),
      ["appSecrets.orchestrator.NODE_ENV: is also set in apps.orchestrator.env: keep it in one place"],
    );
    assert.deepStrictEqual(problems({ orchestrator: ["DATABASE_URL"] }), [
      "appSecrets.orchestrator.DATABASE_URL: is written by the deploy itself",
    ]);
    assert.deepStrictEqual(problems({ orchestrator: ["SECRET_KEY"] }), []);
  });
});
