/**
 * The stack config of the example system on a fleet (local/fleet.ts): web hosts (the first one
 * primary), worker hosts, a load balancer host, each with its own address, host key, deploy root, PM2 home and
 * nginx; one deploy key for all. What a team with three app servers would write.
 */
import * as fs from "fs";
import * as path from "path";
import { Fleet } from "./fleet";
import { LocalStackOptions, localConfig, targetServer } from "./stack";

export interface FleetStackOptions extends Omit<LocalStackOptions, "target"> {
  fleet: Fleet;
  web: string[];
  loadBalancer: string;
  rolling?: { batch?: number | string; maxFailPercent?: number };
  /** Hosts with the role worker only, and apps beside the example system's (a worker-only one, with its roles). */
  workerHosts?: string[];
  apps?: Record<string, unknown>;
}

/** The load balancer host's nginx serves only what the deploy writes: the placeholder site goes. */
export function prepareLoadBalancerHost(fleet: Fleet, name: string): void {
  fs.rmSync(path.join(fleet.host(name).target.nginx.sitesDir, "nostromo.conf"), { force: true });
}

export function fleetConfig(o: FleetStackOptions): Record<string, unknown> {
  const [first] = o.web.map((n) => o.fleet.host(n));
  const base = localConfig({ ...o, target: first.target });
  const { host: _h, hostKey: _k, ...shared } = targetServer(first.target);
  const lb = o.fleet.host(o.loadBalancer).target;
  const own = (name: string) => {
    const { port: _p, minFreeMiB: _m, path: _path, user: _u, ...rest } = targetServer(o.fleet.host(name).target);
    return rest;
  };
  return {
    ...base,
    server: shared,
    apps: { ...(base.apps as Record<string, unknown>), ...o.apps },
    hosts: Object.fromEntries([
      ...o.web.map((name, i) => {
        const t = o.fleet.host(name).target;
        return [
          name,
          {
            ...own(name),
            roles: i === 0 ? ["web", "primary"] : ["web"],
            nginx: {
              sitesDir: t.nginx.sitesDir,
              reloadCommand: t.nginx.reloadCommand,
              testCommand: t.nginx.testCommand,
              errorLog: t.nginx.errorLog,
            },
          },
        ];
      }),
      ...(o.workerHosts ?? []).map((name) => [name, { ...own(name), roles: ["worker"] }]),
    ]),
    loadBalancer: {
      host: lb.address,
      hostKey: lb.ssh.hostKey,
      port: lb.nginx.port,
      sitesDir: lb.nginx.sitesDir,
      reloadCommand: lb.nginx.reloadCommand,
      testCommand: lb.nginx.testCommand,
    },
    ...(o.rolling ? { rolling: o.rolling } : {}),
  };
}
