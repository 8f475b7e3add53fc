/**
 * Rollback cost, side by side in one run on one target, through the rollback tool and the real
 * engine: five rollbacks to a release that still runs in its slot (the switch at once), each
 * timed from the command's start until /health through nginx answers the old version and until
 * the tool exits, against a fresh deploy and a rollback to a release whose folder was pruned
 * (rebuilt, slot restarted). Prints min/median/max and the ratios the issue sets (old version
 * within 2 s; whole rollback ≤ 0.5× a fresh deploy).
 *
 * Run: eval "$(scripts/install-pulumi.sh)"; eval "$(scripts/install-target-deps.sh)"; npx ts-node bench/rollback.ts
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { REPO_ROOT } from "../local/backend";
import { DeployHarness } from "../local/harness";
import { get } from "../local/http";
import { outputOf } from "../local/stack";

const RUNS = 5;

type Timed = { untilOld: number; wall: number; said: string; phases: string; rebuilt: boolean };

async function main(): Promise<void> {
  const h = new DeployHarness(`t-bench${process.pid}`);
  const both = (v: string) => ({ orchestrator: v, sevastopol: v });
  const up = async (label: string) => {
    const r = await h.up(label);
    if (r.code !== 0) throw new Error(`${label} failed:\n${outputOf(r)}`);
    return h.timings[label];
  };
  /** The rollback tool, timed from its spawn: until /health answers 1.2.2 (polled every 50 ms) and until it exits. */
  const rollback = (label: string) =>
    new Promise<Timed>((resolve, reject) => {
      const start = Date.now();
      let untilOld = 0;
      let out = "";
      // The command the README gives (npx would add its own 0.2 s start).
      const child = spawn("npm", ["run", "-s", "rollback", "--", "--stack", h.stack, "--yes"], {
        cwd: REPO_ROOT,
        env: h.backend.env,
      });
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (out += d));
      const poll = setInterval(async () => {
        if (untilOld) return;
        const r = await get(h.target.nginx.port, "/health").catch(() => undefined);
        if (!untilOld && r?.status === 200 && JSON.parse(r.body).version === "1.2.2") untilOld = (Date.now() - start) / 1000;
      }, 50);
      child.on("error", reject);
      child.on("close", (code) => {
        clearInterval(poll);
        const wall = (Date.now() - start) / 1000;
        if (code !== 0) return reject(new Error(`${label} failed:\n${out}`));
        const said = /^switched at once, .*$/m.exec(out)?.[0] ?? /^no switch at once .*$/m.exec(out)?.[0] ?? "";
        const phases = /^ {2}\(tool loaded .*\)$/m.exec(out)?.[0].trim() ?? "";
        resolve({ untilOld: untilOld || wall, wall, said, phases, rebuilt: /^release orchestrator@\w+ built$/m.test(out) });
      });
    });
  const stats = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return `min ${s[0].toFixed(1)} / median ${s[Math.floor(s.length / 2)].toFixed(1)} / max ${s[s.length - 1].toFixed(1)} s`;
  };
  try {
    await h.start(both("v1.2.2"));
    const fresh = await up("fresh deploy v1.2.2");
    h.configure({ refs: both("v1.2.3") });
    await up("deploy v1.2.3");
    const kept: Timed[] = [];
    for (let i = 0; i < RUNS; i++) {
      kept.push(await rollback(`rollback ${i + 1} to a kept release`));
      if ((await h.servedVersion()) !== "1.2.2") throw new Error("the kept rollback does not serve 1.2.2");
      h.configure({ refs: both("v1.2.3") });
      await up(`redeploy v1.2.3 (${i + 1})`);
    }
    // Prune the 1.2.2 releases, as cleanup would once they are old enough.
    const sha122 = h.journal()[0].apps;
    for (const app of ["orchestrator", "sevastopol"])
      fs.rmSync(path.join(h.target.root, "releases", app, sha122[app].sha), { recursive: true });
    const pruned = await rollback("rollback to a pruned release");
    if ((await h.servedVersion()) !== "1.2.2") throw new Error("the rebuilt rollback does not serve 1.2.2");

    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log(`fresh deploy (pulumi up):                       ${fresh.toFixed(1)} s`);
    console.log(`rollback to a kept release, ${RUNS} runs:`);
    console.log(`  old version answers after (from the command):  ${stats(kept.map((k) => k.untilOld))}`);
    console.log(`  whole rollback (tool exits):                    ${stats(kept.map((k) => k.wall))}`);
    console.log(`  the tool said: ${kept[0].said}`);
    for (const k of kept) console.log(`  where the time went: ${k.phases}`);
    console.log(
      `rollback to a pruned release: old version after ${pruned.untilOld.toFixed(1)} s, whole ${pruned.wall.toFixed(1)} s (${pruned.rebuilt ? "rebuilt" : "NOT rebuilt?"}; ${pruned.said})`,
    );
    console.log(`ratio whole kept rollback / fresh deploy: ${(median(kept.map((k) => k.wall)) / fresh).toFixed(2)} (target ≤ 0.5)`);
    console.log(`deploys (s): ${JSON.stringify(h.timings)}`);
  } finally {
    await h.stop();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
