/**
 * Which backup a rollback restores, and what restoring it discards: pure functions of the server's
 * journal (deploys.jsonl: deploy lines, and `backup` / `migration` / `restore` events) and of a
 * survey of the database taken just before asking.
 */

/** A `backup` event: written by the backup step of the update (lease) that took it. */
export interface BackupEvent {
  event: "backup";
  time: string;
  lease: string;
  path: string;
  size: number;
  sha256: string;
  /** Per table: [inserted, updated, deleted, live rows], PostgreSQL's counters before the dump. */
  stats?: Record<string, number[]>;
  /** App → SHA serving when it was taken, and the SHA about to migrate. */
  from?: Record<string, string>;
  to?: Record<string, string>;
}

/** A `migration` event: an app's migrate command ran (status) after the backup it names. */
export interface MigrationEvent {
  event: "migration";
  time: string;
  lease: string;
  app: string;
  sha: string;
  backup: string;
  status: "succeeded" | "failed";
}

/** A deploy line (no `event`): one successful deploy. */
export interface DeployLine {
  apps: Record<string, { ref?: string; sha?: string; version?: string }>;
  finishedAt?: string;
  lease?: string;
}

export interface RestoreChoice {
  backup: BackupEvent;
  /** Every migration that ran after the target's deploy: the restore undoes them all. */
  migrations: MigrationEvent[];
  /** The target's newest deploy line: the database the backup holds is the one it served. */
  deployed: DeployLine;
}

export class RestoreRefusal extends Error {}

const isDeploy = (l: Record<string, unknown>): boolean => l.event === undefined && typeof l.apps === "object" && l.apps !== null;

/** Parses the journal's text; a line that is not JSON is skipped (a torn last line after a crash). */
export function parseJournal(text: string): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  for (const l of text.split("\n")) {
    if (!l.trim()) continue;
    try {
      lines.push(JSON.parse(l));
    } catch {
      /* torn line */
    }
  }
  return lines;
}

/**
 * The backup to restore when the code goes back to `targetRefs` (app → ref): the one the first
 * migration after the target's newest deploy ran after. That backup holds the database as the
 * target's code left it; every migration since (failed ones included) is undone by it.
 * Refuses, saying why, when the journal has no deploy of those refs, when no migration ran since
 * (the schema already fits), or when that migration ran without a backup.
 */
export function pickRestoreBackup(
  journal: Record<string, unknown>[],
  targetRefs: Record<string, string>,
  targetName: string,
): RestoreChoice {
  const names = Object.keys(targetRefs).sort();
  const refsText = names.map((n) => `${n}@${targetRefs[n]}`).join(", ");
  const matches = (l: Record<string, unknown>) =>
    isDeploy(l) && names.every((n) => (l as unknown as DeployLine).apps[n]?.ref === targetRefs[n]);
  let at = -1;
  for (let i = journal.length - 1; i >= 0 && at < 0; i--) if (matches(journal[i])) at = i;
  if (at < 0) {
    throw new RestoreRefusal(
      `the server's journal has no deploy of ${targetName} (${refsText}), so which backup came before the migrations since cannot be told; name one with --backup PATH`,
    );
  }
  const deployed = journal[at] as unknown as DeployLine;
  const migrations = journal.slice(at + 1).filter((l) => l.event === "migration") as unknown as MigrationEvent[];
  if (migrations.length === 0) {
    throw new RestoreRefusal(
      `no migration ran on the server since ${targetName} (${refsText}) was deployed${deployed.finishedAt ? ` at ${deployed.finishedAt}` : ""}: ` +
        `the database schema is the one its code serves, and there is nothing to restore. To restore a backup anyway, name it with --backup PATH`,
    );
  }
  const first = migrations[0];
  if (!first.backup) {
    throw new RestoreRefusal(
      `the migration of ${first.app}@${first.sha.slice(0, 12)} (${first.time}) ran without a database backup (backup.enabled is false): there is no backup from before it; name one with --backup PATH`,
    );
  }
  const firstAt = journal.indexOf(first as unknown as Record<string, unknown>);
  const backup = journal
    .slice(0, firstAt)
    .reverse()
    .find((l) => l.event === "backup" && l.path === first.backup) as BackupEvent | undefined;
  if (!backup) {
    throw new RestoreRefusal(
      `the migration of ${first.app}@${first.sha.slice(0, 12)} (${first.time}) names the backup ${first.backup}, which the journal does not record; name a backup with --backup PATH`,
    );
  }
  return { backup, migrations, deployed };
}

