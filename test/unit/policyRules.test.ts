import * as assert from "assert";
import { ConfigError, parseDeployConfig } from "../../lib/config";
import { isWithinWindow } from "../../lib/deployWindow";
import {
  COMMAND_TYPE,
  Res,
  UNKNOWN,
  backupBeforeMigration,
  deployWindowOf,
  healthCheckBeforeSwitch,
  outsideWindow,
  pinnedHostKey,
  plaintextSecretsInStackFile,
  secretInCommandText,
} from "../../policy/rules";

const cmd = (name: string, dependencies: string[] = [], props: Record<string, unknown> = {}): Res => ({
  type: COMMAND_TYPE,
  name,
  urn: `urn:pulumi:production::nostromo-deploy::${COMMAND_TYPE}::${name}`,
  props,
  dependencies: dependencies.map((d) => `urn:pulumi:production::nostromo-deploy::${COMMAND_TYPE}::${d}`),
});

describe("policy rules", () => {
  it("backup-before-migration: a migration needs a backup somewhere up its dependency path, in production only", () => {
    const ok = [cmd("n-backup-dump"), cmd("n-app-release-build"), cmd("n-app-migration-run", ["n-app-release-build", "n-backup-dump"])];
    assert.deepStrictEqual(backupBeforeMigration(ok, "production"), []);
    const transitive = [cmd("n-backup-dump"), cmd("n-lock", ["n-backup-dump"]), cmd("n-app-migration-run", ["n-lock"])];
    assert.deepStrictEqual(backupBeforeMigration(transitive, "production"), []);
    const bad = [cmd("n-backup-dump"), cmd("n-app-migration-run", [])];
    assert.deepStrictEqual(backupBeforeMigration(bad, "production"), [
      { resource: "n-app-migration-run", message: "migration n-app-migration-run has no database backup (a *-backup-dump step) before it" },
    ]);
    assert.deepStrictEqual(backupBeforeMigration(bad, "staging"), []);
  });

  it("health-check-before-switch: per-app switches and the whole-system cutover follow each node app's start", () => {
    const start = cmd("n-api-service-start");
    assert.deepStrictEqual(healthCheckBeforeSwitch([start, cmd("n-api-switch-switch", ["n-api-service-start"])], ["api"]), []);
    assert.deepStrictEqual(healthCheckBeforeSwitch([start, cmd("n-cutover-switch-and-smoke", ["n-api-service-start"])], ["api"]), []);
    const unchecked = healthCheckBeforeSwitch([start, cmd("n-cutover-switch-and-smoke", [])], ["api"]);
    assert.strictEqual(unchecked.length, 1);
    assert.match(unchecked[0].message, /switches traffic to api without its health-checked start/);
    // A node app with no service start at all is caught too (the config names it).
    assert.strictEqual(healthCheckBeforeSwitch([cmd("n-cutover-switch-and-smoke")], ["api"]).length, 1);
  });

  it("pinned-host-key: remote steps pin the key; local steps and unknown connections pass", () => {
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIabc";
    assert.deepStrictEqual(pinnedHostKey(cmd("a", [], { connection: { host: "h", hostKey: key } })), []);
    assert.deepStrictEqual(pinnedHostKey(cmd("a", [], { create: "true" })), []);
    assert.deepStrictEqual(pinnedHostKey(cmd("a", [], { connection: UNKNOWN })), []);
    const off = pinnedHostKey(cmd("a", [], { connection: { host: "h", insecureIgnoreHostKey: true } }));
    assert.deepStrictEqual(
      off.map((f) => f.message),
      ["a: connection.hostKey is not set (pin the server's key: server.hostKey)", "a: connection.insecureIgnoreHostKey is true"],
    );
  });

  it("no-secret-in-command-text: passwords in URLs, private keys and secret config values", () => {
    assert.deepStrictEqual(secretInCommandText(cmd("a", [], { create: 'pg_dump --dbname="$(cat)"' }), ["postgres://u:p@h/db"]), []);
    assert.strictEqual(secretInCommandText(cmd("a", [], { create: "psql postgres://u:pw@h/db" }), []).length, 1);
    assert.strictEqual(secretInCommandText(cmd("a", [], { create: "-----BEGIN OPENSSH PRIVATE KEY-----" }), []).length, 1);
    assert.strictEqual(secretInCommandText(cmd("a", [], { update: "echo s3cret-value-xyz" }), ["s3cret-value-xyz"]).length, 1);
    assert.deepStrictEqual(secretInCommandText(cmd("a", [], { create: UNKNOWN }), ["x"]), []);
  });

  it("secrets-in-config: secret keys must be `secure:` in the stack file", () => {
    const file = { config: { "p:databaseUrl": { secure: "v1:abc" }, "p:jwtSecret": "plain", "p:server": { host: "h" } } };
    assert.deepStrictEqual(plaintextSecretsInStackFile(file, "p"), [
      { message: "config jwtSecret is in plain text in the stack file: set it with `pulumi config set --secret jwtSecret`" },
    ]);
    assert.deepStrictEqual(plaintextSecretsInStackFile(undefined, "p"), []);
  });

  it("deploy-window: read from PULUMI_CONFIG, checked in the window's time zone, overnight windows too", () => {
    const config = { "p:deployWindow": JSON.stringify({ days: ["tue"], start: "09:00", end: "17:00", timezone: "America/Santiago" }) };
    const w = deployWindowOf(config, "p")!;
    // Tuesday 2024-01-09 12:00 in Santiago (UTC-3 in January) is 15:00 UTC.
    assert.strictEqual(outsideWindow(w, new Date("2024-01-09T15:00:00Z")), undefined);
    assert.strictEqual(
      outsideWindow(w, new Date("2024-01-09T21:00:00Z")),
      "outside the deploy window (tue 09:00-17:00 America/Santiago): it is tue 18:00 America/Santiago",
    );
    assert.ok(outsideWindow(w, new Date("2024-01-10T15:00:00Z")));
    assert.strictEqual(outsideWindow(undefined, new Date()), undefined);
    const night = { days: ["fri" as const], start: "22:00", end: "02:00", timezone: "UTC" };
    assert.ok(isWithinWindow(night, new Date("2024-01-12T23:00:00Z"))); // Friday 23:00
    assert.ok(isWithinWindow(night, new Date("2024-01-13T01:30:00Z"))); // Saturday 01:30
    assert.ok(!isWithinWindow(night, new Date("2024-01-13T02:00:00Z")));
  });
});

