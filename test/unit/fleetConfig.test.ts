import * as assert from "assert";
import { ConfigError, parseDeployConfig } from "../../lib/config";
import { validRaw } from "../support/validConfig";

const secrets = { sshPrivateKey: true, databaseUrl: true };
const KEY = (n: number) => `ssh-ed25519 AAAAC3Nza${n}`;

/** Three web hosts (web1 the primary), a worker host and a load balancer: `server` holds what they share. */
function fleetRaw(): Record<string, any> {
  const raw = validRaw();
  raw.server = { user: "deploy", root: "/srv/nostromo" };
  raw.hosts = {
    web1: { host: "10.0.0.11", hostKey: KEY(1), roles: ["web", "primary"] },
    web2: { host: "10.0.0.12", hostKey: KEY(2), roles: ["web"] },
    web3: { host: "10.0.0.13", hostKey: KEY(3), roles: ["web"], user: "ops", nginx: { reloadCommand: "sudo nginx -s reload" } },
    jobs: { host: "10.0.0.21", hostKey: KEY(4), roles: ["worker"] },
  };
  raw.loadBalancer = { host: "10.0.0.2", hostKey: KEY(5), port: 80 };
  raw.rolling = { batch: "34%", maxFailPercent: 34 };
  return raw;
}

function problems(raw: Record<string, any>): string[] {
  try {
    parseDeployConfig("production", raw, secrets);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe("unit: fleet config (hosts, loadBalancer, rolling; issue 12)", () => {
  it("reads hosts over the shared server block, the load balancer and the rolling settings", () => {
    const cfg = parseDeployConfig("production", fleetRaw(), secrets);
    const fleet = cfg.fleet!;
    assert.deepStrictEqual(
      fleet.hosts.map((h) => [h.name, h.roles, h.server.host, h.server.user, h.server.root, h.server.port]),
      [
        ["web1", ["web", "primary"], "10.0.0.11", "deploy", "/srv/nostromo", 22],
        ["web2", ["web"], "10.0.0.12", "deploy", "/srv/nostromo", 22],
        ["web3", ["web"], "10.0.0.13", "ops", "/srv/nostromo", 22],
        ["jobs", ["worker"], "10.0.0.21", "deploy", "/srv/nostromo", 22],
      ],
    );
    assert.deepStrictEqual(fleet.hosts[2].nginx, { sitesDir: "/srv/nostromo/nginx", reloadCommand: "sudo nginx -s reload" });
    // "The server" where one is meant (a single URL, the rollback tool's reads): the primary.
    assert.strictEqual(cfg.server.host, "10.0.0.11");
    assert.deepStrictEqual(fleet.loadBalancer && [fleet.loadBalancer.server.host, fleet.loadBalancer.port, fleet.loadBalancer.listen], [
      "10.0.0.2",
      80,
      "80",
    ]);
    // 34% of 3 web hosts: one at a time; one host may fail.
    assert.deepStrictEqual(fleet.rolling, { batchSize: 1, maxFailPercent: 34, connections: 16 });
  });

  it("keeps a single-server stack as it was: no fleet", () => {
    assert.strictEqual(parseDeployConfig("local", validRaw(), secrets).fleet, undefined);
  });

  it("names each bad value by its path", () => {
    const raw = fleetRaw();
    raw.hosts.web2.roles = ["web", "primary"];
    raw.hosts.web3.host = "10.0.0.11";
    raw.hosts.jobs.roles = ["cron"];
    raw.hosts.web1.colour = "blue";
    delete raw.hosts.web2.hostKey;
    raw.rolling = { batch: 3 };
    assert.deepStrictEqual(problems(raw), [
      "hosts.web1.colour: unknown key (known keys: host, port, user, root, hostKey, insecureIgnoreHostKey, path, env, minFreeMiB, roles, nginx)",
      "hosts.web2.hostKey: is required: pin the server's host key (ssh-keyscan), or set hosts.web2.insecureIgnoreHostKey: true",
      "hosts.web3.host: 10.0.0.11:22 is already hosts.web1",
      'hosts.jobs.roles: unknown role "cron" (roles: web, worker, primary)',
      "hosts: exactly one host must have the role primary (it runs the backup and the migrations); web1, web2 have",
      "rolling.batch: takes every web host (3) out of the load balancer at once: at most 2",
    ]);
  });

  it("wants a load balancer in front of two web hosts or more, and a web host", () => {
    const raw = fleetRaw();
    delete raw.loadBalancer;
    assert.deepStrictEqual(problems(raw), ["loadBalancer: is required in front of 3 web hosts"]);
    const none = fleetRaw();
    none.hosts = { jobs: { host: "10.0.0.21", hostKey: KEY(4), roles: ["worker", "primary"] } };
    assert.deepStrictEqual(problems(none), ["hosts: at least one host must have the role web"]);
  });

  it("maps apps to roles: a worker-only app, an app whose workers stay on the web hosts", () => {
    const raw = fleetRaw();
    raw.apps.orchestrator.roles = ["web"];
    raw.apps.orchestrator.workers = { mailer: { command: "node dist/mailer.js" } };
    raw.apps.queue = { repo: "/tmp/repos/queue", ref: "v2.0.0", roles: ["worker"], workers: { run: { command: "node run.js" } } };
    const apps = parseDeployConfig("production", raw, secrets).apps;
    assert.deepStrictEqual(
      apps.map((a) => [a.name, a.roles, a.version, a.ports]),
      [
        ["orchestrator", ["web"], "1.2.2", { blue: 8001, green: 8002 }],
        ["sevastopol", undefined, undefined, undefined],
        ["queue", ["worker"], "2.0.0", undefined],
      ],
    );
  });

  it("names each app role that cannot be placed by its path", () => {
    const raw = fleetRaw();
    raw.apps.sevastopol.roles = ["worker"];
    raw.apps.orchestrator.roles = ["worker", "cron"];
    raw.apps.queue = { repo: "/tmp/repos/queue", ref: "v2.0.0", roles: ["worker"], ports: { blue: 4001, green: 4002 } };
    raw.apps.jobs = {
      repo: "/tmp/repos/jobs",
      ref: "v2.0.0",
      roles: ["worker"],
      workers: { run: { command: "x" } },
      ports: { blue: 4003, green: 4004 },
    };
    assert.deepStrictEqual(problems(raw), [
      'apps.orchestrator.roles: unknown role "cron" (an app runs on: web, worker)',
      "apps.sevastopol.roles: a static app is served by the web hosts: it needs the role web",
      "apps.queue.roles: without web the app runs only its workers, and it has none",
      "apps.queue.start: is required for a node app",
      "apps.queue.health: is required for a node app: nothing takes traffic unchecked",
      "apps.jobs.ports: the app runs on no web host (roles: [worker]): it has no slots",
    ]);
    const routed = fleetRaw();
    routed.apps.orchestrator.roles = ["worker"];
    routed.apps.orchestrator.workers = { mailer: { command: "node dist/mailer.js" } };
    for (const key of ["start", "ports", "health"]) delete routed.apps.orchestrator[key];
    assert.deepStrictEqual(problems(routed), ["apps.orchestrator.roles: leaves out web, but nginx routes /api/ to orchestrator"]);
    const noWorkerHost = fleetRaw();
    delete noWorkerHost.hosts.jobs;
    noWorkerHost.apps.queue = { repo: "/tmp/repos/queue", ref: "v2.0.0", roles: ["worker"], workers: { run: { command: "node run.js" } } };
    assert.deepStrictEqual(problems(noWorkerHost), [
      "apps.queue.roles: runs the app on worker hosts only, and no host has the role worker",
    ]);
    const single = validRaw();
    single.apps.orchestrator.roles = ["web"];
    assert.deepStrictEqual(problems(single), [
      "apps.orchestrator.roles: places the app on the hosts of a fleet (hosts); a single server runs every app",
    ]);
  });
});
