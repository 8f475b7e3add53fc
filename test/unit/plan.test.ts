import * as assert from "assert";
import { DeployConfig } from "../../lib/config";
import { entryDigests } from "../../lib/digest";
import { deployPlan, previousOf } from "../../lib/plan";

describe("unit: the deploy plan (preview output)", () => {
  const config = {
    stack: "production",
    backup: { enabled: true, keep: 5 },
    apps: [
      { name: "api", ref: "v1.2.3", kind: "node", migrate: "npm run migrate", version: "1.2.3", workers: [] },
      { name: "web", ref: "v1.2.3", kind: "static", workers: [] },
    ],
  } as unknown as DeployConfig;
  const a = "a".repeat(40);
  const b = "b".repeat(40);
  const key = "digest-key";
  const digests = (env: Record<string, string>, cfg: Record<string, unknown> = { start: "node server.js" }) => ({
    envKeys: entryDigests(key, env),
    configKeys: entryDigests(key, cfg),
  });
  const env = { JWT_SECRET: "old", NODE_ENV: "production", DATABASE_URL: "postgres://x" };

  it("lists per app both versions and the steps; an unchanged app runs nothing", () => {
    const last = previousOf(deployPlan(config, { api: a, web: a }, { api: digests({ ...env, APP_VERSION: "1.2.2" }), web: digests({}) }));
    last!.api.version = "1.2.2";
    // APP_VERSION follows the version: not listed as an environment change of an upgrade.
    const plan = deployPlan(config, { api: b, web: a }, { api: digests({ ...env, APP_VERSION: "1.2.3" }), web: digests({}) }, last);
    assert.deepStrictEqual(plan.apps.api.steps, ["build", "backup", "migrate", "start + health check", "switch"]);
    assert.strictEqual(
      plan.apps.api.summary,
      "api: 1.2.2 (aaaaaaaaaaaa) → 1.2.3 (bbbbbbbbbbbb): build, backup, migrate, start + health check, switch; restarts api web (idle slot)",
    );
    assert.strictEqual(plan.apps.web.change, "unchanged");
    assert.strictEqual(plan.apps.web.summary, "web: 1.2.3 (aaaaaaaaaaaa), unchanged");
  });

  it("a python app is started and health-checked like a node app; its workers move after the switch; the plan names what restarts", () => {
    const py = {
      ...config,
      apps: [
        {
          name: "iact",
          ref: "v1.0.0",
          kind: "python",
          version: "1.0.0",
          workers: [{ name: "celery-worker", command: "celery", stopTimeoutSeconds: 60 }],
        },
      ],
    } as unknown as DeployConfig;
    const plan = deployPlan(py, { iact: a }, { iact: digests({}) });
    assert.deepStrictEqual(plan.apps.iact.steps, ["build", "start + health check", "switch", "workers"]);
    assert.deepStrictEqual(plan.apps.iact.restarts, ["iact web (idle slot)", "iact-celery-worker"]);
    assert.match(
      plan.apps.iact.summary,
      /: build, start \+ health check, switch, workers; restarts iact web \(idle slot\), iact-celery-worker$/,
    );
  });

  it("without a previous deploy every app is new; the previous deploy comes from the last plan output", () => {
    const first = deployPlan(config, { api: a, web: a }, { api: digests(env), web: digests({}) });
    assert.strictEqual(first.apps.web.summary, "web: new: 1.2.3 (aaaaaaaaaaaa): build, switch");
    const prev = previousOf(JSON.parse(JSON.stringify(first)));
    assert.deepStrictEqual(prev!.api, { sha: a, version: "1.2.3", ...digests(env) });
    assert.strictEqual(previousOf(undefined), undefined);
  });

  it("names the environment keys and config fields that changed, never their values", () => {
    const last = previousOf(deployPlan(config, { api: a, web: a }, { api: digests(env), web: digests({}) }));
    const rotated = { ...env, JWT_SECRET: "new-secret-value", NODE_ENV: "staging" };
    const plan = deployPlan(config, { api: a, web: a }, { api: digests(rotated), web: digests({}) }, last);
    assert.strictEqual(plan.apps.api.change, "restart");
    assert.deepStrictEqual(plan.apps.api.envChanged, ["JWT_SECRET", "NODE_ENV"]);
    assert.strictEqual(
      plan.apps.api.summary,
      "api: 1.2.3 (aaaaaaaaaaaa), restart with new environment (JWT_SECRET, NODE_ENV changed): start + health check, switch; restarts api web (idle slot)",
    );
    assert.ok(!JSON.stringify(plan).includes("new-secret-value"), "a value reached the plan");
    assert.strictEqual(plan.apps.web.summary, "web: 1.2.3 (aaaaaaaaaaaa), unchanged");

    const moved = deployPlan(
      config,
      { api: a, web: a },
      { api: digests({ ...env, DATABASE_URL: "postgres://y" }), web: digests({}) },
      last,
    );
    assert.deepStrictEqual(moved.apps.api.steps, ["backup", "migrate", "start + health check", "switch"]);

    const reconfigured = deployPlan(config, { api: a, web: a }, { api: digests(env, { start: "node other.js" }), web: digests({}) }, last);
    assert.strictEqual(
      reconfigured.apps.api.summary,
      "api: 1.2.3 (aaaaaaaaaaaa), restart with new config (start changed): start + health check, switch; restarts api web (idle slot)",
    );
  });

  it("names the migration files a new commit adds (issue 10), or why they are not known; none for an app that does not migrate", () => {
    const last = previousOf(deployPlan(config, { api: a, web: a }, { api: digests(env), web: digests({}) }));
    const upgrade = deployPlan(config, { api: b, web: b }, { api: digests(env), web: digests({}) }, last, {
      api: ["migrations/002_add_admin_indexes.sql", "migrations/003_x.sql"],
    });
    assert.deepStrictEqual(upgrade.apps.api.migrations, ["migrations/002_add_admin_indexes.sql", "migrations/003_x.sql"]);
    assert.match(
      upgrade.apps.api.summary,
      /: build, backup, migrate, start \+ health check, switch; restarts api web \(idle slot\); migrations migrations\/002_add_admin_indexes\.sql, migrations\/003_x\.sql$/,
    );
    assert.doesNotMatch(upgrade.apps.web.summary, /migrations/);
    const none = deployPlan(config, { api: b, web: a }, { api: digests(env), web: digests({}) }, last, { api: [] });
    assert.match(none.apps.api.summary, /; migrations none new$/);
    const unknown = deployPlan(config, { api: b, web: a }, { api: digests(env), web: digests({}) }, last, {
      api: "not known (cannot read repo)",
    });
    assert.match(unknown.apps.api.summary, /; migrations: not known \(cannot read repo\)$/);
    assert.strictEqual(unknown.apps.api.migrations, undefined);
  });
});
