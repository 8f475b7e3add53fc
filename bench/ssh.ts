/**
 * What the SSH connection pool saves a step: 10 sequential `true` execs on a local sshd, each
 * timed, on one pooled connection against a new connection each (NOSTROMO_SSH_POOL=0), side by
 * side in one run. Prints min/median/max per exec.
 *
 * Run: eval "$(scripts/install-target-deps.sh)"; npx ts-node bench/ssh.ts
 */
import { runOverSsh } from "../components/ssh";
import { startLocalTarget } from "../local/target";

const RUNS = 10;

async function main(): Promise<void> {
  const target = await startLocalTarget();
  try {
    const timed = async (pool: "1" | "0") => {
      process.env.NOSTROMO_SSH_POOL = pool;
      const ms: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const start = performance.now();
        const r = await runOverSsh(target.ssh, "true", undefined, 10_000);
        if (r.code !== 0) throw new Error(`exec failed: ${r.stderr}`);
        ms.push(performance.now() - start);
      }
      return ms.sort((a, b) => a - b);
    };
    // Pooled first: its first exec opens the connection (counted, as in a deploy's first step).
    const pooled = await timed("1");
    const fresh = await timed("0");
    const row = (label: string, ms: number[]) =>
      `${label.padEnd(26)} ${[ms[0], ms[Math.floor(ms.length / 2)], ms[ms.length - 1]].map((v) => v.toFixed(0).padStart(6)).join(" ")}`;
    console.log(`${RUNS} sequential \`true\` execs, ms per exec:`.padEnd(27) + "   min median    max");
    console.log(row("pooled connection", pooled));
    console.log(row("new connection each", fresh));
    const median = (ms: number[]) => ms[Math.floor(ms.length / 2)];
    console.log(`median: pooled ${(median(fresh) / median(pooled)).toFixed(1)}× faster`);
  } finally {
    await target.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
