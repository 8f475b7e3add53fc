import { get } from "../../local/http";

/**
 * A steady, bounded stream of requests to the public port until finished; every answer that is
 * not a 200 is a failure. `versions` counts which version /health answered.
 */
export function trafficLoop(port: number, maxRequests = 50_000, maxMs = 15 * 60_000) {
  let stop = false;
  const failures: string[] = [];
  const versions: Record<string, number> = {};
  let sent = 0;
  const started = Date.now();
  const done = (async () => {
    while (!stop && sent < maxRequests && Date.now() - started < maxMs) {
      const p = sent % 2 === 0 ? "/health" : "/api/common/indicadores";
      sent++;
      const r = await get(port, p);
      if (r.status !== 200) failures.push(`${p}: ${r.status} ${r.body.slice(0, 120)}`);
      else if (p === "/health") {
        const v = JSON.parse(r.body).version;
        versions[v] = (versions[v] ?? 0) + 1;
      }
    }
  })();
  return {
    async finish() {
      stop = true;
      await done;
      return { sent, failures, versions };
    },
  };
}
