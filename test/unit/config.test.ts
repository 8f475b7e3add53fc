import * as assert from "assert";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { ConfigError, parseDeployConfig } from "../../lib/config";
import { REPO_ROOT } from "../../local/backend";
import { validRaw } from "../support/validConfig";

const secrets = { sshPrivateKey: true, databaseUrl: true };

function problems(raw: Record<string, any>, s = secrets, stack = "local"): string[] {
  try {
    parseDeployConfig(stack, raw, s);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  return [];
}

describe("unit: config", () => {
  it("parses a valid config with defaults filled in", () => {
    const cfg = parseDeployConfig("local", validRaw(), secrets);
    const orch = cfg.apps.find((a) => a.name === "orchestrator")!;
    assert.strictEqual(orch.version, "1.2.2");
    assert.strictEqual(orch.manager, "pm2");
    assert.strictEqual(orch.install, "npm ci");
    assert.strictEqual(orch.usesDatabase, true);
    assert.deepStrictEqual(orch.health, {
      path: "/health",
      expect: { status: "ok" },
      versionField: "version",
      extraPaths: [],
      timeoutSeconds: 60,
    });
    assert.strictEqual(cfg.apps.find((a) => a.name === "sevastopol")!.output, "dist");
    assert.strictEqual(cfg.nginx.sitesDir, "/srv/nostromo/nginx");
    assert.deepStrictEqual(cfg.backup, { keep: 10, enabled: true });
  });

  it("names the path of each bad value, all at once", () => {
    const raw = validRaw();
    raw.apps.orchestrator.health.path = "health";
    raw.apps.orchestrator.ref = "--upload-pack=evil";
    raw.server.port = 70000;
    raw.apps.sevastopol.ports = { blue: 8001, green: 9000 };
    raw.nginx.port = 8002;
    assert.deepStrictEqual(problems(raw), [
      "server.port: must be a whole number from 1 to 65535",
      "apps.orchestrator.ref: must be a git tag, branch or commit SHA",
      'apps.orchestrator.health.path: must start with "/"',
      "apps.sevastopol.ports: a static app is served by nginx from its files: it has no ports",
      "nginx.port: port 8002 is already used by apps.orchestrator.ports.green",
    ]);
  });

  it("refuses a server without a pinned host key unless the stack opts out", () => {
    const raw = validRaw();
    delete raw.server.hostKey;
    assert.match(problems(raw)[0], /^server\.hostKey: is required: pin the server's host key/);
    raw.server.insecureIgnoreHostKey = true;
    assert.deepStrictEqual(problems(raw), []);
  });

  it("requires the secrets the deploy needs", () => {
    assert.deepStrictEqual(problems(validRaw(), { sshPrivateKey: false, databaseUrl: false }), [
      "sshPrivateKey: is required (pulumi config set --secret sshPrivateKey < key)",
      "databaseUrl: is required by an app with a database (pulumi config set --secret databaseUrl postgres://…)",
    ]);
  });

  it("asks for a version when the ref is a branch, since the health check compares it", () => {
    const raw = validRaw();
    raw.apps.orchestrator.ref = "main";
    assert.deepStrictEqual(problems(raw), [
      "apps.orchestrator.version: is required when ref is not a version tag: the health check compares version with it",
    ]);
  });

  it("rejects app names and env keys a shell or file system would misread", () => {
    const raw = validRaw();
    raw.apps["../etc"] = { ...raw.apps.sevastopol };
    raw.apps.orchestrator.env = { "BAD KEY": "x" };
    const p = problems(raw);
    assert.ok(p.includes("apps.../etc: app names are lower-case letters, digits and '-', starting with a letter"), p.join("\n"));
    assert.ok(
      p.some((x) => x.startsWith("apps.orchestrator.env.BAD KEY: is not a valid name")),
      p.join("\n"),
    );
  });

  it("keeps backups on in production when an app migrates", () => {
    const raw = validRaw();
    raw.backup = { enabled: false };
    assert.deepStrictEqual(problems(raw, secrets, "production"), [
      "backup.enabled: must be true in production: every migration is preceded by a backup",
    ]);
    assert.deepStrictEqual(problems(raw, secrets, "local"), []);
  });

  for (const stack of ["production", "staging"]) {
    it(`accepts the shipped Pulumi.${stack}.yaml`, () => {
      const text = fs.readFileSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), "utf8");
      const raw = parseStackYaml(text);
      const cfg = parseDeployConfig(stack, raw, secrets);
      assert.deepStrictEqual(
        cfg.apps.map((a) => a.name),
        ["orchestrator", "sevastopol"],
      );
      assert.strictEqual(cfg.server.root, "/opt/nostromo");
    });
  }
});

/** The stack file's `nostromo-deploy:` keys, as pulumi.Config would return them. */
function parseStackYaml(text: string): Record<string, unknown> {
  const doc = (yaml.load(text) as { config: Record<string, unknown> }).config;
  return Object.fromEntries(Object.entries(doc).map(([k, v]) => [k.replace(/^nostromo-deploy:/, ""), v]));
}
