import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { REPO_ROOT, RunResult, TempBackend, requirePulumi } from "./backend";
import { makeExampleRepos } from "./exampleRepos";
import { get } from "./http";
import { LocalStackOptions, localConfig, localSecrets, removeStackFile, setPlainConfig, writeStack } from "./stack";
import { PostgresInstance, startPostgres } from "./postgres";
import { LocalTarget, freeSlotPort, startLocalTarget } from "./target";

/**
 * Everything a local deploy needs, started for real: the engine's file backend, a local target
 * (sshd, nginx, PM2), a throwaway PostgreSQL, the example repos, and a stack of this project
 * configured to deploy them. The main command (`tools/deploy-local.ts`) starts and stops it; the
 * e2e tests and the bench also change its config, run `pulumi up` timed, and read its outputs.
 * On a fleet host (`onHost`, local/fleet.ts) the deploy goes to that host's sshd, nginx and
 * loopback, and PostgreSQL answers it on the fleet's gateway address; the fleet stops the host.
 */
export class DeployHarness {
  backend!: TempBackend;
  target!: LocalTarget;
  pg!: PostgresInstance;
  opts!: LocalStackOptions;
  work!: string;
  readonly timings: Record<string, number> = {};

  constructor(
    readonly stack: string,
    readonly onHost?: { target: LocalTarget; gateway: string; subnet: string },
  ) {}

  async start(
    refs = { orchestrator: "v1.2.2", sevastopol: "v1.2.2" },
    extra?: Record<string, unknown>,
    secrets: Record<string, string> = {},
  ): Promise<void> {
    requirePulumi();
    this.work = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-e2e-"));
    fs.chmodSync(this.work, 0o755);
    this.backend = new TempBackend(this.stack);
    const host = this.onHost;
    this.target = host?.target ?? (await startLocalTarget());
    this.pg = await startPostgres(host ? { address: host.gateway, subnet: host.subnet } : undefined);
    const databaseUrl = host ? this.pg.url.replace("@127.0.0.1:", `@${host.gateway}:`) : this.pg.url;
    const repos = await makeExampleRepos(path.join(this.work, "repos"));
    this.opts = {
      target: this.target,
      databaseUrl,
      repos,
      refs,
      slotPorts: { blue: await freeSlotPort(), green: await freeSlotPort() },
      extra,
    };
    writeStack(this.backend, this.stack, localConfig(this.opts), { ...localSecrets(this.target.ssh.privateKey, databaseUrl), ...secrets });
  }

  async stop(): Promise<void> {
    if (Object.keys(this.timings).length > 0) console.log(`      timings (s): ${JSON.stringify(this.timings)}`);
    if (this.backend) this.backend.pulumi(REPO_ROOT, ["stack", "rm", "--yes", "--force", "--stack", this.stack]);
    removeStackFile(this.stack);
    if (!this.onHost) await this.target?.stop();
    await this.pg?.stop();
    this.backend?.remove();
    if (this.work) fs.rmSync(this.work, { recursive: true, force: true });
  }

  /** Changes the refs (and any other option) of the stack's config. */
  configure(change: Partial<LocalStackOptions>): void {
    this.opts = { ...this.opts, ...change };
    setPlainConfig(this.stack, localConfig(this.opts));
  }

  /** `pulumi up` of the stack (with `flags`, e.g. `--refresh`), timed under `label`. */
  async up(label: string, flags: string[] = []): Promise<RunResult> {
    const start = Date.now();
    const r = await this.backend.pulumiAsync(REPO_ROOT, ["up", "--yes", "--skip-preview", ...flags, "--stack", this.stack]);
    this.timings[label] = (Date.now() - start) / 1000;
    return r;
  }

  outputs(): any {
    return JSON.parse(this.backend.pulumiOk(REPO_ROOT, ["stack", "output", "--json", "--stack", this.stack]).stdout);
  }

  /** The server's deploy journal, one object per line. */
  journal(): any[] {
    return readJournal(this.target.root);
  }

  /** The version the public port serves (from /health through nginx). */
  async servedVersion(): Promise<string> {
    const r = await get(this.target.nginx.port, "/health", { host: this.target.address });
    return r.status === 200 ? JSON.parse(r.body).version : `HTTP ${r.status}: ${r.body}`;
  }
}

/**
 * A deploy root's journal (`deploys.jsonl`): its deploy lines, one per successful deploy; none
 * when it does not exist. With `events`, the event lines only (backups, migrations, restores).
 */
export function readJournal(root: string, events = false): any[] {
  const file = path.join(root, "deploys.jsonl");
  return fs.existsSync(file)
    ? fs
        .readFileSync(file, "utf8")
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .filter((l) => (l.event !== undefined) === events)
    : [];
}
