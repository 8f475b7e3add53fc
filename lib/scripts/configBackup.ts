/** The config backup taken before a deploy changes the server's configuration. */
import { DeployConfig, workerUnit } from "../config";
import { quote } from "../shell";
import { eventFunction } from "./journal";
import { layout } from "./layout";
import { SYSTEMD_UNIT_DIR } from "./slot";

/**
 * What a config backup holds, as shell words (absolute paths; a pattern stands for the files it
 * matches): the nginx site file (lib/scripts/nginx.ts writes `<sitesDir>/nostromo.conf`; not the
 * live links: which slot serves is switched by a deploy alone), each served app's systemd units
 * (its slots' and any other `nostromo-<app>-*.service`, and its workers' `<app>-<worker>.service`),
 * PM2's saved process list when PM2 runs apps, and each app's shared `.env`.
 */
function configFiles(cfg: DeployConfig): string[] {
  const { root } = cfg.server;
  const words: string[] = [];
  if (cfg.nginx.routes.length > 0) words.push(quote(`${cfg.nginx.sitesDir}/nostromo.conf`));
  for (const app of cfg.apps.filter((a) => a.kind !== "static")) {
    words.push(`${quote(`${SYSTEMD_UNIT_DIR}/nostromo-${app.name}-`)}*.service`);
    // Workers' units are named as runbook 003 names them (`iact-celery-worker.service`).
    for (const w of app.workers) words.push(quote(`${SYSTEMD_UNIT_DIR}/${workerUnit(app.name, w.name)}.service`));
  }
  if (cfg.apps.some((a) => a.kind !== "static" && a.manager === "pm2")) words.push(`"\${PM2_HOME:-$HOME/.pm2}/dump.pm2"`);
  for (const app of cfg.apps) words.push(quote(`${layout(root, app.name).shared}/.env`));
  return words;
}

/**
 * Archives the server's configuration as it is before this deploy changes it: the files of
 * `configFiles` that exist (a missing one, on a first deploy say, is skipped and named) into
 * `<root>/backups/<stack>-config-<utc>.tar.gz`, 0600 in a 0700 folder (it holds the .env files),
 * paths relative to `/` so that `tar -xzpf ARCHIVE -C /` puts them back (restore-config does).
 * Verified (`tar -tzf` lists exactly the files given), with a sha256 file beside it; the newest
 * `backup.keep` config archives are kept (a name pattern of their own: the database backups'
 * rotation and this one never touch each other's files). A `config-backup` event in the journal
 * names it. Lines of the lock step (lib/scripts/lock.ts), right after the lock is taken: one SSH
 * run and one engine step fewer on every deploy's way than a step of its own; its result fields
 * are CONFIG_BACKUP_RESULT.
 */
export function configBackupLines(cfg: DeployConfig): string[] {
  const { server, stack } = cfg;
  const dir = layout(server.root).backups;
  return [
    `umask 077`,
    `dir=${quote(dir)}`,
    `mkdir -p "$dir"`,
    `chmod 700 "$dir"`,
    `stamp=$(date -u +%Y%m%dT%H%M%SZ)`,
    `file="$dir/"${quote(stack)}"-config-$stamp.tar.gz"`,
    `: > "$nostromo_tmp/files"`,
    `: > "$nostromo_tmp/skipped"`,
    // Each call: one file, or the files a pattern matched; nothing there names the first word.
    `nostromo_add() { found=""; for f in "$@"; do if [ -f "$f" ]; then printf '%s\\n' "$f" >> "$nostromo_tmp/files"; found=1; fi; done; [ -n "$found" ] || printf '%s\\n' "$1" >> "$nostromo_tmp/skipped"; }`,
    ...configFiles(cfg).map((w) => `nostromo_add ${w}`),
    `sort -u -o "$nostromo_tmp/files" "$nostromo_tmp/files"`,
    `sed 's|^/||' "$nostromo_tmp/files" > "$nostromo_tmp/relative"`,
    `tmp=$(mktemp "$dir/.partial-XXXXXXXX.tar.gz")`,
    `nostromo_cleanup() { rm -f "$tmp"; }`,
    `tar -czf "$tmp" -C / --no-recursion -T "$nostromo_tmp/relative"`,
    `tar -tzf "$tmp" > "$nostromo_tmp/listed"`,
    `cmp -s "$nostromo_tmp/listed" "$nostromo_tmp/relative" || { echo "config backup: the archive does not list the files put in it" >&2; exit 1; }`,
    `count=$(wc -l < "$nostromo_tmp/files")`,
    `sum=$(sha256sum "$tmp" | cut -d' ' -f1)`,
    `mv "$tmp" "$file"`,
    `printf '%s  %s\\n' "$sum" "$(basename "$file")" > "$file.sha256"`,
    `chmod 600 "$file" "$file.sha256"`,
    `sed 's|^|config backup: |' "$nostromo_tmp/files"`,
    `sed 's|^|config backup: not there, skipped: |' "$nostromo_tmp/skipped"`,
    `echo "config backup: $count files in $file"`,
    // Newest first by the UTC stamp in the name; everything after the newest `keep` goes.
    `ls -1 "$dir"/${quote(stack)}-config-*.tar.gz 2>/dev/null | sort -r | tail -n +${cfg.backup.keep + 1} | while IFS= read -r old; do rm -f "$old" "$old.sha256"; done`,
    // A JSON array of the file's non-empty lines, in bash (nostromo_json_string, the prelude's): a node start costs 0.05 s.
    `json_lines() { local out="" l; while IFS= read -r l || [ -n "$l" ]; do [ -n "$l" ] || continue; nostromo_json_string "$l"; out="$out\${out:+,}$nostromo_json"; done < "$1"; printf '[%s]' "$out"; }`,
    eventFunction(server.root),
    `nostromo_event config-backup path="$file" sha256="$sum" stamp="$stamp" stack=${quote(stack)} count:="$count" files:="$(json_lines "$nostromo_tmp/files")" skipped:="$(json_lines "$nostromo_tmp/skipped")"`,
  ];
}

/** The config backup's fields in the lock step's result line (components/server.ts reads them). */
export const CONFIG_BACKUP_RESULT = `path="$file" sha256="$sum" files="$count" time="$stamp"`;
