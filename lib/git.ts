import { execFileSync } from "child_process";

/**
 * Resolves a tag, branch or SHA of `repo` to a commit SHA with `git ls-remote`, at program time,
 * so `pulumi preview` already shows which commit each app would get.
 */
export function resolveRef(repo: string, ref: string): string {
  if (/^[0-9a-f]{40}$/.test(ref)) return ref;
  let out: string;
  try {
    out = execFileSync("git", ["ls-remote", "--", repo, ref, `${ref}^{}`], {
      encoding: "utf8",
      timeout: 60_000,
      env: { ...process.env, GIT_TERMINAL_PROMPT: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? (err as Error).message).trim();
    throw new Error(`cannot read ${repo}: ${stderr}`, { cause: err });
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
