import { spawn } from "child_process";
import * as path from "path";

export type BashResult = { code: number | null; stdout: string; stderr: string };

/**
 * Runs a built script with bash without blocking this process (the HTTP servers a test starts
 * answer from it), this node first on PATH, with `env` added; killed after 60 s.
 */
export function runBash(text: string, env: Record<string, string> = {}): Promise<BashResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", text], {
      env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}`, ...env },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 60_000,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
