/**
 * `npm run notify -- --stack X --failure [--message "…"]`: tells the stack's webhook
 * (`notifyWebhookUrl`) that a deploy failed. For CI, after a failed `pulumi up`: a failure
 * cannot be posted from inside the deploy graph, since no step runs after the failing one.
 */
import "../lib/compileCache"; // first: every module after it loads from the compile cache
import {
  loadHistory,
  notifyIfConfigured,
  openStack,
  parseToolArgs,
  plainConfig,
  requireStackName,
  runMain,
  secretConfig,
  ToolError,
} from "./common";
import { refsOf } from "../lib/history";

const USAGE = 'npm run notify -- --stack <name> --failure [--message "<what failed>"]';

runMain("notify", async () => {
  const args = parseToolArgs(
    process.argv.slice(2),
    { stack: { type: "string" }, failure: { type: "boolean" }, message: { type: "string" } },
    USAGE,
  );
  if (!args.failure) throw new ToolError(`--failure is required (the deploy itself posts its start and success)\nusage: ${USAGE}`, 2);
  const name = requireStackName(args.stack, USAGE);
  const stack = await openStack(name);
  const { rows } = await loadHistory(stack);
  const last = rows[rows.length - 1];
  const versions = refsOf((await plainConfig(stack)).apps);
  const sent = await notifyIfConfigured(
    await secretConfig(stack, "notifyWebhookUrl"),
    {
      kind: "failure",
      stack: name,
      versions,
      update: last?.version,
      durationSeconds: last?.durationSeconds,
      error: args.message ?? `pulumi up ${last?.result ?? "failed"}`,
    },
    (line) => process.stdout.write(line + "\n"),
  );
  if (!sent) process.stdout.write("no notification sent (no notifyWebhookUrl in the stack config, or the webhook failed)\n");
});
