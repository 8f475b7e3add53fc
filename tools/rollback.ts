/**
 * `npm run rollback -- --stack X [--to N] [--restore-db] [--yes]`
 *
 * Redeploys an earlier successful update: by default the newest one whose app refs differ from
 * the current config's and that no earlier rollback rolled back from (or exactly update N), so
 * a second rollback in a row goes further back. Only the `apps` config key is replaced by that
 * update's; secrets and the rest of the config stay. The update runs with the message `rollback to update N`
 * (how `history` marks it). A release still kept on the server is switched to, not rebuilt.
 *
 * --restore-db: after the code is back, restores the backup taken just before the first migration
 * that ran since the target was deployed (the server's journal records which update took each
 * backup and which migrations ran after it), or exactly `--backup PATH`, checked against its
 * sha256. Before asking it says what the restore discards; afterwards it checks the schema's
 * migrations against the serving code (tools/restoreDb.ts). Without it the database is left alone,
 * and the tool says when its schema may be ahead of the code.
 */
import "../lib/compileCache"; // first: every module after it loads from the compile cache
import { prefetchedConfig } from "./prefetchConfig"; // second: the config's read starts before the SDK loads
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
import { STEP } from "../lib/steps";
import {
  configAndSecrets,
  confirm,
  loadHistory,
  notifyIfConfigured,
  openStackAtOnce,
  parseToolArgs,
  REPO_ROOT,
  requireStackName,
  runMain,
  sshRun,
  targetOf,
  ToolError,
  updateNumber,
} from "./common";
import { engineCall, explainEngineError, StackFileChange, stackFileName, UpdateWatch, upOnly } from "./stackFile";
import { checkSchema, prepareRestore, PreparedRestore, runRestore } from "./restoreDb";
import { fileBackendLocks, switchAtOnce } from "./rollbackSwitch";

const USAGE = "npm run rollback -- --stack <name> [--to <update>] [--restore-db [--backup <path on the server>]] [--yes]";
const log = (line: string) => process.stdout.write(`${line}\n`);
const seconds = (ms: number) => (ms / 1000).toFixed(1);

type OutputApps = Record<string, { ref?: string; sha?: string; version?: string; slot?: string }>;

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

/**
 * Per release step of the stack (found by its kind, lib/steps.ts): `release <app>@<sha> built` or
 * `… already built: kept`; per slot start that found its release running: its own line (`… kept, not restarted`).
 */
function releaseLines(resources: StateResource[]): string[] {
  type Outputs = { step?: unknown; app?: unknown; triggers?: unknown[]; stdout?: unknown; result?: { built?: unknown } };
  const outputs = resources.map((r) => r.outputs as Outputs | undefined);
  const releases = outputs
    .filter((o): o is Outputs => o?.step === STEP.release && typeof o.result?.built === "string")
    .map(
      (o) =>
        `release ${String(o.app)}@${String(o.triggers?.[0] ?? "").slice(0, 12)} ${o.result!.built === "kept" ? "already built: kept" : "built"}`,
    );
  const slots = outputs
    .filter((o): o is Outputs => o?.step === STEP.slotStart && typeof o.stdout === "string")
    .flatMap((o) => (o.stdout as string).split("\n").filter((l) => l.endsWith("kept, not restarted")));
  return [...releases, ...slots];
}

type StateResource = { type?: string; outputs?: Record<string, unknown> };

/**
 * After the rollback's update, in one go: the state (its release lines, and the stack's `apps`
 * output) and the update's number (its newest history entry; a file backend numbers none). A
 * read that fails leaves its part out: the update itself went through.
 */
async function readAfterUpdate(stack: Stack): Promise<{ resources: StateResource[]; version?: number }> {
  const [state, newest] = await Promise.all([stack.exportStack().catch(() => undefined), stack.history(1, 1, false).catch(() => [])]);
  const resources = ((state?.deployment as { resources?: StateResource[] } | undefined)?.resources ?? []).filter(Boolean);
  const version = newest[0]?.version;
  return { resources, ...(typeof version === "number" && version > 0 ? { version } : {}) };
}

