import * as assert from "assert";
import { createHash } from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { parseDeployConfig } from "../../lib/config";
import { COMMAND_TYPE, STEP } from "../../lib/steps";
import { Registered, closure, installMocks } from "../support/mocks";
import { validRaw } from "../support/validConfig";

const SECRETS = {
  key: "-----BEGIN OPENSSH PRIVATE KEY-----\nunit-test-key\n-----END OPENSSH PRIVATE KEY-----",
  db: "postgres://app:db-password-unit@127.0.0.1:5432/nostromo",
  jwt: "jwt-secret-unit-test-value",
  smoke: "smoke-password-unit-value",
  app: "django-secret-key-unit-value",
};
// The smoke login names its password; the value comes from the secret smokeSecrets.
const SMOKE = [{ name: "login", method: "POST", path: "/api/login", body: { username: "smoke", password: "${secret:smokePassword}" } }];
const SHAS = { orchestrator: "a".repeat(40), sevastopol: "b".repeat(40) };

describe("unit: the deploy graph (mocks)", () => {
  let registered: Registered[];
  let outputs: Record<string, unknown>;

  before(async () => {
    registered = installMocks();
    const { Deployment } = await import("../../components/deployment");
    const config = parseDeployConfig(
      "unit",
      { ...validRaw(), smoke: SMOKE },
      {
        sshPrivateKey: true,
        databaseUrl: true,
        smokeSecrets: { names: ["smokePassword", "unused"] },
        appSecrets: { names: { orchestrator: ["SECRET_KEY"] } },
      },
    );
    const d = new Deployment("nostromo", {
      config,
      shas: SHAS,
      sshPrivateKey: pulumi.secret(SECRETS.key),
      databaseUrl: pulumi.secret(SECRETS.db),
      jwtSecret: pulumi.secret(SECRETS.jwt),
      deployer: "ops@laptop",
      smokeSecrets: pulumi.secret(JSON.stringify({ smokePassword: SECRETS.smoke, unused: "never-sent-unit" })),
      appSecrets: pulumi.secret(JSON.stringify({ orchestrator: { SECRET_KEY: SECRETS.app } })),
      lease: "unit/lease-1",
    });
    const apps = await new Promise((resolve) => d.apps.apply(resolve));
    outputs = { apps };
  });

  const runsAfter = (later: string, earlier: string) =>
    assert.ok(
      closure(registered, later).has(earlier),
      `${later} does not wait for ${earlier}; it waits for ${[...closure(registered, later)].join(", ")}`,
    );

  it("orders backup → migrate → new slot + health → switch and smoke → record", () => {
    runsAfter("nostromo-backup-dump", "nostromo-server-lock");
    runsAfter("nostromo-orchestrator-release-build", "nostromo-server-lock");
    runsAfter("nostromo-orchestrator-migration-run", "nostromo-backup-dump");
    runsAfter("nostromo-orchestrator-migration-run", "nostromo-orchestrator-release-build");
    runsAfter("nostromo-orchestrator-service-start", "nostromo-orchestrator-migration-run");
    runsAfter("nostromo-cutover-switch-and-smoke", "nostromo-orchestrator-service-start");
    runsAfter("nostromo-cutover-switch-and-smoke", "nostromo-sevastopol-release-build");
    runsAfter("nostromo-cutover-switch-and-smoke", "nostromo-nginx-install");
    runsAfter("nostromo-record-append", "nostromo-cutover-switch-and-smoke");
    // The config is archived (by the lock step) before any step writes the nginx site, a unit or a .env.
    for (const step of [
      "nostromo-nginx-install",
      "nostromo-orchestrator-release-build",
      "nostromo-sevastopol-release-build",
      "nostromo-orchestrator-service-start",
      "nostromo-cutover-switch-and-smoke",
    ])
      runsAfter(step, "nostromo-server-lock");
    assert.ok(!registered.some((r) => /config-backup/.test(r.name)), "the config backup is the lock step's, not a step of its own");
    const migrateDeps = closure(registered, "nostromo-orchestrator-migration-run");
    assert.ok(!migrateDeps.has("nostromo-orchestrator-service-start"), "the migration must not wait for the new slot");
  });

  it("re-runs each app's steps when its SHA, its .env or its config changes, and every step carries the lease", () => {
    const cmd = (n: string) => registered.find((r) => r.name === n)!;
    assert.deepStrictEqual(cmd("nostromo-orchestrator-release-build").inputs.triggers, [SHAS.orchestrator]);
    assert.deepStrictEqual(cmd("nostromo-sevastopol-release-build").inputs.triggers, [SHAS.sevastopol]);
    // The .env travels on stdin, a re-run input: a new value rewrites it.
    assert.ok(cmd("nostromo-orchestrator-release-build").inputs.stdin);
    const [sha, envDigest] = cmd("nostromo-orchestrator-service-start").inputs.triggers;
    assert.strictEqual(sha, SHAS.orchestrator);
    assert.match(envDigest, /^[0-9a-f]{32}$/);
    assert.ok(!envDigest.includes(SECRETS.jwt));
    // The lock step (and the config backup in it) runs whenever the update changes anything.
    assert.match(cmd("nostromo-server-lock").inputs.create, /nostromo_event config-backup /);
    const backupTrigger = JSON.parse(cmd("nostromo-backup-dump").inputs.triggers[0]);
    assert.match(backupTrigger.orchestrator, new RegExp(`^${SHAS.orchestrator}:[0-9a-f]{16}$`));
    const commands = registered.filter((r) => r.type === COMMAND_TYPE);
    for (const c of commands.filter((c) => !String(c.inputs.step).startsWith("notify"))) {
      assert.strictEqual(c.inputs.lease, "unit/lease-1", `${c.name} has no lease`);
      assert.ok(Object.values(STEP).includes(c.inputs.step), `${c.name}: unknown step ${c.inputs.step}`);
    }
    // The record runs when any step ran in this update (their results name the lease).
    assert.deepStrictEqual(cmd("nostromo-record-append").inputs.triggers, [
      commands.filter((c) => !String(c.inputs.step).startsWith("notify") && c.inputs.step !== STEP.record).map(() => "unit/mock-lease"),
    ]);
  });

  it("puts no secret in any command's text", () => {
    const commands = registered.filter((r) => r.type === COMMAND_TYPE);
    assert.ok(commands.length >= 9, `only ${commands.length} commands`);
    for (const c of commands) {
      for (const field of ["create", "update", "delete"]) {
        const text = String(c.inputs[field] ?? "");
        for (const [what, secret] of Object.entries(SECRETS)) {
          assert.ok(!text.includes(secret) && !text.includes("db-password-unit"), `${c.name}.${field} contains the ${what} secret`);
        }
      }
    }
    // Secrets travel on stdin instead.
    const release = registered.find((r) => r.name === "nostromo-orchestrator-release-build")!;
    const stdin = release.inputs.stdin;
    assert.match(String(stdin?.value ?? stdin), /DATABASE_URL='postgres:\/\/app:db-password-unit@/);
    // appSecrets: the app's own secrets join its .env on that same secret stdin, and no other app's.
    assert.strictEqual(stdin[pulumi.runtime.specialSigKey], pulumi.runtime.specialSecretSig);
    assert.match(stdin.value, new RegExp(`^SECRET_KEY='${SECRETS.app}'$`, "m"));
    const web = registered.find((r) => r.name === "nostromo-sevastopol-release-build")!;
    assert.ok(!String(web.inputs.stdin?.value ?? web.inputs.stdin).includes(SECRETS.app), "another app's .env got the secret");
  });

  it("sends the smoke secrets the steps name on the cutover's stdin only, as a secret, with a keyed digest as trigger (issue 9)", () => {
    const cutover = registered.find((r) => r.name === "nostromo-cutover-switch-and-smoke")!;
    const { create, stdin, triggers } = cutover.inputs;
    assert.ok(String(create).includes("${secret:smokePassword}"), "the script carries the placeholder");
    assert.ok(!String(create).includes(SECRETS.smoke) && !String(create).includes("never-sent-unit"));
    // A Pulumi secret (the mock monitor keeps its signature): the state holds it encrypted.
    assert.strictEqual(stdin[pulumi.runtime.specialSigKey], pulumi.runtime.specialSecretSig, JSON.stringify(stdin));
    assert.strictEqual(stdin.value, `{"smokePassword":"${SECRETS.smoke}"}\n`);
    const digest = triggers[1];
    assert.match(digest, /^[0-9a-f]{32}$/);
    assert.ok(!createHash("sha256").update(stdin.value).digest("hex").startsWith(digest), "a plain hash of a secret");
    assert.ok(!JSON.stringify(triggers).includes(SECRETS.smoke));
  });

  it("exposes each app's SHA, version, slot and changelog", () => {
    assert.deepStrictEqual((outputs.apps as any).orchestrator, {
      ref: "v1.2.2",
      sha: SHAS.orchestrator,
      version: "1.2.2",
      slot: "green",
      changelog: ["abc123 Feature: admin indexes"],
    });
  });
});