describe("config: deployWindow", () => {
  const base = {
    server: { host: "h", user: "deploy", root: "/opt/n", hostKey: "ssh-ed25519 AAAA" },
    apps: { web: { repo: "/r", ref: "v1.0.0", kind: "static" } },
  };
  const parse = (deployWindow: unknown) =>
    parseDeployConfig("production", { ...base, deployWindow }, { sshPrivateKey: true, databaseUrl: true });

  it("is optional and parsed when valid", () => {
    assert.strictEqual(parse(undefined).deployWindow, undefined);
    assert.deepStrictEqual(parse({ days: ["mon", "tue"], start: "09:00", end: "17:30", timezone: "UTC" }).deployWindow, {
      days: ["mon", "tue"],
      start: "09:00",
      end: "17:30",
      timezone: "UTC",
    });
  });

  it("reports every problem with its path", () => {
    assert.throws(
      () => parse({ days: ["monday"], start: "9am", end: "25:00", timezone: "Mars/Olympus" }),
      (err: ConfigError) => {
        assert.deepStrictEqual(err.problems, [
          "deployWindow.days[0]: must be one of mon, tue, wed, thu, fri, sat, sun",
          "deployWindow.days: must name at least one day",
          "deployWindow.start: must be a time HH:MM (00:00 to 24:00)",
          "deployWindow.end: must be a time HH:MM (00:00 to 24:00)",
          "deployWindow.timezone: must be an IANA time zone such as America/Santiago or UTC",
        ]);
        return true;
      },
    );
  });
});
