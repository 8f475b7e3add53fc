import { spawn } from "child_process";
import { REPO_ROOT, RunResult, TempBackend } from "../../local/backend";

/**
 * Runs `tools/<name>.ts` as a user would (ts-node, repo root, the backend's env), no TTY; async,
 * so a webhook receiver in the test's own process can answer the tool's notifications.
 */
export function runTool(
  backend: Pick<TempBackend, "env">,
  name: string,
  args: string[],
  timeoutMs = 900_000,
): Promise<RunResult & { seconds: number }> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const child = spawn("npx", ["--no-install", "ts-node", `tools/${name}.ts`, ...args], {
      cwd: REPO_ROOT,
      env: backend.env,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr, seconds: (Date.now() - start) / 1000 }));
  });
}
