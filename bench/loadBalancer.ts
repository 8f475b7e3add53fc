/**
 * How a fleet host can leave a load balancer's rotation without failing a request, side by side
 * in one run on fleet hosts (local/fleet.ts: an nginx load balancer and two web hosts, each in
 * its own network namespace). 10 keep-alive and 10 new-connection clients GET / through the load
 * balancer during each scenario:
 * - nothing changes (the baseline);
 * - web1 taken out of the load balancer's upstream and put back, 10 times, each an nginx reload
 *   of the load balancer (its old workers close idle kept-alive client connections);
 * - web1 drained and back, 10 times, by a file its own nginx checks per request (answers 503; the
 *   load balancer's `proxy_next_upstream … http_503` sends the request to web2; nothing reloaded);
 * - web1's own nginx reloaded 20 times behind the load balancer.
 * Prints requests sent and failed per scenario and kind of client.
 *
 * Run (root, for `ip netns`): eval "$(scripts/install-pulumi.sh)"; eval "$(scripts/install-target-deps.sh)"; npx ts-node bench/loadBalancer.ts
 */
import * as http from "http";
import { runOverSsh } from "../components/ssh";
import { FleetHost, startFleet } from "../local/fleet";
import { request } from "../local/http";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function sh(h: FleetHost, script: string): Promise<void> {
  const r = await runOverSsh(h.target.ssh, script, undefined, 60_000);
  if (r.code !== 0) throw new Error(`${h.name}: ${script}\n${r.stderr}`);
}

/** `clients` loops of GET / through the load balancer until the returned function is called. */
function load(host: string, clients: number, keepAlive: boolean): () => Promise<{ sent: number; failed: string[] }> {
  let stop = false;
  let sent = 0;
  const failed: string[] = [];
  const agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : undefined;
  const loops = Array.from({ length: clients }, async () => {
    while (!stop) {
      sent++;
      const r = await request(80, "GET", "/", { host, agent });
      if (r.status !== 200) failed.push(`${r.status} ${r.body.slice(0, 60)}`);
      await sleep(10);
    }
  });
  return async () => {
    stop = true;
    await Promise.all(loops);
    agent?.destroy();
    return { sent, failed };
  };
}

async function main(): Promise<void> {
  const fleet = await startFleet(["lb", "web1", "web2"]);
  try {
    const [lb, web1, web2] = fleet.hosts;
    const site = (file: string, conf: string) => `cat > ${file} <<'EOF_SITE'\n${conf}\nEOF_SITE`;
    for (const w of [web1, web2]) {
      const conf = `server { listen ${w.address}:80; keepalive_requests 100000; location / { if (-e ${w.target.root}/drain) { return 503; } return 200 "${w.name}\\n"; } }`;
      await sh(w, `${site(`${w.target.nginx.sitesDir}/nostromo.conf`, conf)}\n${w.target.nginx.reloadCommand}`);
    }
    const lbSite = (out: string[]) =>
      `upstream web { ${[web1, web2].map((w) => `server ${w.address}:80${out.includes(w.name) ? " down" : ""};`).join(" ")} keepalive 16; }\n` +
      `server { listen ${lb.address}:80; keepalive_requests 100000; location / { proxy_pass http://web; proxy_http_version 1.1; ` +
      `proxy_set_header Connection ""; proxy_next_upstream error timeout http_502 http_503; } }`;
    const setLb = (out: string[]) =>
      sh(lb, `${site(`${lb.target.nginx.sitesDir}/nostromo.conf`, lbSite(out))}\n${lb.target.nginx.reloadCommand}`);
    await setLb([]);

    const rows: string[] = [];
    const scenario = async (label: string, act: () => Promise<void>) => {
      const [keepAlive, fresh] = [load(lb.address, 10, true), load(lb.address, 10, false)];
      await sleep(500);
      await act();
      await sleep(500);
      const [k, f] = [await keepAlive(), await fresh()];
      rows.push(
        `| ${label} | ${k.failed.length} of ${k.sent} | ${f.failed.length} of ${f.sent} | ${[...k.failed, ...f.failed].slice(0, 2).join("; ")} |`,
      );
    };
    await scenario("baseline, 12 s", () => sleep(12_000));
    await scenario("web1 out of the load balancer and back, 10× (20 reloads)", async () => {
      for (let i = 0; i < 10; i++) {
        await setLb(["web1"]);
        await sleep(300);
        await setLb([]);
        await sleep(300);
      }
    });
    await scenario("web1 drained by a file and back, 10× (no reload)", async () => {
      for (let i = 0; i < 10; i++) {
        await sh(web1, `touch ${web1.target.root}/drain`);
        await sleep(300);
        await sh(web1, `rm -f ${web1.target.root}/drain`);
        await sleep(300);
      }
    });
    await scenario("web1's own nginx reloaded, 20×", async () => {
      for (let i = 0; i < 20; i++) {
        await sh(web1, web1.target.nginx.reloadCommand);
        await sleep(300);
      }
    });
    console.log(`\n## Leaving a load balancer's rotation (20 clients through nginx on a fleet host)\n`);
    console.log(`| scenario | keep-alive failed | new connection failed | first failures |`);
    console.log(`| --- | --- | --- | --- |`);
    rows.forEach((r) => console.log(r));
  } finally {
    await fleet.stop();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
