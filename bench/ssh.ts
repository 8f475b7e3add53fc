/**
 * What the step runner and the connection pool save a step: 10 sequential `true` steps on a local
 * sshd, each timed, on a step runner of a pooled connection (the default), as a plain exec on the
 * pooled connection (NOSTROMO_SSH_RUNNER=0) and on a new connection each (NOSTROMO_SSH_POOL=0),
 * side by side in one run. Prints min/median/max per step.
 *
 * Run: eval "$(scripts/install-target-deps.sh)"; npx ts-node bench/ssh.ts
 */
import { runOverSsh } from "../components/ssh";
import { startLocalTarget } from "../local/target";

const RUNS = 10;

async function main(): Promise<void> {
  const target = await startLocalTarget();
  try {
    const timed = async (pool: "1" | "0", runner: "1" | "0") => {
      process.env.NOSTROMO_SSH_POOL = pool;
      process.env.NOSTROMO_SSH_RUNNER = runner;
      const ms: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const start = performance.now();
        const r = await runOverSsh(target.ssh, "true", undefined, 10_000);
        if (r.code !== 0) throw new Error(`exec failed: ${r.stderr}`);
        ms.push(performance.now() - start);
      }
      return ms.sort((a, b) => a - b);
    };
    // Each pooled mode's first step opens the connection (counted, as in a deploy's first step).
    const runner = await timed("1", "1");
    await new Promise((r) => setTimeout(r, 16_000)); // the pooled connection idles out: the next mode dials its own
    const pooled = await timed("1", "0");
    const fresh = await timed("0", "0");
    const row = (label: string, ms: number[]) =>
      `${label.padEnd(26)} ${[ms[0], ms[Math.floor(ms.length / 2)], ms[ms.length - 1]].map((v) => v.toFixed(0).padStart(6)).join(" ")}`;
    console.log(`${RUNS} sequential \`true\` steps, ms per step:`.padEnd(27) + "   min median    max");
    console.log(row("step runner, pooled", runner));
    console.log(row("exec, pooled connection", pooled));
    console.log(row("exec, new connection each", fresh));
    const median = (ms: number[]) => ms[Math.floor(ms.length / 2)];
    console.log(
      `median: the runner ${(median(pooled) / median(runner)).toFixed(1)}× faster than a pooled exec, ` +
        `pooled exec ${(median(fresh) / median(pooled)).toFixed(1)}× faster than a new connection`,
    );
  } finally {
    await target.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
