// Git repositories of the example apps (examples/), made on the spot with tagged versions: what a
// local deploy clones.
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";

const execFileAsync = promisify(execFile);

export const EXAMPLES_DIR = path.resolve(__dirname, "..", "examples");

// Fixed identity and dates (one hour apart per commit) make every run produce
// the same commit ids, and keep the user's git config out of the picture.
const GIT_CONFIG = [
  "-c",
  "user.name=Nostromo Tests",
  "-c",
  "user.email=tests@nostromo.invalid",
  "-c",
  "commit.gpgsign=false",
  "-c",
  "tag.gpgsign=false",
  "-c",
  "init.defaultBranch=main",
  "-c",
  "core.autocrlf=false",
];
const BASE_TIME = Date.UTC(2024, 0, 1, 12, 0, 0);

async function git(repo: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const { stdout } = await execFileAsync("git", [...GIT_CONFIG, "-C", repo, ...args], {
    env: { ...process.env, GIT_CONFIG_NOSYSTEM: "1", ...env },
    encoding: "utf8",
  });
  return stdout.trim();
}

async function commitCount(repo: string): Promise<number> {
  try {
    return Number(await git(repo, ["rev-list", "--count", "HEAD"]));
  } catch {
    return 0; // no commits yet
  }
}

/** Stages everything, commits with a deterministic date and optionally adds an annotated tag. */
async function commitAll(repo: string, message: string, tag?: string): Promise<void> {
  const date = new Date(BASE_TIME + (await commitCount(repo)) * 3_600_000).toISOString();
  const env = { GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date }; // the tagger date comes from GIT_COMMITTER_DATE too
  await git(repo, ["add", "-A"]);
  await git(repo, ["commit", "-q", "-m", message], env);
  if (tag) await git(repo, ["tag", "-a", tag, "-m", tag], env);
}

/** Writes `files` (paths relative to the repo) and commits them; tags the commit when `tag` is given. */
export async function addCommit(repo: string, message: string, files: Record<string, string>, tag?: string): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(repo, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
  }
  await commitAll(repo, message, tag);
}

/**
 * Commits a new version of an example app on top of `base` (default v1.2.3, so each test
 * version carries only its own change): package.json/package-lock.json bumped to `version`,
 * `edit` applied to files that exist (path → transform of its text) and `files` written; tagged
 * `v<version>`. Returns the tag.
 */
export async function addVersion(
  repo: string,
  version: string,
  message: string,
  edit: Record<string, (text: string) => string> = {},
  files: Record<string, string> = {},
  base = "v1.2.3",
): Promise<string> {
  await git(repo, ["checkout", "-q", "--detach", base]);
  const changed: Record<string, string> = { ...bumpedVersionFiles(repo, version), ...files };
  for (const [rel, transform] of Object.entries(edit)) {
    const before = fs.readFileSync(path.join(repo, rel), "utf8");
    const after = transform(before);
    if (after === before) throw new Error(`addVersion: the edit of ${rel} changed nothing`);
    changed[rel] = after;
  }
  await addCommit(repo, message, changed, `v${version}`);
  return `v${version}`;
}

/** package.json and package-lock.json (top level and packages[""]) with `version` replaced. */
function bumpedVersionFiles(repo: string, version: string): Record<string, string> {
  const read = (f: string) => JSON.parse(fs.readFileSync(path.join(repo, f), "utf8"));
  const pkg = read("package.json");
  pkg.version = version;
  const lock = read("package-lock.json");
  lock.version = version;
  if (lock.packages?.[""]) lock.packages[""].version = version;
  // npm's own formatting, so later `npm install`s produce no diff.
  const json = (o: unknown) => JSON.stringify(o, null, 2) + "\n";
  return { "package.json": json(pkg), "package-lock.json": json(lock) };
}

const ADMIN_INDEXES_SQL = `-- 1.2.3: per-tenant lookups and an admin flag.
create index items_tenant_idx on items (tenant);
alter table items add column created_at timestamptz not null default now();
alter table users add column is_admin boolean not null default false;
update users set is_admin = true where username = 'admin';
`;

/**
 * Builds git repositories `<dir>/orchestrator` and `<dir>/sevastopol` from examples/:
 * the files as they are, tagged v1.2.2, then "Feature: admin indexes" tagged v1.2.3
 * (versions bumped; orchestrator gains migrations/002_add_admin_indexes.sql).
 * The returned plain paths work as git URLs for `git clone`.
 */
export async function makeExampleRepos(dir: string): Promise<{ orchestrator: string; sevastopol: string }> {
  const repos = { orchestrator: path.join(dir, "orchestrator"), sevastopol: path.join(dir, "sevastopol") };
  for (const [name, repo] of Object.entries(repos)) {
    const source = path.join(EXAMPLES_DIR, name);
    // Only what a developer would commit: no installed deps or build output.
    fs.cpSync(source, repo, {
      recursive: true,
      filter: (src) => {
        const parts = path.relative(source, src).split(path.sep);
        return !parts.includes("node_modules") && parts[0] !== "dist" && parts[0] !== ".env";
      },
    });
    await git(repo, ["init", "-q"]);
    await commitAll(repo, `${name} 1.2.2`, "v1.2.2");

    const files = bumpedVersionFiles(repo, "1.2.3");
    if (name === "orchestrator") files["migrations/002_add_admin_indexes.sql"] = ADMIN_INDEXES_SQL;
    await addCommit(repo, "Feature: admin indexes", files, "v1.2.3");
  }
  return repos;
}
