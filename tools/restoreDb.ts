/**
 * The database part of `rollback --restore-db [--backup PATH]`: which backup (the server's journal
 * says which update took it and which migrations ran after it), what restoring it discards (said
 * before asking), the restore itself, and the schema check afterwards.
 */
import { Stack } from "@pulumi/pulumi/automation";
import { ConfigError, DeployConfig, parseDeployConfig } from "../lib/config";
import { DeployRow } from "../lib/history";
import {
  backupEventFor,
  BackupEvent,
  DatabaseSurvey,
  describeDiscard,
  parseJournal,
  pickRestoreBackup,
  RestoreChoice,
  RestoreRefusal,
  restoreScript,
  updateAt,
  restoreSurveyScript,
  schemaCheckScript,
} from "../lib/restore";
import { layout } from "../lib/scripts";
import { quote } from "../lib/shell";
import { secretConfig, serverTarget, sshRun, Target, ToolError } from "./common";

export interface PreparedRestore {
  cfg: DeployConfig;
  target: Target;
  databaseUrl: string;
  path: string;
  sha256: string;
  /** What the tool prints before asking: the backup, where it comes from, what it discards. */
  lines: string[];
}

/** The validated config (server PATH and env for the pg tools; apps' migrateCheck), as the deploy reads it. */
function deployConfigOf(name: string, config: Record<string, unknown>): DeployConfig {
  try {
    return parseDeployConfig(name, config, { sshPrivateKey: true, databaseUrl: true });
  } catch (err) {
    if (err instanceof ConfigError) throw new ToolError(`the stack config is not valid: ${err.message}`);
    throw err;
  }
}

/**
 * Picks the backup, checks it on the server (present, sha256 as recorded) and surveys what a
 * restore would discard. Refuses (ToolError, nothing changed) when any of it fails.
 */
export async function prepareRestore(
  stack: Stack,
  name: string,
  config: Record<string, unknown>,
  rows: DeployRow[],
  targetRow: DeployRow,
  backupArg: string | undefined,
): Promise<PreparedRestore> {
  const databaseUrl = await secretConfig(stack, "databaseUrl");
  if (!databaseUrl) throw new ToolError("refused: --restore-db needs the databaseUrl secret in the stack config; nothing was changed");
  // The config as it will be once the rollback is deployed: its apps are the ones the check runs in.
  const cfg = deployConfigOf(name, { ...config, apps: targetRow.appsConfig ?? config.apps });
  const target = await serverTarget(stack, config);
  const read = await sshRun(target, `cat ${quote(layout(cfg.server.root).journal)} 2>/dev/null || true`);
  const journal = parseJournal(read.stdout);
  const targetRefs = Object.fromEntries(Object.entries(targetRow.apps).map(([n, a]) => [n, a.ref]));

  let event: BackupEvent | undefined;
  let choice: RestoreChoice | undefined;
  let path: string;
  if (backupArg !== undefined) {
    if (!backupArg.startsWith("/")) throw new ToolError(`--backup must be the backup's absolute path on the server, got '${backupArg}'`);
    path = backupArg;
    event = backupEventFor(journal, path);
  } else {
    try {
      choice = pickRestoreBackup(journal, targetRefs, `update ${targetRow.version}`);
    } catch (err) {
      if (err instanceof RestoreRefusal) throw new ToolError(`refused: ${err.message}; nothing was changed`);
      throw err;
    }
    event = choice.backup;
    path = event.path;
  }

  const surveyed = await sshRun(target, restoreSurveyScript(cfg, path), `${databaseUrl}\n`);
  if (surveyed.code !== 0)
    throw new ToolError(`cannot check the backup ${path} on the server: ${surveyed.stderr.trim() || `exit ${surveyed.code}`}`, 1);
  const survey = JSON.parse(surveyed.stdout.trim().split("\n").pop() ?? "{}") as DatabaseSurvey & { missing?: boolean };
  if (survey.missing) throw new ToolError(`refused: the backup ${path} is gone from the server (or empty); nothing was changed`);
  const sha256 = event?.sha256 || survey.recorded;
  if (!sha256) {
    throw new ToolError(
      `refused: ${path} has no recorded sha256 (not in the journal, no ${path}.sha256 beside it), so it cannot be checked; nothing was changed`,
    );
  }
  if (survey.sha256 !== sha256) {
    throw new ToolError(
      `refused: ${path} has sha256 ${survey.sha256}, not the recorded ${sha256}: it changed since it was taken; nothing was changed`,
    );
  }

  const lines = [`database: will restore ${path} (${survey.size} bytes, sha256 ${sha256.slice(0, 16)}… as recorded)`];
  if (event) {
    const at = updateAt(rows, event.time);
    const by = at !== undefined ? `update ${at}` : undefined;
    const fromTo = Object.keys(event.to ?? {})
      .sort()
      .map((a) => `${a} ${(event!.from?.[a] || "(none)").slice(0, 12)} → ${(event!.to?.[a] ?? "").slice(0, 12)}`)
      .join(", ");
    lines.push(`  taken ${event.time}${by ? ` by ${by}` : ""} (lease ${event.lease}) before migrating ${fromTo || "(no app recorded)"}`);
  } else {
    lines.push("  not recorded in the server's journal (an older or a copied backup): its sha256 file vouches for it");
  }
  if (choice) {
    lines.push(
      `  it undoes the migrations run since update ${targetRow.version} was deployed: ` +
        choice.migrations.map((m) => `${m.app}@${m.sha.slice(0, 12)} (${m.status}, ${m.time})`).join(", "),
    );
  }
  for (const l of describeDiscard(event?.time, event?.stats, survey, new Date())) lines.push(`  ${l}`);
  lines.push("  a safety backup of the database as it is now is taken first");
  return { cfg, target, databaseUrl, path, sha256, lines };
}

/** The restore, under the server's deploy lock; returns the safety backup's path. */
export async function runRestore(p: PreparedRestore, label: string): Promise<string> {
  const r = await sshRun(p.target, restoreScript(p.cfg, p.path, p.sha256, label), `${p.databaseUrl}\n`);
  if (r.code !== 0)
    throw new ToolError(`database restore failed; the database is as it was (the restore is one transaction):\n${r.stderr.trim()}`, 1);
  const info = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as { safety?: string };
  return info.safety ?? "";
}

/**
 * Per app with a migrate command: does the restored schema match the code that serves? Runs its
 * `migrateCheck` in the serving release. Returns the lines to print and whether all matched.
 */
export async function checkSchema(p: PreparedRestore): Promise<{ lines: string[]; ok: boolean }> {
  const lines: string[] = [];
  let ok = true;
  for (const app of p.cfg.apps.filter((a) => a.migrate)) {
    if (!app.migrateCheck) {
      lines.push(`schema check: ${app.name}: not checked (no apps.${app.name}.migrateCheck configured)`);
      continue;
    }
    const r = await sshRun(p.target, schemaCheckScript(p.cfg, app));
    const said = `${r.stdout}${r.stderr}`.trim().split("\n").slice(-3).join(" / ");
    if (r.code === 0) lines.push(`schema check: ${app.name}: the database's migrations match the serving code (${said})`);
    else {
      ok = false;
      lines.push(`schema check: ${app.name}: the database's migrations do NOT match the serving code: ${said}`);
    }
  }
  return { lines, ok };
}
