import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseDeployConfig } from "../../lib/config";
import { SYSTEMD_UNIT_DIR, systemdUnit } from "../../lib/scripts";
import { quote } from "../../lib/shell";
import { REPO_ROOT, TempBackend, requirePulumi } from "../../local/backend";
import { makeExampleRepos } from "../../local/exampleRepos";
import {
  LOCAL_SMOKE_SECRETS,
  LocalStackOptions,
  localConfig,
  localSecrets,
  outputOf,
  removeStackFile,
  setPlainConfig,
  writeStack,
} from "../../local/stack";
import { PostgresInstance, startPostgres } from "../../local/postgres";
import { SystemdHost, startSystemdHost } from "../support/systemdHost";
import { freeSlotPort } from "../../local/target";
import { get } from "../../local/http";

// The systemd path of the deploy (apps.orchestrator.manager: systemd), with the real engine,
// against a real systemd (PID 1 of a container: test/support/systemdHost.ts) reached over SSH.

describe("e2e: pulumi up with the systemd service manager, on a real systemd host", function () {
  const stack = `t-sd${process.pid}`;
  let backend: TempBackend;
  let host: SystemdHost;
  let pg: PostgresInstance;
  let opts: LocalStackOptions;
  let work: string;
  const timings: Record<string, number> = {};

  const unit = (slot: string) => `nostromo-orchestrator-${slot}.service`;
  /** `systemctl is-active`/`is-enabled` answer (they exit non-zero for "inactive"). */
  const state = (verb: string, slot: string) => host.exec(`systemctl ${verb} ${unit(slot)} || true`).trim();
  const up = (label: string) => {
    const start = Date.now();
    const r = backend.pulumi(REPO_ROOT, ["up", "--yes", "--skip-preview", "--stack", stack]);
    timings[label] = (Date.now() - start) / 1000;
    return r;
  };

  before(async () => {
    requirePulumi();
    work = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-sd-e2e-"));
    fs.chmodSync(work, 0o755);
    backend = new TempBackend("systemd");
    const repos = await makeExampleRepos(path.join(work, "repos"));
    const start = Date.now();
    // The deploy clones the example repos by their path: the same path inside the host.
    [host, pg] = await Promise.all([startSystemdHost({ shareDirs: [work] }), startPostgres()]);
    timings["systemd host + postgres start"] = (Date.now() - start) / 1000;
    opts = {
      target: host,
      manager: "systemd",
      databaseUrl: pg.url,
      repos,
      refs: { orchestrator: "v1.2.2", sevastopol: "v1.2.2" },
      slotPorts: { blue: await freeSlotPort(), green: await freeSlotPort() },
    };
    writeStack(backend, stack, localConfig(opts), localSecrets(host.ssh.privateKey, pg.url));
  });

  after(async () => {
    console.log(`      timings (s): ${JSON.stringify(timings)}`);
    if (backend) backend.pulumi(REPO_ROOT, ["stack", "rm", "--yes", "--force", "--stack", stack]);
    removeStackFile(stack);
    const start = Date.now();
    await host?.stop();
    console.log(`      systemd host stopped in ${(Date.now() - start) / 1000} s`);
    await pg?.stop();
    backend?.remove();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("a unit's ExecStart and Environment reach the process byte for byte (quotes, $, %, \\, tab, newline)", () => {
    const root = "/tmp/quoting";
    const weird = `50% "quoted" $NOT_EXPANDED back\\slash`;
    const cfg = parseDeployConfig(
      "quoting",
      {
        server: { host: "127.0.0.1", user: "root", root, hostKey: host.ssh.hostKey, path: host.binPath, env: { WEIRD: weird } },
        apps: {
          quoting: {
            repo: "/nowhere",
            ref: "v1.0.0",
            kind: "node",
            // One command over two lines (a backslash-newline), writing what it got.
            start: `printf '[%s]\\n' "it's 100% \\"ok\\"" 'back\\slash $HOME' "$PORT" "$WEIRD" "$FROM_ENV_FILE" \\\n  "$(printf 'tab\\tthere')" > out.txt`,
            ports: { blue: 18001, green: 18002 },
            health: { path: "/health" },
          },
        },
      },
      { sshPrivateKey: true, databaseUrl: false },
    );
    const dir = `${root}/slots/quoting/blue`;
    const out = host.exec(
      [
        `mkdir -p ${dir} && cd ${dir} && rm -f out.txt`,
        `printf '%s\\n' ${quote(`FROM_ENV_FILE='it'\\''s from .env'`)} > .env`,
        `printf '%s' ${quote(systemdUnit(cfg.server, cfg.apps[0], "blue"))} > ${SYSTEMD_UNIT_DIR}/nostromo-quoting-blue.service`,
        `systemctl daemon-reload && systemctl start nostromo-quoting-blue.service`,
        `for i in $(seq 100); do [ -s out.txt ] && break; sleep 0.1; done`,
        `cat out.txt`,
        `rm -f ${SYSTEMD_UNIT_DIR}/nostromo-quoting-blue.service && systemctl daemon-reload && rm -rf ${root}`,
      ].join("\n"),
    );
    assert.strictEqual(
      out,
      [`[it's 100% "ok"]`, `[back\\slash $HOME]`, `[18001]`, `[${weird}]`, `[it's from .env]`, `[tab\tthere]`, ``].join("\n"),
    );
  });

  it("1. fresh deploy of v1.2.2 runs Orchestrator as the blue slot's systemd unit", async () => {
    const r = up("fresh deploy");
    assert.strictEqual(r.code, 0, outputOf(r));
    const outputs = JSON.parse(backend.pulumiOk(REPO_ROOT, ["stack", "output", "--json", "--stack", stack]).stdout);
    assert.strictEqual(outputs.apps.orchestrator.slot, "blue");
    assert.strictEqual(state("is-active", "blue"), "active");
    assert.strictEqual(state("is-enabled", "blue"), "enabled");
    assert.strictEqual(state("is-active", "green"), "inactive");
    assert.strictEqual(host.exec(`cat ${host.root}/slots/orchestrator/live`).trim(), "blue");
    // No PM2 anywhere: the process is the unit's main process, in its cgroup.
    const pid = host.exec(`systemctl show -p MainPID --value ${unit("blue")}`).trim();
    assert.match(host.exec(`cat /proc/${pid}/cgroup`), new RegExp(`/system\\.slice/${unit("blue").replace(/\./g, "\\.")}$`, "m"));
    const health = await get(host.nginx.port, "/health");
    assert.strictEqual(health.status, 200, health.body);
    assert.deepStrictEqual(JSON.parse(health.body), { status: "ok", version: "1.2.2" });
    assert.deepStrictEqual(outputs.smokeTests.length, 5);
  });

  it("2. upgrade to v1.2.3: the green unit serves 1.2.3, the blue unit keeps running 1.2.2 for a rollback", async () => {
    setPlainConfig(stack, localConfig({ ...opts, refs: { orchestrator: "v1.2.3", sevastopol: "v1.2.3" } }));
    const r = up("upgrade");
    assert.strictEqual(r.code, 0, outputOf(r));
    const outputs = JSON.parse(backend.pulumiOk(REPO_ROOT, ["stack", "output", "--json", "--stack", stack]).stdout);
    const slot = outputs.apps.orchestrator.slot;
    assert.strictEqual(slot, "green");
    assert.strictEqual(state("is-active", slot), "active");
    assert.strictEqual(host.exec(`cat ${host.root}/slots/orchestrator/live`).trim(), slot);

    const health = await get(host.nginx.port, "/health");
    assert.strictEqual(health.status, 200, health.body);
    assert.deepStrictEqual(JSON.parse(health.body), { status: "ok", version: "1.2.3" });
    const page = await get(host.nginx.port, "/");
    assert.match(page.body, /1\.2\.3/);

    // Instant rollback: the old slot's unit is still up, on its own port, with the old release.
    assert.strictEqual(state("is-active", "blue"), "active");
    const old = await get(opts.slotPorts.blue, "/health");
    assert.deepStrictEqual(JSON.parse(old.body), { status: "ok", version: "1.2.2" });

    // The unit systemd runs is the one systemdUnit() writes, byte for byte.
    const cfg = parseDeployConfig(stack, localConfig({ ...opts, refs: { orchestrator: "v1.2.3", sevastopol: "v1.2.3" } }), {
      sshPrivateKey: true,
      databaseUrl: true,
      smokeSecrets: { names: Object.keys(LOCAL_SMOKE_SECRETS) },
    });
    const app = cfg.apps.find((a) => a.name === "orchestrator")!;
    for (const s of ["blue", "green"] as const) {
      assert.strictEqual(host.exec(`systemctl cat ${unit(s)}`), `# ${SYSTEMD_UNIT_DIR}/${unit(s)}\n${systemdUnit(cfg.server, app, s)}`);
    }
    const sha = execFileSync("git", ["-C", opts.repos.orchestrator, "rev-parse", "v1.2.3^{commit}"], { encoding: "utf8" }).trim();
    const pid = host.exec(`systemctl show -p MainPID --value ${unit(slot)}`).trim();
    assert.strictEqual(host.exec(`readlink /proc/${pid}/cwd`).trim(), `${host.root}/releases/orchestrator/${sha}`);
  });

  it("3. a slot whose unit keeps failing fails the deploy with its journal, is stopped and disabled; nothing is switched", async () => {
    const config = localConfig({ ...opts, refs: { orchestrator: "v1.2.3", sevastopol: "v1.2.3" } });
    const orchestrator = (config.apps as any).orchestrator;
    orchestrator.start = "node dist/no-such-server.js";
    orchestrator.health = { ...orchestrator.health, timeoutSeconds: 5 };
    setPlainConfig(stack, config);
    const r = up("failing slot");
    setPlainConfig(stack, localConfig({ ...opts, refs: { orchestrator: "v1.2.3", sevastopol: "v1.2.3" } }));
    assert.notStrictEqual(r.code, 0, outputOf(r));
    const out = outputOf(r);
    assert.match(out, /health check failed for orchestrator: http:\/\/127\.0\.0\.1:\d+\/health expected HTTP 200/);
    assert.match(out, /nostromo-orchestrator-blue\.service: (\w+=\S* )*Result=exit-code .*ExecMainStatus=1/);
    assert.match(out, /last log lines of nostromo-orchestrator-blue\.service:/);
    assert.match(out, /Cannot find module '[^']*dist\/no-such-server\.js'/);
    assert.strictEqual(state("is-active", "blue"), "inactive");
    assert.strictEqual(state("is-enabled", "blue"), "disabled");
    assert.strictEqual(state("is-active", "green"), "active");
    const health = await get(host.nginx.port, "/health");
    assert.deepStrictEqual(JSON.parse(health.body), { status: "ok", version: "1.2.3" });
  });
});
