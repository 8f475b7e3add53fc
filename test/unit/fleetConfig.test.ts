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
});