runMain("rollback", async () => {
  // From the process's start: node and ts-node loading the tool count as the rollback's time too.
  const started = Date.now() - Math.round(process.uptime() * 1000);
  const loaded = Date.now();
  const args = parseToolArgs(
    process.argv.slice(2),
    {
      stack: { type: "string" },
      to: { type: "string" },
      "restore-db": { type: "boolean" },
      backup: { type: "string" },
      yes: { type: "boolean", short: "y" },
    },
    USAGE,
  );
  const name = requireStackName(args.stack, USAGE);
  const to = updateNumber("--to", args.to);
  const restoreDb = args["restore-db"] === true;
  if (args.backup !== undefined && !restoreDb)
    throw new ToolError(`--backup names the backup --restore-db restores: add --restore-db\nusage: ${USAGE}`);

  const { stack, selected } = await openStackAtOnce(name);
  // The config with the SSH key (one call) beside the history and the select: the switch at once needs them first thing.
  const readStart = Date.now();
  const configRead = engineCall(`read the config of stack ${name}`, async () => configAndSecrets(stack, await prefetchedConfig(name)));
  // The server's SSH connection opens while the history is read (a read-only `true`): the
  // switch's probe and switch then run on it (components/ssh.ts pools it). Its failure is the probe's to report.
  configRead.then((c) => sshRun(targetOf(c.config, c.secrets.sshPrivateKey), "true", "", 20_000)).catch(() => undefined);
  const reads = Promise.all([
    engineCall(`read the history of stack ${name}`, () => loadHistory(stack)),
    configRead,
    fileBackendLocks(stack, name).catch(() => [] as string[]),
  ]);
  reads.catch(() => undefined); // a missing stack fails the reads too: the select's error is the one to report
  await selected;
  const [{ rows, outputs }, { config, secrets }, stackLocks] = await reads;
  const sshKey = secrets.sshPrivateKey;
  const readSeconds = (Date.now() - readStart) / 1000;
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
  // What serves is what the last successful update deployed (its outputs), not what the config
  // names: after a failed update the config names refs that never went live.
  const servingRefs = Object.fromEntries(Object.keys(currentRefs).map((n) => [n, beforeApps?.[n]?.ref ?? currentRefs[n]]));
  const before = `update ${undone?.version ?? "-"}: ${describe(servingRefs, beforeApps)}`;
  log(`\nrolling back stack ${name}`);
  log(`  from  ${before}`);
  if (!sameRefs(servingRefs, currentRefs))
    log(`  (the stack config names ${refsText(currentRefs)}, which did not go live: the update that tried it failed)`);
  log(`  to    update ${target.version}: ${refsText(Object.fromEntries(Object.entries(target.apps).map(([n, a]) => [n, a.ref])))}`);
  if (to === undefined && passedOver.length > 0)
    log(
      `  (passing over ${passedOver.map((r) => `update ${r.version} ${refsText(rowRefs(r))}, rolled back by update ${r.rolledBackBy}`).join("; ")})`,
    );

  const migrated = migratedApps(currentApps, currentRefs, target);
  let restore: PreparedRestore | undefined;
  if (restoreDb) {
    restore = await prepareRestore(stack, name, config, rows, target, args.backup);
    for (const line of restore.lines) log(`  ${line}`);
  } else {
    log("  database: left as it is (no --restore-db)");
  }

  if (!args.yes) {
    if (!process.stdin.isTTY || !process.stdout.isTTY) {
      throw new ToolError(`refused: no terminal to confirm on; pass --yes to roll back${restoreDb ? " and restore the database" : ""}`);
    }
    const ok = await confirm(
      restoreDb ? "Roll back the code AND replace the database with that backup, discarding what is said above?" : "Roll back?",
    );
    if (!ok) throw new ToolError("aborted: nothing was changed", 1);
  }

  // The stack file as it is, read while the switch runs (below, before its rewrite).
  const capturing = StackFileChange.capture(stack, REPO_ROOT, name);
  // The fast path: traffic to the releases still running, at once; the update below records it.
  const fast =
    stackLocks.length > 0
      ? ({ switched: false, why: `another update holds the stack lock (${stackLocks.join(", ")})` } as const)
      : config.hosts
        ? ({
            switched: false,
            why: `a fleet (hosts) goes back through its rolling switch, host by host through the load balancer`,
          } as const)
        : await switchAtOnce(
            targetOf(config, sshKey),
            name,
            config,
            target,
            Object.fromEntries(Object.entries(beforeApps ?? {}).map(([n, a]) => [n, a.slot])),
          );
  const switchedAt = (Date.now() - started) / 1000;
  if (fast.switched) {
    const p = fast.phases;
    log(`\nswitched at once, ${switchedAt.toFixed(1)} s after the command started: serving ${fast.serving} (read from the server)`);
    log(
      `  (tool loaded ${((loaded - started) / 1000).toFixed(1)} s, workspace ${((readStart - loaded) / 1000).toFixed(1)} s, stack selected and history, config and key read ${readSeconds.toFixed(1)} s, ` +
        `refs ${p.refs.toFixed(1)} s, ${p.probe > 0 ? `probe ${p.probe.toFixed(1)} s` : "no probe: the kept slot held it"}, switch ${p.switch.toFixed(1)} s)`,
    );
  } else log(`\nno switch at once (${fast.why}): the update starts what is needed`);

  // Only the apps key changes: secrets and the rest of the config stay as they are. The stack file
  // as it was is kept, to put it back when the update does not start, or to print the change.
  const stackFile = await capturing;
  await stackFile.setApps(target.appsConfig!);
  const message = rollbackMessage(target.version);
  log(`\n$ pulumi up --message "${message}"`);
  const upStart = Date.now();
  const watch = new UpdateWatch();
  try {
    await upOnly(stack, { message, onOutput: (out) => process.stdout.write(out), onEvent: watch.onEvent });
  } catch (err) {
    const took = (Date.now() - upStart) / 1000;
    const why = explainEngineError(err);
    await notifyIfConfigured(
      secrets.notifyWebhookUrl,
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
    if (watch.changes.length === 0 && !fast.switched) {
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
        (fast.switched
          ? `Traffic was switched at once before the update and stays there: serving ${fast.serving}. The database was not touched.`
          : `The servers keep serving what last passed its health checks. The database was not touched.`) +
        (change ? `\n  The change the rollback made to ${file} (commit it once the rollback has gone through):\n${change.trimEnd()}` : ""),
      1,
    );
  }
  const upSeconds = (Date.now() - upStart) / 1000;
  const after = await readAfterUpdate(stack);
  // A file backend records no update numbers: this update is the next one in the history.
  const newVersion = after.version ?? rows.length + 1;
  const afterApps = after.resources.find((r) => r.type === "pulumi:pulumi:Stack")?.outputs?.apps as OutputApps | undefined;
  for (const line of releaseLines(after.resources)) log(line.endsWith("built: kept") ? `${line} (switched without a rebuild)` : line);

  let restoreSeconds: number | undefined;
  if (restore) {
    log(`\nrestoring the database from ${restore.path}`);
    const t = Date.now();
    try {
      const safety = await runRestore(restore, `${name}-before-restore`);
      restoreSeconds = (Date.now() - t) / 1000;
      log(`safety backup of the database as it was: ${safety}`);
      log(`database restored from ${restore.path} in ${restoreSeconds.toFixed(1)} s`);
      const schema = await checkSchema(restore);
      for (const line of schema.lines) log(line);
      if (!schema.ok) {
        throw new ToolError(
          `the restored database does not match the code that serves (above). The code rollback to update ${target.version} stands; ` +
            `the database as it was before the restore is in ${safety}`,
          1,
        );
      }
    } catch (err) {
      // The code rollback went through: the stack file's change must still reach the repository.
      printStackFileChange(stackFile.diff(), stackFileName(name), message);
      throw err;
    }
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
  log(`  after:  update ${newVersion}: ${describe(targetRefs, afterApps)}`);
  const otherSeconds = totalSeconds - upSeconds - (restoreSeconds ?? 0);
  log(
    `  rollback time: ${seconds(totalSeconds * 1000)} s (pulumi up ${upSeconds.toFixed(1)} s${restoreSeconds !== undefined ? `, database restore ${restoreSeconds.toFixed(1)} s` : ""}` +
      `, history/config/checks ${otherSeconds.toFixed(1)} s) = ${formatDuration(totalSeconds)}`,
  );
  if (fast.switched) log(`  the old releases served ${switchedAt.toFixed(1)} s after the command started (switched at once)`);
  printStackFileChange(stackFile.diff(), stackFileName(name), message);
  await notifyIfConfigured(
    secrets.notifyWebhookUrl,
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

/** The repository must agree with what serves: the next deploy from main would bring the undone version back. */
function printStackFileChange(change: string | undefined, file: string, message: string): void {
  if (change) {
    log(
      `\nthe rollback rewrote ${file} (its apps key). Commit this change (\`git commit -m "${message}" -- ${file}\`), ` +
        `or revert the commit that brought the undone version, so the next deploy from the main branch does not bring it back:`,
    );
    process.stdout.write(change);
  } else {
    log(`\n${file} is as it was before the rollback: nothing to commit`);
  }
}
