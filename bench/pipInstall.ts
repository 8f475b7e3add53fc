/**
 * What IACT's requirements.txt (Django, Celery, gunicorn, redis, psycopg, hash-pinned) costs a
 * release, side by side in one run: the release step as the deploy builds it (a new folder and
 * .venv per commit) for v1.0.0 with an empty wheelhouse (pip downloads from PyPI), then for
 * v1.1.0 with the requirements unchanged (offline from the wheelhouse, no index reachable), and
 * the runbook's way for comparison: `pip install -r requirements.txt` into a fresh virtualenv
 * with pip's cache warm. Prints the install times and their ratios.
 *
 * Run: npx ts-node bench/pipInstall.ts (needs python3-venv and PyPI)
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseDeployConfig } from "../lib/config";
import { releaseScript } from "../lib/scripts";
import { IACT_V1, IACT_V2, makeIactRepo } from "../local/iactRepo";
import { validRaw } from "../test/support/validConfig";

const INSTALL = `t0=$(date +%s%N); nostromo_pip_install requirements.txt; echo "install took $(( ($(date +%s%N) - t0) / 1000000 )) ms"`;

function sh(script: string, env: NodeJS.ProcessEnv = {}, input = ""): string {
  const r = spawnSync("bash", ["-c", script], { input, encoding: "utf8", timeout: 600_000, env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`exit ${r.status}:\n${r.stdout}\n${r.stderr}`.slice(-4000));
  return `${r.stdout}${r.stderr}`;
}

function sha(repo: string, tag: string): string {
  return sh(`git -C ${repo} rev-parse ${tag}^{commit}`).trim();
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-bench-pip-"));
  try {
    const repo = await makeIactRepo(path.join(dir, "repos"));
    const raw = validRaw();
    raw.server.root = path.join(dir, "root");
    // The preflight checks the process manager's command; this step starts nothing.
    const stubs = path.join(dir, "bin");
    fs.mkdirSync(stubs);
    fs.writeFileSync(path.join(stubs, "pm2"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    raw.apps = {
      iact: {
        repo,
        ref: IACT_V1.tag,
        kind: "python",
        install: INSTALL,
        start: "gunicorn iact.wsgi",
        ports: { blue: 8201, green: 8202 },
        health: { path: "/api/health" },
      },
    };
    delete raw.nginx.site;
    const cfg = parseDeployConfig("bench", raw, { sshPrivateKey: true, databaseUrl: true });
    const env = { PATH: `${process.env.PATH}:${stubs}`, NOSTROMO_LEASE: "bench/lease-1" };
    const release = (tag: string, extra: NodeJS.ProcessEnv = {}) => {
      const start = Date.now();
      const out = sh(releaseScript(cfg, cfg.apps[0], sha(repo, tag)), { ...env, ...extra }, "SECRET_KEY='bench'\n");
      const install = Number(/install took (\d+) ms/.exec(out)?.[1]);
      return { step: (Date.now() - start) / 1000, install: install / 1000, offline: /installed offline/.test(out) };
    };

    const fresh = release(IACT_V1.tag);
    const unchanged = release(IACT_V2.tag, { PIP_NO_INDEX: "1", PIP_INDEX_URL: "http://127.0.0.1:9/simple" });
    if (!unchanged.offline) throw new Error("the unchanged requirements were not installed offline");

    // The runbook's `pip install -r requirements.txt` in a new virtualenv, pip's cache already warm.
    const venv = path.join(dir, "runbook-venv");
    const cache = path.join(dir, "pip-cache");
    const reqs = path.join(repo, "requirements.txt");
    sh(`python3 -m venv ${venv} && ${venv}/bin/pip install --quiet --disable-pip-version-check --cache-dir ${cache} -r ${reqs}`);
    sh(`rm -rf ${venv} && python3 -m venv ${venv}`);
    const t0 = Date.now();
    sh(`${venv}/bin/pip install --quiet --disable-pip-version-check --cache-dir ${cache} -r ${reqs}`);
    const runbook = (Date.now() - t0) / 1000;

    const f = (s: number) => `${s.toFixed(1)} s`;
    console.log(`IACT requirements.txt, ${fs.readFileSync(reqs, "utf8").match(/^[a-z0-9_.-]+==/gim)?.length} pinned packages:`);
    console.log(`  first release (download from PyPI into the wheelhouse):  install ${f(fresh.install)}, release step ${f(fresh.step)}`);
    console.log(
      `  new release, requirements unchanged (offline):          install ${f(unchanged.install)}, release step ${f(unchanged.step)}`,
    );
    console.log(`  runbook's pip install -r, fresh venv, pip cache warm:    install ${f(runbook)}`);
    console.log(
      `  ratios: unchanged/first ${(unchanged.install / fresh.install).toFixed(2)}, unchanged/runbook-warm ${(unchanged.install / runbook).toFixed(2)}`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
