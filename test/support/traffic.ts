import * as http from "http";
import { request } from "../../local/http";

/**
 * A steady, bounded stream of requests to the public port until finished, over `paths` in turn;
 * every answer that is not a 200 is a failure. `versions` counts which version /health answered,
 * and `pages` which version the page at / showed (its `<meta name="version">`). `host`: another
 * address than 127.0.0.1 (a fleet's load balancer); `keepAlive`: every request on reused connections.
 */
export function trafficLoop(
  port: number,
  maxRequests = 50_000,
  maxMs = 15 * 60_000,
  paths = ["/health", "/api/common/indicadores"],
  opts: { host?: string; keepAlive?: boolean } = {},
) {
  const agent = opts.keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : undefined;
  let stop = false;
  const failures: string[] = [];
  const versions: Record<string, number> = {};
  const pages: Record<string, number> = {};
  let sent = 0;
  const started = Date.now();
  const done = (async () => {
    while (!stop && sent < maxRequests && Date.now() - started < maxMs) {
      const p = paths[sent % paths.length];
      sent++;
      const r = await request(port, "GET", p, { host: opts.host, agent });
      if (r.status !== 200) failures.push(`${p}: ${r.status} ${r.body.slice(0, 120)}`);
      else if (p === "/health") {
        const v = JSON.parse(r.body).version;
        versions[v] = (versions[v] ?? 0) + 1;
      } else if (p === "/") {
        const v = /<meta name="version" content="([^"]*)"/.exec(r.body)?.[1] ?? "no version";
        pages[v] = (pages[v] ?? 0) + 1;
      }
    }
  })();
  return {
    async finish() {
      stop = true;
      await done;
      agent?.destroy();
      return { sent, failures, versions, pages };
    },
  };
}
