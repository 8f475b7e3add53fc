/**
 * `npm run history -- --stack X [--json]`: every update of the stack (all pages), oldest first,
 * numbered stably (a file backend's by start time, oldest = 1): result, start, duration, per-app
 * refs (and SHAs where the outputs are known), rollbacks and the deploys they rolled back from marked.
 */
import "../lib/compileCache"; // first: every module after it loads from the compile cache
import { formatTable } from "../lib/history";
import { loadHistory, openStack, parseToolArgs, requireStackName, runMain, ToolError } from "./common";

const USAGE = "npm run history -- --stack <name> [--json]";

runMain("history", async () => {
  const args = parseToolArgs(process.argv.slice(2), { stack: { type: "string" }, json: { type: "boolean" } }, USAGE);
  const stack = await openStack(requireStackName(args.stack, USAGE));
  const { rows } = await loadHistory(stack);
  if (args.json) {
    process.stdout.write(
      JSON.stringify(
        rows.map(({ appsConfig: _omit, ...r }) => r),
        null,
        2,
      ) + "\n",
    );
    return;
  }
  if (rows.length === 0) throw new ToolError(`stack '${args.stack}' has no updates yet`, 1);
  process.stdout.write(`stack ${args.stack}: ${rows.length} update${rows.length === 1 ? "" : "s"}\n`);
  process.stdout.write(formatTable(rows));
});
