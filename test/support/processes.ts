import * as fs from "fs";

/** One process as /proc shows it: its command line and its environment (NAME=value each). */
export interface ProcessText {
  pid: string;
  cmdline: string;
  environ: string[];
}

/** Every process's command line (NULs as spaces) and environment, as far as we may read them. */
export function processTexts(): ProcessText[] {
  const out: ProcessText[] = [];
  const read = (pid: string, f: string) => {
    try {
      return fs.readFileSync(`/proc/${pid}/${f}`, "latin1");
    } catch {
      return ""; // gone already, or not ours to read
    }
  };
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)) {
    out.push({ pid, cmdline: read(pid, "cmdline").replace(/\0/g, " "), environ: read(pid, "environ").split("\0").filter(Boolean) });
  }
  return out;
}

export interface Leak {
  /** The process's command line (its start). */
  process: string;
  /** Where the secret was: `argv`, or the name of the environment variable holding it. */
  where: string;
}

export interface ProcessWatch {
  /** Stops sampling; what was seen: command lines matching `seen`, where `secret` was, samples taken. */
  stop(): Promise<{ seen: string[]; leaks: Leak[]; samples: number }>;
}

/**
 * Samples every process's command line and environment every few ms until stopped, keeping where
 * `secret` was (leaks) and the command lines matching `seen` (proof the process of interest ran).
 */
export function watchProcesses(secret: string, seen: RegExp): ProcessWatch {
  const found = new Set<string>();
  const leaks = new Map<string, Leak>();
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const p of processTexts()) {
        const cmd = p.cmdline.slice(0, 120);
        if (p.cmdline.includes(secret)) leaks.set(`${cmd}\0argv`, { process: cmd, where: "argv" });
        for (const kv of p.environ.filter((e) => e.includes(secret))) {
          const where = kv.slice(0, Math.max(0, kv.indexOf("=")));
          leaks.set(`${cmd}\0${where}`, { process: cmd, where });
        }
        if (seen.test(p.cmdline)) found.add(cmd);
      }
      samples++;
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { seen: [...found], leaks: [...leaks.values()], samples };
    },
  };
}
