/** Prints the lines of a preview a reviewer reads for `why` (plan summaries, drift), as the user sees them. */
export function showPreview(label: string, output: string): void {
  const lines = output.split("\n").filter((l) => /summary\s*:|drift\s*:|\[diff: /.test(l));
  console.log(`      preview (${label}):\n${lines.map((l) => `        ${l.trimEnd()}`).join("\n")}`);
}
