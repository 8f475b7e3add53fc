/**
 * Rollback cost, side by side in one run on one target: a rollback to a release still kept on
 * the server (switch only) against one whose release was pruned (rebuilt), both through the
 * rollback tool and the real engine. Prints both times and their ratio.
 *
 * Run: eval "$(scripts/install-pulumi.sh)"; eval "$(scripts/install-target-deps.sh)"; npx ts-node bench/rollback.ts
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { DeployHarness } from "../local/harness";
import { REPO_ROOT } from "../local/backend";
import { outputOf } from "../local/stack";

async function main(): Promise<void> {
  const h = new DeployHarness(`t-bench${process.pid}`);
  const both = (v: string) => ({ orchestrator: v, sevastopol: v });
  const up = async (label: string) => {
    const r = await h.up(label);
    if (r.code !== 0) throw new Error(`${label} failed:\n${outputOf(r)}`);
  };
  const rollback = (label: string) => {
    const start = Date.now();
    const r = spawnSync("npx", ["--no-install", "ts-node", "tools/rollback.ts", "--stack", h.stack, "--yes"], {
      cwd: REPO_ROOT,
      env: h.backend.env,
      encoding: "utf8",
    });
    const seconds = (Date.now() - start) / 1000;
    if (r.status !== 0) throw new Error(`${label} failed:\n${r.stdout}\n${r.stderr}`);
    return {
      seconds,
      reported: Number(/rollback time: (\d+\.\d) s/.exec(r.stdout)?.[1]),
      rebuilt: /\bbuilt\b/.test(r.stdout) && !/already built/.test(r.stdout),
    };
  };
  try {
    await h.start(both("v1.2.2"));
    await up("deploy v1.2.2");
    h.configure({ refs: both("v1.2.3") });
    await up("deploy v1.2.3");
    const kept = rollback("rollback to a kept release");
    if ((await h.servedVersion()) !== "1.2.2") throw new Error("the kept rollback does not serve 1.2.2");

    h.configure({ refs: both("v1.2.3") });
    await up("redeploy v1.2.3");
    // Prune the 1.2.2 releases, as cleanup would once they are old enough.
    const sha122 = h.journal()[0].apps;
    for (const app of ["orchestrator", "sevastopol"])
      fs.rmSync(path.join(h.target.root, "releases", app, sha122[app].sha), { recursive: true });
    const rebuilt = rollback("rollback to a pruned release");
    if ((await h.servedVersion()) !== "1.2.2") throw new Error("the rebuilt rollback does not serve 1.2.2");

    console.log(`rollback to a kept release:   ${kept.reported.toFixed(1)} s (tool), ${kept.seconds.toFixed(1)} s wall`);
    console.log(
      `rollback to a pruned release: ${rebuilt.reported.toFixed(1)} s (tool), ${rebuilt.seconds.toFixed(1)} s wall (${rebuilt.rebuilt ? "rebuilt" : "NOT rebuilt?"})`,
    );
    console.log(`ratio pruned/kept: ${(rebuilt.reported / kept.reported).toFixed(2)}`);
    console.log(`deploys (s): ${JSON.stringify(h.timings)}`);
  } finally {
    await h.stop();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
