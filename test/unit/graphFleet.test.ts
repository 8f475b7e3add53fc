import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { parseDeployConfig } from "../../lib/config";
import { COMMAND_TYPE, STEP } from "../../lib/steps";
import { MOCK_BAKE, Registered, closure, installMocks } from "../support/mocks";
import { validRaw } from "../support/validConfig";

const SHAS = { orchestrator: "a".repeat(40), sevastopol: "b".repeat(40) };
const KEY = (n: number) => `ssh-ed25519 AAAAC3Nza${n}`;
const WEB = ["web1", "web2", "web3"];

describe("unit: the deploy graph of a fleet (issue 12, mocks)", () => {
  let registered: Registered[];
  let deployment: { hosts?: pulumi.Output<Record<string, any>>; bake: pulumi.Output<unknown> };

  before(async () => {
    registered = installMocks();
    const { Deployment } = await import("../../components/deployment");
    const raw = validRaw();
    raw.server = { user: "deploy", root: "/srv/nostromo" };
    raw.hosts = {
      web1: { host: "10.0.0.11", hostKey: KEY(1), roles: ["web", "primary"] },
      web2: { host: "10.0.0.12", hostKey: KEY(2), roles: ["web"] },
      web3: { host: "10.0.0.13", hostKey: KEY(3), roles: ["web"] },
      jobs: { host: "10.0.0.21", hostKey: KEY(4), roles: ["worker"] },
    };
    raw.loadBalancer = { host: "10.0.0.2", hostKey: KEY(5) };
    raw.rolling = { batch: 2, maxFailPercent: 34 };
    raw.apps.orchestrator.workers = { mailer: { command: "node dist/mailer.js" } };
    const config = parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
    const d = new Deployment("nostromo", {
      config,
      shas: SHAS,
      sshPrivateKey: pulumi.secret("unit-key"),
      databaseUrl: pulumi.secret("postgres://app:pw@127.0.0.1:5432/nostromo"),
      jwtSecret: pulumi.secret("jwt-unit"),
      deployer: "ops@laptop",
      lease: "unit/lease-1",
    });
    await new Promise((resolve) => d.apps.apply(resolve));
    deployment = d;
  });

  const runsAfter = (later: string, earlier: string) =>
    assert.ok(closure(registered, later).has(earlier), `${later} does not wait for ${earlier}`);
  const steps = (kind: string) =>
    registered
      .filter((r) => r.type === COMMAND_TYPE && r.inputs.step === kind)
      .map((r) => r.name)
      .sort();
  const cutover = "nostromo-cutover-rolling-switch";

  it("takes every host's lock before anything changes on any host", () => {
    assert.deepStrictEqual(steps(STEP.lock), [
      "nostromo@jobs/server-lock",
      "nostromo@web1/server-lock",
      "nostromo@web2/server-lock",
      "nostromo@web3/server-lock",
    ]);
    for (const changing of [...steps(STEP.release), ...steps(STEP.backup), ...steps(STEP.nginxSite)])
      for (const lock of steps(STEP.lock)) runsAfter(changing, lock);
  });

  it("backs up and migrates once, on the primary, before any host starts a slot of the new release", () => {
    assert.deepStrictEqual(steps(STEP.backup), ["nostromo@web1/backup-dump"]);
    assert.deepStrictEqual(steps(STEP.migration), ["nostromo@web1/orchestrator-migration-run"]);
    runsAfter("nostromo@web1/orchestrator-migration-run", "nostromo@web1/backup-dump");
    assert.deepStrictEqual(
      steps(STEP.slotStart),
      WEB.map((h) => `nostromo@${h}/orchestrator-service-start`),
    );
    for (const h of WEB) runsAfter(`nostromo@${h}/orchestrator-service-start`, "nostromo@web1/orchestrator-migration-run");
  });

  it("builds releases on every host that needs them: all apps on web hosts, the apps with workers on worker hosts", () => {
    assert.deepStrictEqual(steps(STEP.release), [
      "nostromo@jobs/orchestrator-release-build",
      ...WEB.flatMap((h) => [`nostromo@${h}/orchestrator-release-build`, `nostromo@${h}/sevastopol-release-build`]),
    ]);
  });

  it("bounds the scripts over SSH at once, all hosts together (rolling.connections)", () => {
    const commands = registered.filter((r) => r.type === COMMAND_TYPE);
    assert.deepStrictEqual([...new Set(commands.map((r) => r.inputs.maxConcurrent))], [16]);
    assert.strictEqual(registered.find((r) => r.name === cutover)!.inputs.maxConcurrent, 16);
  });

  it("switches the web hosts in one rolling step after every slot, site and the load balancer; workers after it, on worker hosts only", () => {
    const fleet = registered.find((r) => r.name === cutover)!;
    assert.strictEqual(fleet.type, "pulumi-nodejs:dynamic/nostromo:FleetCutover");
    assert.deepStrictEqual([fleet.inputs.batches, fleet.inputs.maxFail, fleet.inputs.settleMs], [[["web1", "web2"], ["web3"]], 1, 1500]);
    for (const s of [...steps(STEP.slotStart), ...steps(STEP.nginxSite), "nostromo-load-balancer-install"]) runsAfter(cutover, s);
    for (const h of WEB) runsAfter("nostromo-load-balancer-install", `nostromo@${h}/nginx-install`);
    assert.deepStrictEqual(steps(STEP.workers), ["nostromo@jobs/orchestrator-workers-start"]);
    runsAfter("nostromo@jobs/orchestrator-workers-start", cutover);
    for (const h of [...WEB, "jobs"]) runsAfter(`nostromo@${h}/record-append`, cutover);
    runsAfter("nostromo@jobs/record-append", "nostromo@jobs/orchestrator-workers-start");
  });

  it("gathers every web host's bake: its own in hosts.<name>.bake and its journal line, all of them as one verdict in bake", async () => {
    const value = <T>(o: pulumi.Output<T>) => new Promise<T>((resolve) => o.apply(resolve));
    const hosts = await value(deployment.hosts!);
    for (const h of WEB) assert.deepStrictEqual(hosts[h].bake, MOCK_BAKE, h);
    assert.strictEqual(hosts.jobs.bake, undefined);
    const bake = (await value(deployment.bake)) as { verdict: string; seconds: number; apps: Record<string, unknown> };
    assert.deepStrictEqual([bake.verdict, bake.seconds], ["passed", 6]);
    assert.deepStrictEqual(Object.keys(bake.apps), ["web1/orchestrator", "web2/orchestrator", "web3/orchestrator"]);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the records' scripts resolve after the outputs
    const record = (h: string) => registered.find((r) => r.name === `nostromo@${h}/record-append`)!.inputs.create as string;
    assert.ok(record("web2").includes('"bake":{"verdict":"passed"'), record("web2"));
    assert.ok(!record("jobs").includes('"bake"'), record("jobs"));
  });
});

