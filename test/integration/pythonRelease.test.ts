// The release step of a python app (issue 10), built and run with bash against a temp deploy root
// as on a server: a virtualenv per release, requirements.txt (one small hash-pinned package) from
// the wheelhouse shared by the app's releases. The first release downloads it from PyPI; a
// second release with the same requirements installs it with no index at all (PIP_NO_INDEX, and
// an index URL that cannot answer), faster.
import * as assert from "assert";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DeployConfig, parseDeployConfig } from "../../lib/config";
import { releaseScript } from "../../lib/scripts";
import { validRaw } from "../support/validConfig";

const IN_CI = process.env.CI === "true";

// six 1.17.0 (a 11 kB pure-python wheel) and its sdist, as pip-compile --generate-hashes pins it.
const REQUIREMENTS = `six==1.17.0 \\
    --hash=sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274 \\
    --hash=sha256:ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81
`;

/** The build: the release's python must be its own .venv's, with six importable from it. */
const BUILD = `python -c "import sys, six; open('built.txt', 'w').write(sys.prefix + ' ' + six.__version__)"`;

function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", ["-c", "user.name=test", "-c", "user.email=test@example.invalid", ...args], {
    cwd,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  }).trim();
}

function commit(repo: string, files: Record<string, string>): string {
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(repo, f), text);
  git(repo, "add", ".");
  git(repo, "commit", "--quiet", "-m", Object.keys(files).join(", "));
  return git(repo, "rev-parse", "HEAD");
}

/** The runner's environment minus pip's own settings (a find-links or index of this machine). */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (/^(PIP_.*|VIRTUAL_ENV|PYTHONPATH|PYTHONHOME)$/.test(k)) delete env[k];
  return { ...env, ...extra };
}

describe("integration: the release step of a python app (virtualenv per release, shared wheelhouse)", function () {
  let dir: string;
  let root: string;
  let origin: string;
  let stubs: string;
  let cfg: DeployConfig;

  before(function () {
    const venv = spawnSync("python3", ["-c", "import ensurepip, venv"], { encoding: "utf8" });
    if (venv.status !== 0) {
      if (IN_CI) throw new Error("python3 cannot make virtualenvs (python3-venv)");
      console.log("    python release: skipped: python3 cannot make virtualenvs (python3-venv)");
      this.skip();
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-python-"));
    root = path.join(dir, "root");
    origin = path.join(dir, "origin");
    fs.mkdirSync(origin);
    git(origin, "init", "--quiet", "-b", "main");
    // The preflight checks the target's commands; this step uses no process manager.
    stubs = path.join(dir, "bin");
    fs.mkdirSync(stubs);
    if (spawnSync("bash", ["-c", "command -v pm2"]).status !== 0)
      fs.writeFileSync(path.join(stubs, "pm2"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const raw = validRaw();
    raw.server.root = root;
    raw.apps = {
      web: {
        repo: origin,
        ref: "main",
        version: "1.0.0",
        kind: "python",
        // The default install, timed apart from the virtualenv's creation (ensurepip: seconds).
        install: `t0=$(date +%s%N); nostromo_pip_install requirements.txt; echo "install took $(( ($(date +%s%N) - t0) / 1000000 )) ms"`,
        build: BUILD,
        start: "python app.py",
        ports: { blue: 8201, green: 8202 },
        health: { path: "/health" },
        workers: { worker: { command: "python worker.py", stopTimeoutSeconds: 5 } },
      },
    };
    delete raw.nginx.site;
    cfg = parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  function release(
    sha: string,
    env: Record<string, string> = {},
  ): { code: number | null; out: string; seconds: number; installMs: number } {
    const started = Date.now();
    const r = spawnSync("bash", ["-c", releaseScript(cfg, cfg.apps[0], sha)], {
      input: "GREETING='hi'\n",
      encoding: "utf8",
      timeout: 300_000,
      env: cleanEnv({ PATH: `${stubs}:${process.env.PATH}`, NOSTROMO_LEASE: "unit/lease-1", ...env }),
    });
    const out = `${r.stdout}${r.stderr}`;
    return {
      code: r.status,
      out,
      seconds: (Date.now() - started) / 1000,
      installMs: Number(/install took (\d+) ms/.exec(out)?.[1] ?? NaN),
    };
  }

  const releaseDir = (sha: string) => path.join(root, "releases", "web", sha);

  it("makes a .venv per release, installs requirements.txt into it, and installs unchanged requirements offline from the wheelhouse (bench/pipInstall.ts times it)", () => {
    const first = commit(origin, { "requirements.txt": REQUIREMENTS, "app.py": "print('v1')\n" });
    const r1 = release(first);
    assert.strictEqual(r1.code, 0, r1.out);
    assert.match(r1.out, /pip: requirements\.txt needs what \S+ lacks \(.*\): downloading it/);
    assert.match(r1.out, /nostromo-result .*"built":"built"/);
    const wheelhouse = path.join(root, "shared", "web", "wheelhouse");
    assert.deepStrictEqual(fs.readdirSync(wheelhouse), ["six-1.17.0-py2.py3-none-any.whl"]);
    // The build ran with the release's own virtualenv (sys.prefix), where six is installed.
    assert.strictEqual(fs.readFileSync(path.join(releaseDir(first), "built.txt"), "utf8"), `${releaseDir(first)}/.venv 1.17.0`);
    assert.ok(fs.existsSync(path.join(releaseDir(first), ".nostromo-built")));
    assert.ok(!fs.existsSync(path.join(root, "releases", "web", `.${first}.partial`)));

    // Same requirements, new code: a new release with its own .venv; no index may be reached.
    const second = commit(origin, { "app.py": "print('v2')\n" });
    const r2 = release(second, { PIP_NO_INDEX: "1", PIP_INDEX_URL: "http://127.0.0.1:9/simple" });
    assert.strictEqual(r2.code, 0, r2.out);
    assert.match(r2.out, /pip: requirements\.txt installed offline from \S+\/shared\/web\/wheelhouse/);
    assert.doesNotMatch(r2.out, /downloading/);
    assert.strictEqual(fs.readFileSync(path.join(releaseDir(second), "built.txt"), "utf8"), `${releaseDir(second)}/.venv 1.17.0`);
    // Each release's console scripts name its own virtualenv (a venv cannot move: built in place).
    const pipShebang = (sha: string) => fs.readFileSync(path.join(releaseDir(sha), ".venv", "bin", "pip"), "utf8").split("\n")[0];
    assert.strictEqual(pipShebang(first), `#!${releaseDir(first)}/.venv/bin/python3`);
    assert.strictEqual(pipShebang(second), `#!${releaseDir(second)}/.venv/bin/python3`);
    console.log(
      `    python release: first ${r1.seconds.toFixed(1)} s (install with download ${r1.installMs} ms), unchanged requirements ${r2.seconds.toFixed(1)} s (install offline ${r2.installMs} ms)`,
    );

    // A release already built is kept as it is.
    const again = release(second, { PIP_NO_INDEX: "1" });
    assert.strictEqual(again.code, 0, again.out);
    assert.match(again.out, /already built: kept/);
  });

  it("a hash that does not match fails the release, offline or not, and leaves it unbuilt", () => {
    const bad = commit(origin, { "requirements.txt": REQUIREMENTS.replace("4721f391", "0000f391").replace("ff70335d", "0000335d") });
    const r = release(bad);
    assert.notStrictEqual(r.code, 0, r.out);
    assert.match(r.out, /THESE PACKAGES DO NOT MATCH THE HASHES/);
    assert.ok(!fs.existsSync(path.join(releaseDir(bad), ".nostromo-built")));
  });
});
