/**
 * Imported by the rollback tool right after the compile cache, before the Pulumi SDK: the CLI's
 * read of the stack's config, secrets included (the SSH key its switch at once needs), starts
 * while the SDK loads (0.25 s here) instead of after it, as LocalWorkspace.getAllConfig runs it.
 * A read that failed is not used: the tool reads again through the SDK and reports that error.
 */
import { execFile } from "child_process";
import * as path from "path";

/** The value of `--stack X` or `--stack=X` in the tool's arguments, as parseToolArgs reads them. */
export function stackArgument(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--") return undefined;
    if (argv[i] === "--stack") return argv[i + 1];
    if (argv[i].startsWith("--stack=")) return argv[i].slice("--stack=".length);
  }
  return undefined;
}

const early = stackArgument(process.argv.slice(2));
const read: Promise<string | undefined> | undefined =
  early === undefined
    ? undefined
    : new Promise((resolve) =>
        execFile(
          "pulumi",
          ["config", "--show-secrets", "--json", "--stack", early, "--non-interactive"],
          { cwd: path.resolve(__dirname, ".."), env: { ...process.env, PULUMI_AUTOMATION_API: "true" }, maxBuffer: 64 << 20 },
          (err, stdout) => resolve(err ? undefined : stdout),
        ),
      );

/** The config map the early read got for `stack` (as getAllConfig returns it), if it read that stack and succeeded. */
export async function prefetchedConfig(stack: string): Promise<Record<string, { value: string; secret: boolean }> | undefined> {
  if (early !== stack || !read) return undefined;
  const stdout = await read;
  try {
    return stdout === undefined ? undefined : JSON.parse(stdout);
  } catch {
    return undefined;
  }
}