describe("unit: apps mapped to roles in a fleet's graph (apps.<app>.roles, mocks)", () => {
  let registered: Registered[];
  let moved: Registered[];

  before(async () => {
    registered = installMocks();
    const { Deployment } = await import("../../components/deployment");
    const raw = validRaw();
    raw.server = { user: "deploy", root: "/srv/nostromo" };
    raw.hosts = {
      web1: { host: "10.0.0.11", hostKey: KEY(1), roles: ["web"] },
      web2: { host: "10.0.0.12", hostKey: KEY(2), roles: ["web"] },
      db: { host: "10.0.0.31", hostKey: KEY(3), roles: ["primary"] },
      jobs: { host: "10.0.0.21", hostKey: KEY(4), roles: ["worker"] },
    };
    raw.loadBalancer = { host: "10.0.0.2", hostKey: KEY(5) };
    // Its mailer stays beside its slots; the queue app is workers only, on the worker host.
    raw.apps.orchestrator.roles = ["web"];
    raw.apps.orchestrator.workers = { mailer: { command: "node dist/mailer.js" } };
    raw.apps.queue = { repo: "/tmp/repos/queue", ref: "v2.0.0", roles: ["worker"], workers: { run: { command: "node run.js" } } };
    const config = parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
    // The same fleet twice (two runs of the program), the second with a new commit of the queue app only.
    for (const queue of ["c", "d"]) {
      if (queue === "d") moved = installMocks();
      const d = new Deployment("roles", {
        config,
        shas: { ...SHAS, queue: queue.repeat(40) },
        sshPrivateKey: pulumi.secret("unit-key"),
        databaseUrl: pulumi.secret("postgres://app:pw@127.0.0.1:5432/nostromo"),
        jwtSecret: pulumi.secret("jwt-unit"),
        deployer: "ops@laptop",
        lease: "unit/lease-1",
      });
      await new Promise((resolve) => d.apps.apply(resolve));
    }
  });

  const steps = (kind: string) =>
    registered
      .filter((r) => r.type === COMMAND_TYPE && r.inputs.step === kind)
      .map((r) => r.name)
      .sort();
  const script = (name: string) => JSON.stringify(registered.find((r) => r.name === name)!.inputs);

  it("builds each app only where it runs: web apps on web hosts, the worker-only app on the worker host, the migrating one on the primary", () => {
    assert.deepStrictEqual(steps(STEP.release), [
      "roles@db/orchestrator-release-build",
      "roles@jobs/queue-release-build",
      "roles@web1/orchestrator-release-build",
      "roles@web1/sevastopol-release-build",
      "roles@web2/orchestrator-release-build",
      "roles@web2/sevastopol-release-build",
    ]);
    assert.deepStrictEqual(steps(STEP.migration), ["roles@db/orchestrator-migration-run"]);
  });

  it("starts slots of the web apps only, and each app's workers where its roles put them", () => {
    assert.deepStrictEqual(steps(STEP.slotStart), ["roles@web1/orchestrator-service-start", "roles@web2/orchestrator-service-start"]);
    assert.deepStrictEqual(steps(STEP.workers), [
      "roles@jobs/queue-workers-start",
      "roles@web1/orchestrator-workers-start",
      "roles@web2/orchestrator-workers-start",
    ]);
  });

  it("leaves the worker-only app out of the web hosts' switch, and nginx out of the hosts that serve nothing", () => {
    assert.ok(!script("roles-cutover-rolling-switch").includes("queue"), "the rolling switch names the queue app");
    // The preflight's list of commands the host must have.
    const wants = (h: string) => /for c in ([^;]*);/.exec(registered.find((r) => r.name === `roles@${h}/server-lock`)!.inputs.create)![1];
    for (const h of ["db", "jobs"]) assert.ok(!wants(h).includes("'nginx'"), `${h}'s preflight wants nginx: ${wants(h)}`);
    assert.ok(wants("web1").includes("'nginx'"), `web1's preflight does not want nginx: ${wants("web1")}`);
  });

  it("a new commit of the worker-only app restarts its workers and leaves the web hosts' rolling switch as it was", () => {
    const inputs = (run: Registered[], name: string) => run.find((r) => r.name === name)!.inputs;
    const rollingSwitch = (run: Registered[]) => {
      const { hosts, triggers, batches } = inputs(run, "roles-cutover-rolling-switch");
      return JSON.stringify({ hosts, triggers, batches });
    };
    assert.ok(rollingSwitch(moved) === rollingSwitch(registered), "the rolling switch's inputs changed");
    const workers = "roles@jobs/queue-workers-start";
    assert.notStrictEqual(inputs(moved, workers).create, inputs(registered, workers).create);
  });
});
