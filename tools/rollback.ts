/**
 * `npm run rollback -- --stack X [--to N] [--restore-db] [--yes]`
 *
 * Redeploys an earlier successful update: by default the newest one whose app refs differ from
 * the current config's and that no earlier rollback rolled back from (or exactly update N), so
 * a second rollback in a row goes further back. Only the `apps` config key is replaced by that
 * update's; secrets and the rest of the config stay. The update runs with the message `rollback to update N`
 * (how `history` marks it). A release still kept on the server is switched to, not rebuilt.
 *
 * --restore-db: after the code is back, restores the database backup recorded by the update
 * being undone (the `backup` stack output), taking a safety backup first. Without it the
 * database is left alone, and the tool says when its schema may be ahead of the code.
 */
import { Stack } from "@pulumi/pulumi/automation";
import {
  DeployRow,
  formatDuration,
  formatTable,
  lastSuccessful,
  pickRollbackTarget,
  refsOf,
  refsText,
  RollbackRefusal,
  rollbackMessage,
  rowRefs,
  sameRefs,
} from "../lib/history";
import { ConfigError, parseDeployConfig, ServerConfig } from "../lib/config";
import { layout } from "../lib/scripts";
import { STEP } from "../lib/steps";
import { backupPresentScript, restoreScript } from "../lib/restore";
import { quote } from "../lib/shell";
import {
  confirm,
  loadHistory,
  notifyIfConfigured,
  openStack,
  parseToolArgs,
  plainConfig,
  REPO_ROOT,
  requireStackName,
  runMain,
  secretConfig,
  serverTarget,
  sshRun,
  Target,
  ToolError,
  updateNumber,
} from "./common";
import { engineCall, explainEngineError, StackFileChange, stackFileName, UpdateWatch } from "./stackFile";

const USAGE = "npm run rollback -- --stack <name> [--to <update>] [--restore-db] [--yes]";
const log = (line: string) => process.stdout.write(`${line}\n`);
const seconds = (ms: number) => (ms / 1000).toFixed(1);

type OutputApps = Record<string, { ref?: string; sha?: string; version?: string }>;

/** `orchestrator 1.2.3 (v1.2.3, 0123456789ab), sevastopol …` from outputs, falling back to refs. */
function describe(refs: Record<string, string>, apps: OutputApps | undefined): string {
  return Object.keys(refs)
    .sort()
    .map((n) => {
      const o = apps?.[n];
      const known = o && o.ref === refs[n];
      const version = known && o.version ? `${o.version} ` : "";
      return `${n} ${version}(${refs[n]}${known && o.sha ? `, ${o.sha.slice(0, 12)}` : ""})`;
    })
    .join(", ");
}

/** Apps whose migrations the undone update may have run: they migrate and their ref goes back. */
function migratedApps(current: Record<string, unknown>, currentRefs: Record<string, string>, target: DeployRow): string[] {
  return Object.keys(currentRefs)
    .filter((n) => typeof (current[n] as { migrate?: unknown } | undefined)?.migrate === "string")
    .filter((n) => target.apps[n]?.ref !== currentRefs[n])
    .sort();
}

/** Per release step of the stack (found by its kind, lib/steps.ts): `release <app>@<sha> built` or `… already built: kept`. */
async function releaseLines(stack: Stack): Promise<string[]> {
  type Outputs = { step?: unknown; app?: unknown; triggers?: unknown[]; result?: { built?: unknown } };
  try {
    const state = await stack.exportStack();
    const resources = (state.deployment as { resources?: { outputs?: Outputs }[] }).resources ?? [];
    return resources
      .map((r) => r.outputs)
      .filter((o): o is Outputs => o?.step === STEP.release && typeof o.result?.built === "string")
      .map(
        (o) =>
          `release ${String(o.app)}@${String(o.triggers?.[0] ?? "").slice(0, 12)} ${o.result!.built === "kept" ? "already built: kept" : "built"}`,
      );
  } catch {
    return [];
  }
}

/** The backup the undone update recorded: its `backup` output, else the journal's last backup. */
async function backupOfUndone(outputs: Record<string, unknown>, target: Target, root: string): Promise<string | undefined> {
  const fromOutputs = (outputs.backup as { path?: unknown } | undefined)?.path;
  if (typeof fromOutputs === "string" && fromOutputs) return fromOutputs;
  const journal = layout(root).journal;
  const r = await sshRun(target, `tail -n 1 ${quote(journal)} 2>/dev/null || true`);
  try {
    const last = JSON.parse(r.stdout.trim()) as { backup?: unknown };
    return typeof last.backup === "string" && last.backup ? last.backup : undefined;
  } catch {
    return undefined;
  }
}

