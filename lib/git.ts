import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const GIT_ENV = { ...process.env, GIT_TERMINAL_PROMPT: "0" };

/** Runs git; a failure throws git's own stderr (trimmed) as `stderr` on the error. */
function git(args: string[]): string {
  try {
    return execFileSync("git", args, { encoding: "utf8", timeout: 60_000, env: GIT_ENV, stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr || (err as Error).message).trim();
    throw Object.assign(new Error(stderr, { cause: err }), { stderr });
  }
}

/**
 * Resolves a tag, branch or SHA of `repo` to a commit SHA with `git ls-remote`, at program time,
 * so `pulumi preview` already shows which commit each app would get. A full 40-hex SHA is checked
 * to exist in `repo` (see commitExists), so a mistyped SHA is refused at preview like a missing tag.
 */
export function resolveRef(repo: string, ref: string): string {
  if (/^[0-9a-f]{40}$/.test(ref)) {
    if (!commitExists(repo, ref)) throw new Error(`ref ${ref} not found in ${repo}: no such commit`);
    return ref;
  }
  let out: string;
  try {
    out = git(["ls-remote", "--", repo, ref, `${ref}^{}`]);
  } catch (err) {
    throw new Error(`cannot read ${repo}: ${(err as { stderr: string }).stderr}`, { cause: err });
  }
  const rows = out
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split("\t") as [string, string]);
  // An annotated tag's commit is its peeled line (`^{}`); prefer tags over branches of the same name.
  const pick =
    rows.find(([, name]) => name === `refs/tags/${ref}^{}`) ??
    rows.find(([, name]) => name === `refs/tags/${ref}`) ??
    rows.find(([, name]) => name === `refs/heads/${ref}`) ??
    rows.find(([, name]) => name === ref);
  if (!pick) throw new Error(`ref ${ref} not found in ${repo}`);
  return pick[0];
}

/**
 * Whether commit `sha` (40 hex) is in `repo`. `git ls-remote` lists only refs, so this fetches
 * that one commit by SHA into a temporary bare repository with `repo` as its origin: `git fetch
 * --depth=1 --filter=tree:0 origin <sha>` (one commit object, no trees or blobs where the server supports filters; without
 * them it ignores the filter with a warning and sends that commit's tree). The same command works
 * for a local path (as the tests use) and a remote URL: protocol v2 (git's default since 2.26)
 * serves any commit asked for by SHA, so an existing commit is always found. The server answers
 * "not our ref" for a commit it does not have; any other failure (repo unreachable) throws.
 */
export function commitExists(repo: string, sha: string): boolean {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-ref-"));
  try {
    git(["init", "--quiet", "--bare", tmp]);
    git(["-C", tmp, "remote", "add", "origin", repo]);
    try {
      git(["-C", tmp, "fetch", "--quiet", "--depth=1", "--filter=tree:0", "--no-tags", "origin", sha]);
    } catch (err) {
      const stderr = (err as { stderr: string }).stderr;
      if (/not our ref|couldn't find remote ref|no such remote ref|unadvertised object/i.test(stderr)) return false;
      throw new Error(`cannot read ${repo}: ${stderr}`, { cause: err });
    }
    // The server sends any object asked for by SHA: a tree or blob is not a commit.
    try {
      git(["-C", tmp, "cat-file", "-e", `${sha}^{commit}`]);
      return true;
    } catch {
      return false;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Files matching `glob` (a git pathspec glob, relative to the repository's top) that commit `to`
 * has and commit `from` has not: the migrations a deploy from `from` to `to` brings. Without
 * `from` (a first deploy): every matching file of `to`. Both commits are fetched by SHA, without
 * history, into a temporary bare repository (trees only need the two commits).
 */
export function addedFiles(repo: string, from: string | undefined, to: string, glob: string): string[] {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-diff-"));
  try {
    git(["init", "--quiet", "--bare", tmp]);
    git(["-C", tmp, "remote", "add", "origin", repo]);
    try {
      git(["-C", tmp, "fetch", "--quiet", "--depth=1", "--no-tags", "origin", to, ...(from && from !== to ? [from] : [])]);
    } catch (err) {
      throw new Error(`cannot read ${repo}: ${(err as { stderr: string }).stderr}`, { cause: err });
    }
    const spec = `:(glob)${glob}`;
    // A first deploy compares with the empty tree: every matching file is added.
    const base = from ?? git(["-C", tmp, "hash-object", "-t", "tree", "--stdin"]).trim();
    const out = git(["-C", tmp, "diff", "--name-only", "--diff-filter=A", "--no-renames", base, to, "--", spec]);
    return out.split("\n").filter(Boolean).sort();
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
