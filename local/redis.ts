// A throwaway redis-server for tests and local stacks: 127.0.0.1, a random password, no
// persistence, in a folder the caller made (a systemd host sharing this network reaches it too).
import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { freePort } from "./postgres";

export interface RedisInstance {
  /** redis://:password@127.0.0.1:port/0 */
  url: string;
  stop(): Promise<void>;
}

/** redis-server on PATH or in Debian's places, or null (scripts/install-target-deps.sh installs it). */
export function redisServerPath(): string | null {
  for (const dir of [...(process.env.PATH ?? "").split(":"), "/usr/bin", "/usr/sbin"]) {
    const file = path.join(dir, "redis-server");
    if (dir && fs.existsSync(file)) return file;
  }
  return null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts redis-server in `dir`; a port taken between freePort() and bind is tried again (3 times). */
export async function startRedis(dir: string): Promise<RedisInstance> {
  const bin = redisServerPath();
  if (!bin) throw new Error("no redis-server (scripts/install-target-deps.sh installs it)");
  const password = crypto.randomBytes(12).toString("hex");
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const args = [
      "--bind",
      "127.0.0.1",
      "--port",
      String(port),
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      "--requirepass",
      password,
    ];
    const proc: ChildProcess = spawn(bin, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    proc.stdout!.on("data", (d) => (output = (output + d).slice(-20_000)));
    proc.stderr!.on("data", (d) => (output = (output + d).slice(-20_000)));
    const onExit = () => proc.kill("SIGKILL");
    process.on("exit", onExit);
    const stop = async () => {
      process.removeListener("exit", onExit);
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise<void>((r) => proc.once("exit", () => r()));
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    };
    const ready = () => /Ready to accept connections/.test(output);
    const deadline = Date.now() + 15_000;
    while (!ready() && proc.exitCode === null && Date.now() < deadline) await sleep(100);
    if (ready()) return { url: `redis://:${password}@127.0.0.1:${port}/0`, stop };
    await stop();
    if (attempt >= 3) throw new Error(`redis-server did not start:\n${output.slice(-2000)}`);
  }
}