runMain("rollback", async () => {
  const started = Date.now();
  const args = parseToolArgs(
    process.argv.slice(2),
    { stack: { type: "string" }, to: { type: "string" }, "restore-db": { type: "boolean" }, yes: { type: "boolean", short: "y" } },
    USAGE,
  );
  const name = requireStackName(args.stack, USAGE);
  const to = updateNumber("--to", args.to);
  const restoreDb = args["restore-db"] === true;

  const stack = await openStack(name);
  const [{ rows, outputs }, config] = await Promise.all([
    engineCall(`read the history of stack ${name}`, () => loadHistory(stack)),
    engineCall(`read the config of stack ${name}`, () => plainConfig(stack)),
  ]);
  log(`stack ${name}: history`);
  process.stdout.write(formatTable(rows));

  const currentApps = (config.apps ?? {}) as Record<string, unknown>;
  const currentRefs = refsOf(currentApps);
  if (Object.keys(currentRefs).length === 0) throw new ToolError("refused: the stack config names no apps (config key apps)");
  let target: DeployRow;
  try {
    target = pickRollbackTarget(rows, currentRefs, to);
  } catch (err) {
    if (err instanceof RollbackRefusal) throw new ToolError(`refused: ${err.message}`);
    throw err;
  }
  // Deploys newer than the target that a rollback already rolled back from: passed over, not redeployed.
  const passedOver = rows.filter(
    (r) => r.version > target.version && r.rolledBackBy !== undefined && r.result === "succeeded" && !sameRefs(rowRefs(r), currentRefs),
  );
  const undone = lastSuccessful(rows);
  const beforeApps = outputs.apps as OutputApps | undefined;
  const before = `update ${undone?.version ?? "-"}: ${describe(currentRefs, beforeApps)}`;
  log(`\nrolling back stack ${name}`);
  log(`  from  ${before}`);
  log(`  to    update ${target.version}: ${refsText(Object.fromEntries(Object.entries(target.apps).map(([n, a]) => [n, a.ref])))}`);
  if (to === undefined && passedOver.length > 0)
    log(
      `  (passing over ${passedOver.map((r) => `update ${r.version} ${refsText(rowRefs(r))}, rolled back by update ${r.rolledBackBy}`).join("; ")})`,
    );

  const migrated = migratedApps(currentApps, currentRefs, target);
  let restore: { target: Target; server: ServerConfig; backup: string; databaseUrl: string } | undefined;
  if (restoreDb) {
    const databaseUrl = await secretConfig(stack, "databaseUrl");
    if (!databaseUrl) throw new ToolError("refused: --restore-db needs the databaseUrl secret in the stack config");
    const { target: server, root } = await serverTarget(stack, config);
    const backup = await backupOfUndone(outputs, server, root);
    if (!backup)
      throw new ToolError(
        `refused: update ${undone?.version ?? "-"} recorded no database backup (no backup output, none in the journal); nothing was changed`,
      );
    const present = await sshRun(server, backupPresentScript(backup));
    if (present.code !== 0)
      throw new ToolError(`cannot check the backup on the server: ${present.stderr.trim() || `exit ${present.code}`}`, 1);
    if (!present.stdout.startsWith("present")) {
      throw new ToolError(
        `refused: the backup recorded by update ${undone?.version ?? "-"} is gone from the server (${backup}); nothing was changed`,
      );
    }
    restore = { target: server, server: serverOf(name, config), backup, databaseUrl };
    log(`  database: will restore ${backup} (${present.stdout.trim().split(" ")[1]} bytes) after a safety backup`);
  } else {
    log("  database: left as it is (no --restore-db)");
  }

  if (!args.yes) {
    if (!process.stdin.isTTY || !process.stdout.isTTY) {
      throw new ToolError(`refused: no terminal to confirm on; pass --yes to roll back${restoreDb ? " and restore the database" : ""}`);
    }
    const ok = await confirm(restoreDb ? "Roll back the code AND overwrite the database with that backup?" : "Roll back?");
    if (!ok) throw new ToolError("aborted: nothing was changed", 1);
  }

  // Only the apps key changes: secrets and the rest of the config stay as they are. The stack file
  // as it was is kept, to put it back when the update does not start, or to print the change.
  const stackFile = await StackFileChange.capture(stack, REPO_ROOT, name);
  await stackFile.setApps(JSON.stringify(target.appsConfig));
  const message = rollbackMessage(target.version);
  log(`\n$ pulumi up --message "${message}"`);
  const upStart = Date.now();
  let newVersion: number | undefined;
  let afterApps: OutputApps | undefined;
  const watch = new UpdateWatch();
  try {
    const result = await stack.up({ message, onOutput: (out) => process.stdout.write(out), onEvent: watch.onEvent });
    // A file backend records no update numbers (0): this update is the next one in the history.
    newVersion = result.summary.version > 0 ? result.summary.version : rows.length + 1;
    afterApps = result.outputs.apps?.value as OutputApps | undefined;
  } catch (err) {
    const took = (Date.now() - upStart) / 1000;
    const why = explainEngineError(err);
    await notifyIfConfigured(
      stack,
      {
        kind: "failure",
        stack: name,
        versions: Object.fromEntries(Object.entries(target.apps).map(([n, a]) => [n, a.ref])),
        previous: currentRefs,
        durationSeconds: took,
        error: `rollback to update ${target.version} failed: ${why.reason}`,
      },
      log,
    );
    const said = why.lines.length > 0 ? `\n  the engine said:\n    ${why.lines.join("\n    ")}` : "";
    const file = stackFileName(name);
    if (watch.changes.length === 0) {
      // Facts: no resource operation other than `same` began, so neither the state nor a server changed.
      const back = await stackFile.restore();
      throw new ToolError(
        `the rollback update did not start changing anything: ${why.reason}; nothing was changed.${said}\n` +
          `  ${watch.describe()}; ${back} (apps: ${refsText(currentRefs)}).\n` +
          (why.locked
            ? `  Run the rollback again when that update has ended (if no update runs any more, \`pulumi cancel --stack ${name}\` removes its lock).`
            : `  The servers keep serving what they served; the database was not touched.`),
        1,
      );
    }
    const change = stackFile.diff();
    throw new ToolError(
      `the rollback update failed after ${took.toFixed(1)} s: ${why.reason}${said}\n` +
        `  ${watch.describe()}: the servers may be half way. ${file} is kept as the rollback wrote it: its apps key now names ` +
        `update ${target.version}'s apps (${refsText(Object.fromEntries(Object.entries(target.apps).map(([n, a]) => [n, a.ref])))}), ` +
        `so \`pulumi up --stack ${name}\` (or this rollback again) finishes going back to them. ` +
        `The servers keep serving what last passed its health checks. The database was not touched.` +
        (change ? `\n  The change the rollback made to ${file} (commit it once the rollback has gone through):\n${change.trimEnd()}` : ""),
      1,
    );
  }
  const upSeconds = (Date.now() - upStart) / 1000;
  for (const line of await releaseLines(stack)) log(line.endsWith("kept") ? `${line} (switched without a rebuild)` : line);

  let restoreSeconds: number | undefined;
  if (restore) {
    log(`\nrestoring the database from ${restore.backup}`);
    const t = Date.now();
    const r = await sshRun(
      restore.target,
      restoreScript(restore.server, restore.backup, `${name}-before-restore`),
      `${restore.databaseUrl}\n`,
    );
    restoreSeconds = (Date.now() - t) / 1000;
    if (r.code !== 0) {
      throw new ToolError(
        `database restore failed after ${restoreSeconds.toFixed(1)} s (the code rollback to update ${target.version} stands):\n${r.stderr.trim()}`,
        1,
      );
    }
    const info = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as { safety?: string };
    log(`safety backup of the database as it was: ${info.safety}`);
    log(`database restored from ${restore.backup}`);
  } else if (migrated.length > 0) {
    log(
      `\nnote: the database schema may be ahead of the code: update ${undone?.version ?? "-"} deployed ${migrated.map((n) => `${n}@${currentRefs[n]}`).join(", ")}, ` +
        `which has a migrate command, and its migrations stay applied.` +
        ((outputs.backup as { path?: string } | undefined)?.path
          ? ` The backup taken before them: ${(outputs.backup as { path: string }).path}`
          : ""),
    );
  }

  const totalSeconds = (Date.now() - started) / 1000;
  const targetRefs = Object.fromEntries(Object.entries(target.apps).map(([n, a]) => [n, a.ref]));
  log("\nrollback done");
  log(`  before: ${before}`);
  log(`  after:  update ${newVersion ?? "-"}: ${describe(targetRefs, afterApps)}`);
  const otherSeconds = totalSeconds - upSeconds - (restoreSeconds ?? 0);
  log(
    `  rollback time: ${seconds(totalSeconds * 1000)} s (pulumi up ${upSeconds.toFixed(1)} s${restoreSeconds !== undefined ? `, database restore ${restoreSeconds.toFixed(1)} s` : ""}` +
      `, history/config/checks ${otherSeconds.toFixed(1)} s) = ${formatDuration(totalSeconds)}`,
  );
  // The repository must agree with what serves: the next deploy from main would bring the undone version back.
  const change = stackFile.diff();
  const file = stackFileName(name);
  if (change) {
    log(
      `\nthe rollback rewrote ${file} (its apps key). Commit this change (\`git commit -m "${message}" -- ${file}\`), ` +
        `or revert the commit that brought the undone version, so the next deploy from the main branch does not bring it back:`,
    );
    process.stdout.write(change);
  } else {
    log(`\n${file} is as it was before the rollback: nothing to commit`);
  }
  await notifyIfConfigured(
    stack,
    {
      kind: "rollback",
      stack: name,
      versions: targetRefs,
      previous: currentRefs,
      durationSeconds: totalSeconds,
      update: newVersion,
      rollbackTo: target.version,
    },
    log,
  );
});

/** The validated server config (PATH and env for the pg tools), as the deploy itself reads it. */
function serverOf(name: string, config: Record<string, unknown>): ServerConfig {
  try {
    return parseDeployConfig(name, config, { sshPrivateKey: true, databaseUrl: true }).server;
  } catch (err) {
    if (err instanceof ConfigError) throw new ToolError(`the stack config is not valid: ${err.message}`);
    throw err;
  }
}