/** The backup event recorded for a file, if any (for --backup PATH: its recorded sha256 and counters). */
export function backupEventFor(journal: Record<string, unknown>[], path: string): BackupEvent | undefined {
  return journal
    .slice()
    .reverse()
    .find((l) => l.event === "backup" && l.path === path) as BackupEvent | undefined;
}

/** What the database holds now, and what the backup holds (restore survey, lib/restore/scripts.ts). */
export interface DatabaseSurvey {
  /** sha256 of the backup file now, and the one recorded beside it (`<file>.sha256`), "" if none. */
  sha256: string;
  recorded: string;
  size: number;
  /** schema.table names in the backup, and in the database now. */
  backupTables: string[];
  tables: string[];
  /** Per table: [inserted, updated, deleted, live rows] now. */
  stats: Record<string, number[]>;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/**
 * Lines saying what a restore of `backup` discards: its time and age, the tables created since
 * (they go), the tables dropped since (they come back), and per table the rows written since,
 * from PostgreSQL's counters (approximate: counters lag a few seconds and restart after a reset).
 */
export function describeDiscard(backupTime: string | undefined, stats: BackupEvent["stats"], survey: DatabaseSurvey, now: Date): string[] {
  const lines: string[] = [];
  if (backupTime) {
    const minutes = Math.max(0, Math.round((now.getTime() - Date.parse(backupTime)) / 60000));
    lines.push(
      `everything written to the database since the backup was taken, ${backupTime} (${minutes < 120 ? plural(minutes, "minute") : plural(Math.round(minutes / 60), "hour")} ago), is discarded`,
    );
  } else {
    lines.push("everything written to the database since the backup was taken is discarded (its time is not recorded)");
  }
  const inBackup = new Set(survey.backupTables);
  const now_ = new Set(survey.tables);
  const created = survey.tables.filter((t) => !inBackup.has(t)).sort();
  const dropped = survey.backupTables.filter((t) => !now_.has(t)).sort();
  if (created.length) lines.push(`tables created since the backup, dropped by the restore: ${created.join(", ")}`);
  if (dropped.length) lines.push(`tables dropped since the backup, brought back by the restore: ${dropped.join(", ")}`);
  if (!stats) {
    lines.push("rows written since: not known (the backup has no recorded counters)");
    return lines;
  }
  const changed: string[] = [];
  let reset = false;
  for (const t of survey.tables.filter((t) => inBackup.has(t)).sort()) {
    const before = stats[t];
    const after = survey.stats[t];
    if (!before || !after) continue;
    const d = [0, 1, 2].map((i) => after[i] - before[i]);
    if (d.some((x) => x < 0)) {
      reset = true;
      continue;
    }
    if (d.some((x) => x > 0))
      changed.push(`${t}: ${d[0]} inserted, ${d[1]} updated, ${d[2]} deleted (${after[3]} rows now, ${before[3]} in the backup)`);
  }
  if (changed.length)
    lines.push("rows written since the backup (PostgreSQL's counters, approximate), lost by the restore:", ...changed.map((c) => `  ${c}`));
  else if (!reset) lines.push("rows written since the backup to its tables: none counted (PostgreSQL's counters, approximate)");
  if (reset) lines.push("some tables' counters were reset since the backup: their rows written since are not known");
  return lines;
}

/**
 * The update (its number) that ran at server time `time`: the newest one started by then (1 s of
 * slack for the history's whole seconds) that had not ended before it. Undefined when none (the
 * server's clock and the backend's disagree).
 */
export function updateAt(rows: { version: number; start: Date; end?: Date }[], time: string): number | undefined {
  const t = Date.parse(time);
  const started = rows.filter((r) => r.start.getTime() <= t + 1000).sort((a, b) => a.start.getTime() - b.start.getTime());
  const row = started[started.length - 1];
  return row && (!row.end || t <= row.end.getTime() + 1000) ? row.version : undefined;
}
