/**
 * Several deploy hosts on this machine, each a network namespace of its own (`ip netns`, from
 * iproute2) joined to a bridge by a veth pair: its own address (10.X.Y.11, .12, …), its own
 * loopback (an app's 127.0.0.1:8000 on one host is not another's), its own sshd on :22 and
 * nginx on :80 (local/target.ts), and what a deploy starts over SSH (PM2, slots) runs inside it.
 * Each host's deploy root, PM2 home and nginx prefix are folders of its own; the file system
 * itself is the machine's. This machine reaches every host through the bridge's address, and
 * the hosts reach each other. `cut(host)` sets its link down: the host is gone from the
 * network, its processes still run, as when a server drops off mid-deploy.
 */
import { spawnSync } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LocalTarget, startLocalTarget } from "./target";

export interface FleetHost {
  readonly name: string;
  /** Its address on the fleet's bridge. */
  readonly address: string;
  readonly netns: string;
  /** Its sshd, nginx and deploy root (local/target.ts), on its address. */
  readonly target: LocalTarget;
}

export interface Fleet {
  readonly hosts: FleetHost[];
  /** The bridge's address: where the hosts see this machine. */
  readonly gateway: string;
  /** The hosts' subnet, e.g. 10.231.7.0/24. */
  readonly subnet: string;
  host(name: string): FleetHost;
  /** Takes the host off the network (its link down); `restore` puts it back. */
  cut(name: string): void;
  restore(name: string): void;
  /** Stops every host's daemons and removes the namespaces, links and bridge. Safe to call twice. */
  stop(): Promise<void>;
}

function ip(args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")} failed: ${r.error?.message ?? ""}${r.stderr}`.trim());
}

/** Starts one host per name (at most 200), on a bridge and subnet of its own. */
export async function startFleet(names: string[]): Promise<Fleet> {
  if (names.length === 0 || names.length > 200) throw new Error(`fleet: 1 to 200 hosts, not ${names.length}`);
  const id = randomBytes(2).toString("hex"); // interface names are at most 15 characters
  const [a, b] = [randomBytes(1)[0] % 200, randomBytes(1)[0]];
  const subnet = `10.${200 + (a % 50)}.${b}`;
  const bridge = `nfl${id}`;
  const hosts: FleetHost[] = [];
  const links: Record<string, string> = {};
  const namespaces: string[] = [];
  // NAT: the hosts reach what this machine reaches (a release's `npm ci` the package registry).
  const natRules = [
    ["-t", "nat", "POSTROUTING", "-s", `${subnet}.0/24`, "!", "-o", bridge, "-j", "MASQUERADE"],
    ["FORWARD", "-i", bridge, "-j", "ACCEPT"],
    ["FORWARD", "-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
  ];
  const rule = (op: "-I" | "-D", r: string[]) => (r[0] === "-t" ? [r[0], r[1], op, ...r.slice(2)] : [op, ...r]);
  const added: string[][] = [];
  const FORWARD = "/proc/sys/net/ipv4/ip_forward";
  const forwardBefore = fs.readFileSync(FORWARD, "utf8").trim();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const r of added) spawnSync("iptables", rule("-D", r));
    for (const h of hosts) await h.target.stop().catch(() => undefined);
    // What outlived its daemon (an sshd session of a client's kept connection, a process a test
    // left) would keep the namespace, its link and address alive after the delete.
    for (const ns of namespaces) {
      const pids = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout.split(/\s+/).filter(Boolean);
      for (const pid of pids) spawnSync("kill", ["-KILL", pid]);
      spawnSync("ip", ["netns", "delete", ns]);
    }
    // A namespace whose sockets are still closing outlives its delete, and its veth pair with it.
    for (const link of Object.values(links)) spawnSync("ip", ["link", "delete", link]);
    spawnSync("ip", ["link", "delete", bridge]);
    // The machine's forwarding as it was (a fleet turns it on for its NAT).
    if (forwardBefore !== "1") fs.writeFileSync(FORWARD, forwardBefore);
    fs.rmSync(keyDir, { recursive: true, force: true });
  };
  // One deploy key for every host, as a fleet's servers have.
  const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-fleet-"));
  const clientKeyFile = path.join(keyDir, "id_ed25519");
  spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "nostromo-fleet-client", "-f", clientKeyFile]);
  try {
    ip(["link", "add", bridge, "type", "bridge"]);
    ip(["addr", "add", `${subnet}.1/24`, "dev", bridge]);
    ip(["link", "set", bridge, "up"]);
    fs.writeFileSync(FORWARD, "1");
    for (const r of natRules) {
      const res = spawnSync("iptables", rule("-I", r), { encoding: "utf8" });
      if (res.status !== 0) throw new Error(`iptables ${rule("-I", r).join(" ")} failed: ${res.error?.message ?? ""}${res.stderr}`.trim());
      added.push(r);
    }
    for (const [i, name] of names.entries()) {
      const netns = `nostromo-${id}-${name}`;
      const link = `nfl${id}h${i}`;
      const address = `${subnet}.${11 + i}`;
      ip(["netns", "add", netns]);
      namespaces.push(netns);
      ip(["link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", netns]);
      ip(["link", "set", link, "master", bridge, "up"]);
      ip(["-n", netns, "addr", "add", `${address}/24`, "dev", "eth0"]);
      ip(["-n", netns, "link", "set", "lo", "up"]);
      ip(["-n", netns, "link", "set", "eth0", "up"]);
      ip(["-n", netns, "route", "add", "default", "via", `${subnet}.1`]);
      links[name] = link;
      hosts.push({ name, address, netns, target: await startLocalTarget({ netns, address, clientKeyFile }) });
    }
  } catch (err) {
    await stop();
    throw new Error(`fleet: could not start host ${hosts.length + 1} of ${names.length}: ${(err as Error).message}`, { cause: err });
  }
  const host = (name: string) => {
    const h = hosts.find((x) => x.name === name);
    if (!h) throw new Error(`fleet: no host named ${name} (hosts: ${names.join(", ")})`);
    return h;
  };
  return {
    hosts,
    gateway: `${subnet}.1`,
    subnet: `${subnet}.0/24`,
    host,
    cut: (name) => ip(["link", "set", links[host(name).name], "down"]),
    restore: (name) => ip(["link", "set", links[host(name).name], "up"]),
    stop,
  };
}
