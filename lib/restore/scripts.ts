/**
 * Remote scripts of a database restore (rollback --restore-db). Pure builders: values in, script
 * text out, every value through `quote`; DATABASE_URL arrives on standard input, never in the text,
 * and reaches pg_dump / pg_restore / psql through a private 0700 temp folder (pgConnectionLines),
 * never their command lines.
 */
import { AppConfig, DeployConfig } from "../config";
import { pgConnectionLines } from "../pgconnect";
import { eventFunction, layout, prelude, TABLE_STATS_SQL } from "../scripts";
import { quote, script } from "../shell";

const USER_TABLES_SQL =
  "select coalesce(json_agg(schemaname||'.'||tablename order by 1), '[]') from pg_tables where schemaname not in ('pg_catalog','information_schema')";

/** `pg_restore --list` → a JSON array of the backup's tables (`schema.table`). */
const BACKUP_TABLES = `pg_restore --list "$backup" | awk 'BEGIN{printf "["} $4=="TABLE" && $5!="DATA"{printf "%s\\"%s.%s\\"", (n++ ? "," : ""), $5, $6} END{printf "]"}'`;

/**
 * Empties the database before the dump is loaded into it, in the same transaction: every schema
 * that is not PostgreSQL's own is dropped with all it holds (tables, columns, sequences, functions
 * created after the dump go too), and `public` is created again with its owner, grants and comment
 * as they were. What the dump holds is then created by it: the result is exactly the dumped database.
 */
export const RESET_SQL = `DO $reset$
DECLARE s record; g record; owner oid; acl aclitem[]; note text; had_public boolean;
BEGIN
  SELECT nspowner, nspacl, obj_description(oid, 'pg_namespace'), true INTO owner, acl, note, had_public FROM pg_namespace WHERE nspname = 'public';
  FOR s IN SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', s.nspname);
  END LOOP;
  IF had_public THEN
    CREATE SCHEMA public;
    EXECUTE format('ALTER SCHEMA public OWNER TO %I', owner::regrole::text);
    EXECUTE format('COMMENT ON SCHEMA public IS %L', note);
    FOR g IN SELECT grantee, privilege_type FROM aclexplode(acl) WHERE grantee <> owner LOOP
      EXECUTE format('GRANT %s ON SCHEMA public TO %s', g.privilege_type, CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(g.grantee::regrole::text) END);
    END LOOP;
  END IF;
END $reset$;`;

/**
 * What a restore of `backupPath` would change, read before asking: prints one JSON line (see
 * DatabaseSurvey in plan.ts) or `{"missing":true}` when the file is gone or empty.
 */
export function restoreSurveyScript(cfg: DeployConfig, backupPath: string): string {
  return script(
    prelude(cfg.server),
    `umask 077`,
    `IFS= read -r DATABASE_URL`,
    `backup=${quote(backupPath)}`,
    `[ -s "$backup" ] || { echo '{"missing":true}'; exit 0; }`,
    `pgtmp=$(mktemp -d)`,
    `trap 'rm -rf "$pgtmp"' EXIT`,
    ...pgConnectionLines(`"$pgtmp"`),
    `sum=$(sha256sum "$backup" | cut -d' ' -f1)`,
    `recorded=$(cut -d' ' -f1 "$backup.sha256" 2>/dev/null || true)`,
    `backup_tables=$(${BACKUP_TABLES})`,
    `tables=$(psql -XAtq -c ${quote(USER_TABLES_SQL)})`,
    `stats=$(psql -XAtq -c ${quote(TABLE_STATS_SQL)})`,
    `printf '{"sha256":"%s","recorded":"%s","size":%s,"backupTables":%s,"tables":%s,"stats":%s}\\n' "$sum" "$recorded" "$(stat -c %s "$backup")" "$backup_tables" "$tables" "$stats"`,
  );
}

/**
 * Restores `backupPath` (a pg_dump custom-format file) into the database of DATABASE_URL (read
 * from standard input) so that it holds exactly what was dumped. Under the server's deploy lock
 * (refused while a deploy holds it). Refuses a file whose sha256 is not `sha256`. First a
 * verified safety copy of the database as it is: `<root>/backups/safety-<label>-<utc>.dump` (a
 * name the deploy's rotation never prunes), 0600 in a 0700 folder. Then, in one transaction,
 * RESET_SQL and the dump's SQL: it applies whole or not at all. A `restore` event goes to the
 * journal. Prints one JSON line: safety, restored, time.
 */
