import * as assert from "assert";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DeployConfig, parseDeployConfig } from "../../lib/config";
import { addedFiles, resolveRef } from "../../lib/git";
import { releaseScript } from "../../lib/scripts";
import { validRaw } from "../support/validConfig";

/** git in `cwd`, with a fixed identity; its trimmed stdout. */
function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", ["-c", "user.name=test", "-c", "user.email=test@example.invalid", ...args], {
    cwd,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  }).trim();
}

/** A new commit in `repo` touching `file`; its SHA. */
function commit(repo: string, file: string, text: string): string {
  fs.writeFileSync(path.join(repo, file), text);
  git(repo, "add", file);
  git(repo, "commit", "--quiet", "-m", `${file}: ${text}`);
  return git(repo, "rev-parse", "HEAD");
}

describe("integration: git refs and the release step's mirror, with real repositories", () => {
  let dir: string;
  let root: string;
  let origin: string;
  let stubs: string;

  // Each test: a new server root and an origin repository with one commit, tagged v1.
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-git-"));
    root = path.join(dir, "root");
    origin = path.join(dir, "origin");
    fs.mkdirSync(origin);
    git(origin, "init", "--quiet", "-b", "main");
    commit(origin, "README", "one");
    git(origin, "tag", "v1");
    // The preflight of the lease guard checks the target's commands; the release step uses none
    // of the process managers, so stand-ins do for the ones this machine lacks.
    stubs = path.join(dir, "bin");
    fs.mkdirSync(stubs);
    for (const c of ["pm2", "nginx"]) {
      if (spawnSync("bash", ["-c", `command -v ${c}`]).status !== 0) {
        fs.writeFileSync(path.join(stubs, c), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
      }
    }
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** The config with one static app served from `repo`; install and build do nothing. */
  function config(repo: string): DeployConfig {
    const raw = validRaw();
    raw.server.root = root;
    raw.apps.sevastopol = { ...raw.apps.sevastopol, repo, install: "true", build: "true" };
    return parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
  }

  /** The release step of sevastopol at `sha`, run with bash under a lease as on a server. */
  function release(repo: string, sha: string): { code: number | null; stdout: string; stderr: string } {
    const cfg = config(repo);
    const app = cfg.apps.find((a) => a.name === "sevastopol")!;
    const env = { ...process.env, PATH: `${stubs}:${process.env.PATH}`, NOSTROMO_LEASE: "unit/lease-1" };
    const r = spawnSync("bash", ["-c", releaseScript(cfg, app, sha)], { input: "A=1\n", encoding: "utf8", timeout: 60_000, env });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  const mirror = () => path.join(root, "repos", "sevastopol.git");
  const released = (sha: string) => fs.readFileSync(path.join(root, "releases", "sevastopol", sha, "REVISION"), "utf8").trim();

  it("a tag moved on the remote (git tag -f) is released on the first try; a fetch that fails shows git's message and the repo", () => {
    const first = resolveRef(origin, "v1");
    const r1 = release(origin, first);
    assert.strictEqual(r1.code, 0, r1.stderr);
    assert.strictEqual(released(first), first);

    const hotfix = commit(origin, "README", "hotfix");
    git(origin, "tag", "-f", "v1", hotfix);
    assert.strictEqual(resolveRef(origin, "v1"), hotfix);
    const r2 = release(origin, hotfix);
    assert.strictEqual(r2.code, 0, `the moved tag failed the fetch: ${r2.stderr}`);
    assert.strictEqual(released(hotfix), hotfix);
    assert.strictEqual(git(mirror(), "rev-parse", "v1^{commit}"), hotfix, "the mirror's tag v1 was not moved");

    // A commit the mirror does not have, and the origin gone: the step fails with git's own words.
    const later = commit(origin, "README", "later");
    const moved = `${origin}.moved`;
    fs.renameSync(origin, moved);
    try {
      const r3 = release(origin, later);
      assert.notStrictEqual(r3.code, 0);
      assert.ok(r3.stderr.includes(`release: git fetch from ${origin} failed:`), r3.stderr);
      assert.match(r3.stderr, /does not appear to be a git repository/);
    } finally {
      fs.renameSync(moved, origin);
    }
  });

  it("a changed repo URL moves the mirror's origin: a commit only in the new repository is released", () => {
    const first = git(origin, "rev-parse", "HEAD");
    const r1 = release(origin, first);
    assert.strictEqual(r1.code, 0, r1.stderr);
    assert.strictEqual(git(mirror(), "config", "--get", "remote.origin.url"), origin);
    const fork = path.join(dir, "fork");
    git(dir, "clone", "--quiet", origin, fork);
    const only = commit(fork, "FORK", "only in the fork");
    assert.strictEqual(resolveRef(fork, only), only);
    const r = release(fork, only);
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual(released(only), only);
    assert.strictEqual(git(mirror(), "config", "--get", "remote.origin.url"), fork);
    assert.match(r.stdout, /release: mirror origin set to /);
  });

  it("a full SHA that is not in the repository is refused at preview, naming the ref and the repository", () => {
    const head = git(origin, "rev-parse", "HEAD");
    assert.strictEqual(resolveRef(origin, head), head);
    const missing = "0123456789abcdef0123456789abcdef01234567";
    assert.throws(
      () => resolveRef(origin, missing),
      (err: Error) => {
        assert.strictEqual(err.message, `ref ${missing} not found in ${origin}: no such commit`);
        return true;
      },
    );
    // A tree's SHA is no commit either.
    const tree = git(origin, "rev-parse", "HEAD^{tree}");
    assert.throws(() => resolveRef(origin, tree), /not found in/);
    // An unreachable repository is a read error, not a missing commit.
    assert.throws(() => resolveRef(path.join(dir, "nowhere"), missing), /^Error: cannot read .*nowhere/);
  });

  it("addedFiles: the migration files one commit adds over another, every one for a first deploy, none for a glob that matches nothing; an unreadable repo throws", () => {
    const v1 = git(origin, "rev-parse", "HEAD");
    fs.mkdirSync(path.join(origin, "migrations"));
    commit(origin, "migrations/001_init.sql", "create table a (id int);");
    const v2 = commit(origin, "migrations/002_more.sql", "alter table a add column b int;");
    fs.mkdirSync(path.join(origin, "core", "migrations"), { recursive: true });
    const v3 = commit(origin, "core/migrations/0002_note.py", "# django");
    assert.deepStrictEqual(addedFiles(origin, v1, v2, "migrations/*.sql"), ["migrations/001_init.sql", "migrations/002_more.sql"]);
    assert.deepStrictEqual(addedFiles(origin, v2, v3, "migrations/*.sql"), []);
    assert.deepStrictEqual(addedFiles(origin, v2, v3, "*/migrations/0*.py"), ["core/migrations/0002_note.py"]);
    assert.deepStrictEqual(addedFiles(origin, undefined, v2, "migrations/*.sql"), ["migrations/001_init.sql", "migrations/002_more.sql"]);
    // Going back adds none.
    assert.deepStrictEqual(addedFiles(origin, v2, v1, "migrations/*.sql"), []);
    assert.throws(() => addedFiles(path.join(dir, "nowhere"), v1, v2, "migrations/*.sql"), /cannot read .*nowhere/);
  });
});
