/**
 * The README's main command: deploys the example system to this machine with the real engine.
 * Starts a local target (sshd, nginx, PM2 on loopback), a throwaway PostgreSQL and git repos of
 * the example apps, configures the `local` stack, runs `pulumi preview` then `pulumi up`, and
 * prints the URL and the version it serves. Then it keeps everything running until Ctrl-C, or
 * stops at once with --once (or when there is no terminal).
 *
 * Usage: npm run deploy -- [--version 1.2.3] [--once]
 */
import "../lib/compileCache"; // first: every module after it loads from the compile cache
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parseArgs } from "util";
import { DeployHarness } from "../local/harness";
import { get } from "../local/http";
import { REPO_ROOT } from "../local/backend";

const LOCAL_STACK = "local";

function run(h: DeployHarness, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn("pulumi", [...args, "--stack", LOCAL_STACK, "--non-interactive"], {
      cwd: REPO_ROOT,
      env: h.backend.env,
      stdio: "inherit",
    });
    child.on("close", (code) => resolve(code ?? 1));
  });
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { version: { type: "string", default: "1.2.3" }, once: { type: "boolean", default: false } } });
  if (!/^1\.2\.[23]$/.test(values.version!)) {
    console.error(`--version: the example apps have versions 1.2.2 and 1.2.3, not ${values.version}`);
    return 2;
  }
  const ref = `v${values.version}`;
  if (fs.existsSync(path.join(REPO_ROOT, `Pulumi.${LOCAL_STACK}.yaml`))) {
    fs.rmSync(path.join(REPO_ROOT, `Pulumi.${LOCAL_STACK}.yaml`));
  }
  const h = new DeployHarness(LOCAL_STACK);
  const stop = async () => {
    await h.stop();
  };
  try {
    console.log("starting the local target: sshd, nginx, PM2, PostgreSQL on loopback …");
    await h.start({ orchestrator: ref, sevastopol: ref });
    console.log(`\n$ pulumi preview --stack ${LOCAL_STACK}`);
    if ((await run(h, ["preview"])) !== 0) return 1;
    console.log(`\n$ pulumi up --yes --stack ${LOCAL_STACK}`);
    const start = Date.now();
    if ((await run(h, ["up", "--yes", "--skip-preview"])) !== 0) return 1;
    const seconds = ((Date.now() - start) / 1000).toFixed(1);
    const url = `http://127.0.0.1:${h.target.nginx.port}/`;
    const health = await get(h.target.nginx.port, "/health");
    console.log(`\nDeployed in ${seconds} s. The Nostromo system is served at ${url}`);
    console.log(`GET ${url}health → ${health.status} ${health.body}`);
    if (values.once || !process.stdin.isTTY) return health.status === 200 ? 0 : 1;
    console.log("Serving until Ctrl-C (then everything started here is stopped).");
    await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
    return 0;
  } finally {
    await stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