export function restoreScript(cfg: DeployConfig, backupPath: string, sha256: string, label = "restore"): string {
  const L = layout(cfg.server.root);
  return script(
    prelude(cfg.server),
    `umask 077`,
    `IFS= read -r DATABASE_URL`,
    `backup=${quote(backupPath)}`,
    `lock=${quote(L.lock)}`,
    `stamp=$(date -u +%Y%m%dT%H%M%SZ)`,
    `export NOSTROMO_LEASE=${quote(`${cfg.stack}/restore-`)}"$stamp-$$"`,
    `test -f "$backup" || { echo "restore: backup $backup is gone; nothing was changed" >&2; exit 3; }`,
    `have=$(sha256sum "$backup" | cut -d' ' -f1)`,
    `[ "$have" = ${quote(sha256)} ] || { echo "restore: $backup has sha256 $have, not the recorded "${quote(sha256)}"; nothing was changed" >&2; exit 3; }`,
    `pg_restore --list "$backup" >/dev/null`,
    // The deploy lock: no deploy may build, migrate or switch while the database is replaced.
    `exec 9>>${quote(`${cfg.server.root}/.lock-acquire`)}`,
    `flock -w 60 9 || { echo "restore: could not take ${cfg.server.root}/.lock-acquire in 60 s; nothing was changed" >&2; exit 3; }`,
    `if [ -d "$lock" ]; then echo "restore: the deploy lock is held by stack '$(cat "$lock/stack" 2>/dev/null)' (update $(cat "$lock/lease" 2>/dev/null), since $(cat "$lock/since" 2>/dev/null)): a deploy is running or stopped half way; nothing was changed" >&2; exit 3; fi`,
    `mkdir "$lock" && trap 'rm -rf "$lock" "\${pgtmp:-}" "\${tmp:-}"' EXIT`,
    `printf '%s\\n' ${quote(cfg.stack)} > "$lock/stack"; printf '%s\\n' "$NOSTROMO_LEASE" > "$lock/lease"; date -u +%Y-%m-%dT%H:%M:%SZ > "$lock/since"; date +%s > "$lock/started"`,
    `flock -u 9`,
    `exec 9>&-`,
    `mkdir -p ${quote(L.backups)}`,
    `chmod 700 ${quote(L.backups)}`,
    `safety=${quote(`${L.backups}/safety-${label}`)}-"$stamp".dump`,
    `tmp=${quote(`${L.backups}/.partial-safety`)}-$$.dump`,
    `pgtmp=$(mktemp -d)`,
    ...pgConnectionLines(`"$pgtmp"`),
    `pg_dump --format=custom --no-owner --file="$tmp"`,
    `pg_restore --list "$tmp" >/dev/null`,
    `mv "$tmp" "$safety"`,
    `printf '%s  %s\\n' "$(sha256sum "$safety" | cut -d' ' -f1)" "$(basename "$safety")" > "$safety.sha256"`,
    `chmod 600 "$safety" "$safety.sha256"`,
    `echo "safety backup: $safety" >&2`,
    // COMMIT is sent only after pg_restore wrote the whole dump: a pg_restore stopping half way
    // leaves psql at the end of its input inside the transaction, which PostgreSQL rolls back.
    `set -o pipefail`,
    `{ printf '%s\\n' "BEGIN;" "SET LOCAL lock_timeout = '60s';" ${quote(RESET_SQL)}; pg_restore --no-owner --exit-on-error --file=- "$backup" && printf 'COMMIT;\\n'; } | psql -X -q -v ON_ERROR_STOP=1 >/dev/null`,
    eventFunction(cfg.server.root),
    `nostromo_event restore backup="$backup" sha256="$have" safety="$safety"`,
    `printf '{"safety":"%s","restored":"%s","time":"%s"}\\n' "$safety" "$backup" "$stamp"`,
  );
}

/**
 * Runs the app's `migrateCheck` in its serving release with its .env loaded: exit 0 when the
 * database's recorded migrations match that code. Prints the command's own output.
 */
export function schemaCheckScript(cfg: DeployConfig, app: AppConfig): string {
  return script(
    prelude(cfg.server),
    `cd ${quote(layout(cfg.server.root, app.name).current)}`,
    `set -a; . ./.env; set +a`,
    `bash -ec ${quote(app.migrateCheck!)} 2>&1`,
  );
}
