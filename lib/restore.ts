/**
 * Remote scripts of a database restore (rollback --restore-db). Pure builders: values in, script
 * text out, every value through `quote`; DATABASE_URL arrives on standard input, never in the text,
 * and reaches pg_dump / pg_restore through a private 0700 temp folder (pgConnectionLines), never
 * their command lines.
 */
import { ServerConfig } from "./config";
import { pgConnectionLines } from "./pgconnect";
import { layout, prelude } from "./scripts";
import { quote, script } from "./shell";

/** Prints `present <size>` when the backup file exists and is not empty, else `missing`. */
export function backupPresentScript(backupPath: string): string {
  return script(`if [ -s ${quote(backupPath)} ]; then echo "present $(stat -c %s ${quote(backupPath)})"; else echo missing; fi`);
}

/**
 * Restores `backupPath` (a pg_dump custom-format file) into the database of DATABASE_URL
 * (read from standard input), after taking a verified safety copy of the database as it is:
 * `<root>/backups/safety-<label>-<utc>.dump` (a name the deploy's backup rotation never prunes).
 * Refuses a missing backup or one whose recorded checksum no longer matches. The restore runs in
 * one transaction: it applies whole or not at all. The safety copy and its checksum are 0600 in a
 * 0700 folder. Prints one JSON line: safety, restored, time.
 */
export function restoreScript(server: ServerConfig, backupPath: string, label = "restore"): string {
  const dir = layout(server.root).backups;
  return script(
    prelude(server),
    `umask 077`,
    `IFS= read -r DATABASE_URL`,
    `backup=${quote(backupPath)}`,
    `test -f "$backup" || { echo "restore: backup $backup is gone; nothing was changed" >&2; exit 3; }`,
    `if [ -f "$backup.sha256" ]; then`,
    `  want=$(cut -d' ' -f1 "$backup.sha256"); have=$(sha256sum "$backup" | cut -d' ' -f1)`,
    `  [ "$want" = "$have" ] || { echo "restore: $backup does not match its recorded sha256; nothing was changed" >&2; exit 3; }`,
    `fi`,
    `pg_restore --list "$backup" >/dev/null`,
    `mkdir -p ${quote(dir)}`,
    `chmod 700 ${quote(dir)}`,
    `stamp=$(date -u +%Y%m%dT%H%M%SZ)`,
    `safety=${quote(`${dir}/safety-${label}`)}-"$stamp".dump`,
    `tmp=${quote(`${dir}/.partial-safety`)}-$$.dump`,
    `pgtmp=$(mktemp -d)`,
    `trap 'rm -rf "$pgtmp" "$tmp"' EXIT`,
    ...pgConnectionLines(`"$pgtmp"`),
    `pg_dump --format=custom --no-owner --file="$tmp"`,
    `pg_restore --list "$tmp" >/dev/null`,
    `mv "$tmp" "$safety"`,
    `printf '%s  %s\\n' "$(sha256sum "$safety" | cut -d' ' -f1)" "$(basename "$safety")" > "$safety.sha256"`,
    `chmod 600 "$safety" "$safety.sha256"`,
    `echo "safety backup: $safety" >&2`,
    `pg_restore --clean --if-exists --no-owner --single-transaction --exit-on-error --dbname=service=nostromo "$backup"`,
    `printf '{"safety":"%s","restored":"%s","time":"%s"}\\n' "$safety" "$backup" "$stamp"`,
  );
}
