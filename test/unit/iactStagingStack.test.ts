// Pulumi.iact-staging.yaml (runbook 003's IACT on its staging server) is a config the deploy accepts.
import * as assert from "assert";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { ConfigError, parseDeployConfig } from "../../lib/config";
import { REPO_ROOT } from "../../local/backend";

const secrets = { sshPrivateKey: true, databaseUrl: true };

/** The stack file's `nostromo-deploy:` keys, as pulumi.Config would return them. */
function stackConfig(): Record<string, unknown> {
  const doc = (yaml.load(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.iact-staging.yaml"), "utf8")) as { config: Record<string, unknown> })
    .config;
  return Object.fromEntries(Object.entries(doc).map(([k, v]) => [k.replace(/^nostromo-deploy:/, ""), v]));
}

describe("unit: the shipped Pulumi.iact-staging.yaml", () => {
  it("holds no secret in clear: every key of it is plain config", () => {
    assert.deepStrictEqual(Object.keys(stackConfig()).sort(), ["apps", "backup", "bake", "nginx", "releasesToKeep", "server", "smoke"]);
  });

  it("is accepted once its secrets are set: IACT as runbook 003 runs it", () => {
    const raw = stackConfig();
    const appSecrets = { names: { iact: ["REDIS_URL", "SECRET_KEY", "SMOKE_PASSWORD"] } };
    // The smoke login's password is a placeholder for a secret: refused until that secret is set.
    try {
      parseDeployConfig("iact-staging", raw, { ...secrets, smokeSecrets: { names: [] }, appSecrets });
      assert.fail("accepted without smokeSecrets.smokePassword");
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      assert.deepStrictEqual(err.problems, [
        `smoke[0].body.password: names the secret "smokePassword", which smokeSecrets does not hold (pulumi config set --secret --path 'smokeSecrets.smokePassword' …)`,
      ]);
    }
    const cfg = parseDeployConfig("iact-staging", raw, { ...secrets, smokeSecrets: { names: ["smokePassword"] }, appSecrets });
    assert.strictEqual(cfg.server.host, "staging.iact-project.com");
    assert.strictEqual(cfg.server.root, "/var/www/iact-project");
    assert.deepStrictEqual(
      cfg.apps.map((a) => a.name),
      ["iact"],
    );
    const iact = cfg.apps[0];
    assert.strictEqual(iact.kind, "python");
    assert.strictEqual(iact.manager, "systemd");
    assert.strictEqual(iact.usesDatabase, true);
    assert.strictEqual(iact.migrate, "python manage.py migrate --noinput");
    assert.strictEqual(iact.migrationFiles, "*/migrations/0*.py");
    assert.deepStrictEqual(
      iact.health?.checks.map((c) => c.path),
      ["/api/health", "/api/db-check", "/api/cache-check"],
    );
    assert.deepStrictEqual(
      iact.workers.map((w) => [w.name, w.command, w.stopTimeoutSeconds]),
      [["celery-worker", "celery -A iact worker --loglevel=INFO", 60]],
    );
    assert.deepStrictEqual(
      cfg.nginx.routes.map((r) => [r.path, r.app, r.serve]),
      [
        ["/", "iact", "slot"],
        ["/api/", "iact", "slot"],
        ["/static/", "iact", "folder"],
      ],
    );
    assert.deepStrictEqual(iact.staticFolders, [
      { dir: "/var/www/iact-project/shared/iact/static", url: "/static/", dirVar: "STATIC_ROOT", urlVar: "STATIC_URL" },
    ]);
    assert.deepStrictEqual(
      cfg.smoke.map((s) => s.path),
      ["/api/auth/login", "/api/users/me", "/api/users/me"],
    );
  });

  it("refuses a secret of IACT's that its env also sets", () => {
    const raw = stackConfig();
    assert.throws(
      () =>
        parseDeployConfig("iact-staging", raw, {
          ...secrets,
          smokeSecrets: { names: ["smokePassword"] },
          appSecrets: { names: { iact: ["ALLOWED_HOSTS"] } },
        }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.problems.includes("appSecrets.iact.ALLOWED_HOSTS: is also set in apps.iact.env: keep it in one place"),
    );
  });
});
