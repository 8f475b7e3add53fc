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
  migrationStepPresent,
  outsideWindow,
  pinnedHostKey,
  plaintextSecretsInStackFile,
  secretInCommandText,
  secretLeaves,
  slotStartStepPresent,
} from "../../policy/rules";

const cmd = (name: string, dependencies: string[] = [], props: Record<string, unknown> = {}): Res => ({
  type: COMMAND_TYPE,
  name,
  urn: `urn:pulumi:production::nostromo-deploy::${COMMAND_TYPE}::${name}`,
  props,
  dependencies: dependencies.map((d) => `urn:pulumi:production::nostromo-deploy::${COMMAND_TYPE}::${d}`),
});

describe("policy rules", () => {
  /** A step of `kind` (lib/steps.ts), for `app`; its name is whatever it is. */
  const step = (name: string, kind: string, app?: string, deps: string[] = []) => cmd(name, deps, { step: kind, ...(app ? { app } : {}) });

  it("backup-before-migration: a migration step needs a backup step somewhere up its dependency path, in production only", () => {
    const ok = [
      step("n-backup-dump", "backup"),
      step("n-app-release-build", "release", "app"),
      step("n-app-migration-run", "migration", "app", ["n-app-release-build", "n-backup-dump"]),
    ];
    assert.deepStrictEqual(backupBeforeMigration(ok, "production"), []);
    const transitive = [
      step("n-backup-dump", "backup"),
      step("n-lock", "lock", undefined, ["n-backup-dump"]),
      step("n-app-migration-run", "migration", "app", ["n-lock"]),
    ];
    assert.deepStrictEqual(backupBeforeMigration(transitive, "production"), []);
    const bad = [step("n-backup-dump", "backup"), step("n-app-migration-run", "migration", "app", [])];
    assert.deepStrictEqual(backupBeforeMigration(bad, "production"), [
      { resource: "n-app-migration-run", message: "migration n-app-migration-run (app) has no database backup step before it" },
    ]);
    assert.deepStrictEqual(backupBeforeMigration(bad, "staging"), []);
  });

  it("health-check-before-switch: the cutover follows each node app's slot-start step", () => {
    const start = step("n-api-service-start", "slot-start", "api");
    assert.deepStrictEqual(
      healthCheckBeforeSwitch([start, step("n-cutover-switch-and-smoke", "cutover", undefined, ["n-api-service-start"])], ["api"]),
      [],
    );
    assert.deepStrictEqual(healthCheckBeforeSwitch([start, step("go-live", "cutover", undefined, ["n-api-service-start"])], ["api"]), []);
    const unchecked = healthCheckBeforeSwitch([start, step("go-live", "cutover", undefined, [])], ["api"]);
    assert.strictEqual(unchecked.length, 1);
    assert.match(
      unchecked[0].message,
      /go-live switches traffic to api without its health-checked start \(a slot-start step of api\) before it/,
    );
    // A node app with no slot start at all is caught too (the config names it).
    assert.strictEqual(healthCheckBeforeSwitch([step("go-live", "cutover")], ["api"]).length, 1);
    // Another app's start does not count.
    assert.strictEqual(
      healthCheckBeforeSwitch([step("s", "slot-start", "web"), step("go-live", "cutover", undefined, ["s"])], ["api"]).length,
      1,
    );
  });

  it("a renamed step still matches: a migration named unlike the program's is found by its kind and checked", () => {
    // Found: it needs its backup like any migration, and it satisfies the configured migration.
    const renamed = step("n-app-migrate-x", "migration", "app", ["n-app-release-build"]);
    const graph = [step("n-app-release-build", "release", "app"), renamed];
    assert.deepStrictEqual(backupBeforeMigration(graph, "production"), [
      { resource: "n-app-migrate-x", message: "migration n-app-migrate-x (app) has no database backup step before it" },
    ]);
    assert.deepStrictEqual(
      backupBeforeMigration(
        [step("take-snapshot", "backup"), step("n-app-migrate-x", "migration", "app", ["take-snapshot"])],
        "production",
      ),
      [],
    );
    // Named like the program's backup but declaring no kind: it counts for nothing.
    assert.strictEqual(
      backupBeforeMigration([cmd("n-backup-dump"), step("n-app-migrate-x", "migration", "app", ["n-backup-dump"])], "production").length,
      1,
    );
    const config = { "p:apps": JSON.stringify({ app: { kind: "node", migrate: "npm run migrate" } }) };
    assert.deepStrictEqual(migrationStepPresent(graph, config, "p"), []);
    // A renamed slot start and cutover: still ordered, still checked.
    const start = step("bring-up-app", "slot-start", "app");
    assert.deepStrictEqual(slotStartStepPresent([start], config, "p"), []);
    assert.deepStrictEqual(healthCheckBeforeSwitch([start, step("go-live", "cutover", undefined, ["bring-up-app"])], ["app"]), []);
    assert.strictEqual(healthCheckBeforeSwitch([start, step("go-live", "cutover")], ["app"]).length, 1);
  });

  it("a missing migration step is a violation: migration-step-present names the app whose config sets migrate", () => {
    const config = {
      "p:apps": JSON.stringify({ api: { kind: "node", migrate: "npm run migrate" }, worker: { kind: "node" }, web: { kind: "static" } }),
    };
    assert.deepStrictEqual(migrationStepPresent([step("a", "migration", "api")], config, "p"), []);
    assert.deepStrictEqual(migrationStepPresent([step("b", "slot-start", "api")], config, "p"), [
      { message: "apps.api.migrate is set but the deploy has no migration step for api" },
    ]);
    // Named like the program's migration, but declaring no kind (or another app's): not it.
    assert.deepStrictEqual(
      migrationStepPresent([cmd("nostromo-api-migration-run"), step("m", "migration", "worker")], config, "p").map((f) => f.message),
      ["apps.api.migrate is set but the deploy has no migration step for api"],
    );
    // No migrate, an empty one, or no apps config at all: nothing is asked for.
    assert.deepStrictEqual(migrationStepPresent([], { "p:apps": JSON.stringify({ api: { migrate: " " } }) }, "p"), []);
    assert.deepStrictEqual(migrationStepPresent([], {}, "p"), []);
    // Apps given as a list of named apps are read too, not passed over.
    assert.deepStrictEqual(migrationStepPresent([], { "p:apps": JSON.stringify([{ name: "api", migrate: "m" }]) }, "p"), [
      { message: "apps.api.migrate is set but the deploy has no migration step for api" },
    ]);
  });

  it("slot-start-step-present: every node app of the config has its slot-start step, static apps none", () => {
    const config = { "p:apps": JSON.stringify({ api: { migrate: "m" }, web: { kind: "static" } }) };
    assert.deepStrictEqual(slotStartStepPresent([step("s", "slot-start", "api")], config, "p"), []);
    assert.deepStrictEqual(slotStartStepPresent([cmd("nostromo-api-service-start"), step("s", "slot-start", "web")], config, "p"), [
      { message: "apps.api is a node app but the deploy has no health-gated slot-start step for it" },
    ]);
    assert.deepStrictEqual(slotStartStepPresent([], {}, "p"), []);
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
    // smokeSecrets set leaf by leaf (`--secret --path 'smokeSecrets.NAME'`): secure when every leaf is.
    const smoke = (v: unknown) => plaintextSecretsInStackFile({ config: { "p:smokeSecrets": v } }, "p");
    assert.deepStrictEqual(smoke({ smokePassword: { secure: "v1:abc" }, apiKey: { secure: "v1:def" } }), []);
    assert.deepStrictEqual(smoke({ secure: "v1:abc" }), []);
    assert.deepStrictEqual(smoke({ smokePassword: { secure: "v1:abc" }, apiKey: "plain-key" }), [
      { message: "config smokeSecrets is in plain text in the stack file: set it with `pulumi config set --secret smokeSecrets`" },
    ]);
    assert.deepStrictEqual(secretLeaves({ smokePassword: "pw-value-1", more: { apiKey: "key-value-2" } }), ["pw-value-1", "key-value-2"]);
    // appSecrets, app → key → value, leaf by leaf: one plain leaf is a finding.
    const app = (v: unknown) => plaintextSecretsInStackFile({ config: { "p:appSecrets": v } }, "p");
    assert.deepStrictEqual(app({ iact: { SECRET_KEY: { secure: "v1:abc" }, REDIS_URL: { secure: "v1:def" } } }), []);
    assert.deepStrictEqual(app({ iact: { SECRET_KEY: { secure: "v1:abc" }, REDIS_URL: "redis://:pw@h/0" } }), [
      { message: "config appSecrets is in plain text in the stack file: set it with `pulumi config set --secret appSecrets`" },
    ]);
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
