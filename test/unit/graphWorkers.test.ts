import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { parseDeployConfig } from "../../lib/config";
import { COMMAND_TYPE, STEP } from "../../lib/steps";
import { Registered, closure, installMocks } from "../support/mocks";
import { validRaw } from "../support/validConfig";

const SHAS = { orchestrator: "a".repeat(40), sevastopol: "b".repeat(40), iact: "c".repeat(40) };

describe("unit: the deploy graph of a python app with a worker (issue 10, mocks)", () => {
  let registered: Registered[];

  before(async () => {
    registered = installMocks();
    const { Deployment } = await import("../../components/deployment");
    const raw = validRaw();
    raw.apps.iact = {
      repo: "/tmp/repos/iact",
      ref: "v1.0.0",
      kind: "python",
      manager: "systemd",
      build: "python manage.py collectstatic --noinput",
      migrate: "python manage.py migrate --noinput",
      start: "gunicorn iact.wsgi --bind 127.0.0.1:$PORT",
      ports: { blue: 8101, green: 8102 },
      health: { path: "/api/health", expect: { status: "healthy" } },
      workers: { "celery-worker": { command: "celery -A iact worker --loglevel=INFO" } },
    };
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
  });

  const runsAfter = (later: string, earlier: string) =>
    assert.ok(closure(registered, later).has(earlier), `${later} does not wait for ${earlier}`);
  const step = (name: string) => registered.find((r) => r.name === name && r.type === COMMAND_TYPE);

  it("starts the python app in a health-gated slot like a node app, and its worker after the cutover, before the record", () => {
    runsAfter("nostromo-iact-migration-run", "nostromo-iact-release-build");
    runsAfter("nostromo-iact-service-start", "nostromo-iact-migration-run");
    runsAfter("nostromo-cutover-switch-and-smoke", "nostromo-iact-service-start");
    runsAfter("nostromo-iact-workers-start", "nostromo-cutover-switch-and-smoke");
    runsAfter("nostromo-record-append", "nostromo-iact-workers-start");
    assert.ok(!closure(registered, "nostromo-cutover-switch-and-smoke").has("nostromo-iact-workers-start"));
    const workers = step("nostromo-iact-workers-start")!;
    assert.strictEqual(workers.inputs.step, STEP.workers);
    assert.strictEqual(workers.inputs.app, "iact");
    assert.match(String(workers.inputs.create), /unit='iact-celery-worker\.service'/);
    // A new SHA or a new .env restarts the worker.
    const triggers = workers.inputs.triggers as unknown[];
    assert.strictEqual(triggers[0], SHAS.iact);
    assert.match(String(triggers[1]), /^[0-9a-f]{32}$/);
    assert.strictEqual(step("nostromo-orchestrator-workers-start"), undefined);
  });
});
