/** The database backup taken before a migration. */
import { DeployConfig } from "../config";
import { pgConnectionLines } from "../pgconnect";
import { quote } from "../shell";
import { eventFunction } from "./journal";
import { layout } from "./layout";
import { stepScript } from "./lock";

/**
 * PostgreSQL's cumulative write counters per table (inserted, updated, deleted, live rows), read
 * before the dump: the rollback compares them with the counters at restore time to tell what a
 * restore would discard. One JSON object; `{}` without tables.
 */
export const TABLE_STATS_SQL =
  "select coalesce(json_object_agg(schemaname||'.'||relname, json_build_array(n_tup_ins, n_tup_upd, n_tup_del, n_live_tup)), '{}') from pg_stat_user_tables";

/**
 * pg_dump in custom format, verified (pg_restore --list, size > 0, sha256), newest `keep` kept.
 * DATABASE_URL arrives on standard input and reaches pg_dump through the step's private temp
 * folder (pgConnectionLines), never its command line. Backups and their checksums are 0600 in a
 * 0700 folder. The backup belongs to the update that took it: a `backup` event in the journal
 * names its lease, the SHAs serving before (`from`) and those about to migrate (`to`, app → SHA),
 * and the tables' write counters. Result: path, size, sha256, time.
 */
export function backupScript(cfg: DeployConfig, label: string, to: Record<string, string> = {}): string {
  const { server, stack } = cfg;
  const dir = layout(server.root).backups;
  const journal = layout(server.root).journal;
  return stepScript(
    cfg,
    `umask 077`,
    `IFS= read -r DATABASE_URL`,
    ...pgConnectionLines(`"$nostromo_tmp"`),
    `dir=${quote(dir)}`,
    `mkdir -p "$dir"`,
    `chmod 700 "$dir"`,
    // Backups an older version left readable by others (0644) are made private too.
    `find "$dir" -maxdepth 1 -type f -perm /077 -exec chmod 600 {} +`,
    `stamp=$(date -u +%Y%m%dT%H%M%SZ)`,
    `file="$dir/"${quote(stack)}"-$stamp-"${quote(label)}".dump"`,
    `tmp=$(mktemp "$dir/.partial-XXXXXXXX.dump")`,
    `nostromo_cleanup() { rm -f "$tmp"; }`,
    `stats=$(psql -XAtq -c ${quote(TABLE_STATS_SQL)})`,
    `pg_dump --format=custom --no-owner --file="$tmp"`,
    `pg_restore --list "$tmp" >/dev/null`,
    `size=$(stat -c %s "$tmp")`,
    `[ "$size" -gt 0 ] || { echo "backup: empty dump" >&2; exit 1; }`,
    `sum=$(sha256sum "$tmp" | cut -d' ' -f1)`,
    `mv "$tmp" "$file"`,
    `printf '%s  %s\\n' "$sum" "$(basename "$file")" > "$file.sha256"`,
    `chmod 600 "$file" "$file.sha256"`,
    // Newest first; everything after the newest `keep` goes, with its checksum, except the
    // backup of the last successful deploy (a run of failed deploys must not push it out).
    `last_good=$(grep '"result":"succeeded"' ${quote(journal)} 2>/dev/null | tail -n 1 | sed -n 's/.*"backup":"\\([^"]*\\)".*/\\1/p')`,
    `ls -1t "$dir"/${quote(stack)}-*.dump 2>/dev/null | tail -n +${cfg.backup.keep + 1} | while IFS= read -r old; do [ "$old" = "$last_good" ] || rm -f "$old" "$old.sha256"; done`,
    eventFunction(server.root),
    [
      `nostromo_event backup path="$file" size:="$size" sha256="$sum" stamp="$stamp" stack=${quote(stack)} stats:="$stats"`,
      ...Object.keys(to)
        .sort()
        .flatMap((app) => [
          `from.${app}="$(basename "$(readlink ${quote(layout(server.root, app).current)})" 2>/dev/null)"`,
          `to.${app}=${quote(to[app])}`,
        ]),
    ].join(" \\\n  "),
    `nostromo_result path="$file" size="$size" sha256="$sum" time="$stamp"`,
  );
}
