// The engine's side of a local deploy: a throwaway file state backend with its passphrase and
// the pulumi CLI run against it (needs `pulumi` on PATH: scripts/install-pulumi.sh).
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/** The project (Pulumi.yaml, the `local` stack file). */
export const REPO_ROOT = path.resolve(__dirname, "..");

/** Fails (never skips) when the engine is missing: the test command installs it first. */
export function requirePulumi(): void {
  const r = spawnSync("pulumi", ["version"], { encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error("no `pulumi` on PATH: run the tests through `npm test`, which builds and installs the engine");
  }
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A throwaway file backend, passphrase and PULUMI_HOME for one test's stacks. */
export class TempBackend {
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(label: string) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `nostromo-${label}-`));
    fs.mkdirSync(path.join(this.dir, "state"));
    this.env = {
      ...process.env,
      PULUMI_BACKEND_URL: `file://${path.join(this.dir, "state")}`,
      PULUMI_CONFIG_PASSPHRASE: "test-passphrase",
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      PULUMI_IGNORE_AMBIENT_PLUGINS: "true",
    };
  }

  get stateDir(): string {
    return path.join(this.dir, "state");
  }

  /** Runs the pulumi CLI in `cwd` against this backend. */
  pulumi(cwd: string, args: string[], timeoutMs = 600_000, input?: string): RunResult {
    const r = spawnSync("pulumi", [...args, "--non-interactive"], { cwd, env: this.env, encoding: "utf8", timeout: timeoutMs, input });
    return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  }

  /** Like `pulumi`, but throws with the whole output when the command fails. */
  pulumiOk(cwd: string, args: string[], timeoutMs?: number, input?: string): RunResult {
    const r = this.pulumi(cwd, args, timeoutMs, input);
    if (r.code !== 0) {
      throw new Error(`pulumi ${args.join(" ")} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    }
    return r;
  }

  /** Like `pulumi`, without blocking the event loop (so a test can send traffic meanwhile). */
  pulumiAsync(cwd: string, args: string[], timeoutMs = 600_000): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = spawn("pulumi", [...args, "--non-interactive"], { cwd, env: this.env, timeout: timeoutMs });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
  }

  /** Every file of the state backend, as text (to look for leaked secrets). */
  stateText(): string {
    const out: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else out.push(fs.readFileSync(p, "utf8"));
      }
    };
    walk(this.stateDir);
    return out.join("\n");
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
