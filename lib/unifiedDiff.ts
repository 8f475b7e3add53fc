/**
 * A unified diff of two texts (the format `git diff` prints and `git apply` / `patch -p1` read):
 * what the rollback tool prints so the operator can commit the exact change it made to the stack
 * file. Line based, a longest-common-subsequence edit script (stack files are small), 3 lines of
 * context, `\ No newline at end of file` where a side ends without one. Pure: no I/O.
 */

type Op = { kind: " " | "-" | "+"; line: string };

/** Lines of a text, each with its own "\n" (the last one without, when the text ends without). */
function lines(text: string): string[] {
  const out = text.split(/(?<=\n)/);
  return out.length === 1 && out[0] === "" ? [] : out;
}

/** The edit script turning `a` into `b`: common prefix and suffix kept, LCS in between. */
function editScript(a: string[], b: string[]): Op[] {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  const n = midA.length;
  const m = midB.length;
  // lcs[i][j]: length of the LCS of midA[i..] and midB[j..].
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--) lcs[i][j] = midA[i] === midB[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const ops: Op[] = a.slice(0, start).map((line) => ({ kind: " ", line }));
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && midA[i] === midB[j]) {
      ops.push({ kind: " ", line: midA[i] });
      i++;
      j++;
    } else if (j < m && (i === n || lcs[i][j + 1] > lcs[i + 1][j])) {
      ops.push({ kind: "+", line: midB[j++] });
    } else {
      ops.push({ kind: "-", line: midA[i++] });
    }
  }
  // Within a changed block: removals first, then additions (as git prints them).
  const tail = a.slice(endA).map((line): Op => ({ kind: " ", line }));
  return [...sortBlocks(ops), ...tail];
}

/** Puts every run of changes as its removals followed by its additions. */
function sortBlocks(ops: Op[]): Op[] {
  const out: Op[] = [];
  let run: Op[] = [];
  const flush = () => {
    out.push(...run.filter((o) => o.kind === "-"), ...run.filter((o) => o.kind === "+"));
    run = [];
  };
  for (const op of ops) {
    if (op.kind === " ") {
      flush();
      out.push(op);
    } else run.push(op);
  }
  flush();
  return out;
}

function printLine(kind: string, line: string): string {
  return line.endsWith("\n") ? `${kind}${line}` : `${kind}${line}\n\\ No newline at end of file\n`;
}

/**
 * The unified diff turning `before` into `after`, headed `--- a/<file>` / `+++ b/<file>` (`file`
 * relative to the repository root, so `git apply` takes it there); "" when the texts are equal.
 */
export function unifiedDiff(before: string, after: string, file: string, context = 3): string {
  if (before === after) return "";
  const ops = editScript(lines(before), lines(after));
  // Positions (0-based) of each op in the old and the new text.
  const pos: { a: number; b: number }[] = [];
  let a = 0;
  let b = 0;
  for (const op of ops) {
    pos.push({ a, b });
    if (op.kind !== "+") a++;
    if (op.kind !== "-") b++;
  }
  const changed = ops.map((op, k) => (op.kind !== " " ? k : -1)).filter((k) => k >= 0);
  // Group changes whose context would touch or overlap into one hunk.
  const hunks: [number, number][] = [];
  for (const k of changed) {
    const last = hunks[hunks.length - 1];
    if (last && k - last[1] <= 2 * context + 1) last[1] = k;
    else hunks.push([k, k]);
  }
  let out = `--- a/${file}\n+++ b/${file}\n`;
  for (const [first, lastChange] of hunks) {
    const from = Math.max(0, first - context);
    const to = Math.min(ops.length - 1, lastChange + context);
    const slice = ops.slice(from, to + 1);
    const oldCount = slice.filter((o) => o.kind !== "+").length;
    const newCount = slice.filter((o) => o.kind !== "-").length;
    const oldStart = oldCount === 0 ? pos[from].a : pos[from].a + 1;
    const newStart = newCount === 0 ? pos[from].b : pos[from].b + 1;
    out += `@@ -${oldStart},${oldCount} +${newStart},${newCount} @@\n`;
    for (const op of slice) out += printLine(op.kind, op.line);
  }
  return out;
}
