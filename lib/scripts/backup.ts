/** The database backup taken before a migration. */
import { DeployConfig } from "../config";
import { pgConnectionLines } from "../pgconnect";
import { quote } from "../shell";
import { layout } from "./layout";
import { stepScript } from "./lock";

/**
 * pg_dump in custom format, verified (pg_restore --list, size > 0, sha256), newest `keep` kept.
 * DATABASE_URL arrives on standard input and reaches pg_dump through the step's private temp
 * folder (pgConnectionLines), never its command line. Backups and their checksums are 0600 in a
 * 0700 folder. Result: path, size, sha256, time.
 */
export function backupScript(cfg: DeployConfig, label: string): string {
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
    `stamp=$(date -u +%Y%m%dT%H%M%SZ)`,
    `file="$dir/"${quote(stack)}"-$stamp-"${quote(label)}".dump"`,
    `tmp=$(mktemp "$dir/.partial-XXXXXXXX.dump")`,
    `nostromo_cleanup() { rm -f "$tmp"; }`,
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
    `nostromo_result path="$file" size="$size" sha256="$sum" time="$stamp"`,
  );
}
