/**
 * Remote scripts of a config restore (`npm run restore-config`): what a config archive (taken by
 * the deploy's config backup, lib/scripts/configBackup.ts) holds and how it differs from the
 * server now, and putting it back. Pure builders: values in, script text out, every value
 * through `quote`. The archive holds paths relative to `/`.
 */
import { DeployConfig } from "../config";
import { eventFunction, layout, prelude, SYSTEMD_UNIT_DIR } from "../scripts";
import { quote, script } from "../shell";

/** One file of a config archive against the server now. */
export interface ConfigFileState {
  path: string;
  /** same: content and mode as archived; differs: either changed; absent: not on the server now. */
  state: "same" | "differs" | "absent";
  /** The archived file's mode (octal). */
  mode: string;
}

export interface ConfigSurvey {
  /** The archive is not on the server (or empty). */
  missing: boolean;
  sha256: string;
  /** From the archive's .sha256 file ("" without one). */
  recorded: string;
  files: ConfigFileState[];
}

/**
 * Read only, no lock: the archive's sha256 and its recorded one, then one line per file it holds:
 * `file <same|differs|absent> <mode> <absolute path>`. `missing` alone when the archive is gone.
 * The archive is unpacked into a private 0700 temp folder (it holds the .env files), removed on exit.
 */
export function configSurveyScript(cfg: DeployConfig, archive: string): string {
  return script(
    prelude(cfg.server),
    `umask 077`,
    `archive=${quote(archive)}`,
    `[ -s "$archive" ] || { echo missing; exit 0; }`,
    `t=$(mktemp -d)`,
    `trap 'rm -rf "$t"' EXIT`,
    `echo "sha256 $(sha256sum "$archive" | cut -d' ' -f1)"`,
    `echo "recorded $(cut -d' ' -f1 "$archive.sha256" 2>/dev/null || true)"`,
    `tar -xzpf "$archive" -C "$t"`,
    `tar -tzf "$archive" | while IFS= read -r f; do`,
    `  case "$f" in */) continue;; esac`,
    `  mode=$(stat -c %a "$t/$f")`,
    `  if [ ! -e "/$f" ]; then state=absent`,
    `  elif cmp -s "$t/$f" "/$f" && [ "$mode" = "$(stat -c %a "/$f")" ]; then state=same`,
    `  else state=differs; fi`,
    `  printf 'file %s %s /%s\\n' "$state" "$mode" "$f"`,
    `done`,
  );
}

/** Parses the survey's output (see configSurveyScript). */
export function parseConfigSurvey(stdout: string): ConfigSurvey {
  const out: ConfigSurvey = { missing: false, sha256: "", recorded: "", files: [] };
  for (const line of stdout.split("\n")) {
    if (line === "missing") out.missing = true;
    else if (line.startsWith("sha256 ")) out.sha256 = line.slice(7).trim();
    else if (line.startsWith("recorded ")) out.recorded = line.slice(9).trim();
    else {
      const m = /^file (same|differs|absent) ([0-7]+) (\/.*)$/.exec(line);
      if (m) out.files.push({ state: m[1] as ConfigFileState["state"], mode: m[2], path: m[3] });
    }
  }
  return out;
}

/**
 * Puts the files of `archive` back in place (all but upstream includes, in archives made before
 * the live link: which slot takes traffic is switched by a deploy alone, after its health gate),
 * their modes (and, as root, owners) as archived,
 * under the server's deploy lock (refused while a deploy holds it). Refuses an archive whose
 * sha256 is not `sha256`. First a safety archive of those files as they are now,
 * `<root>/backups/safety-config-<stack>-<utc>.tar.gz` (a name the deploy's rotation never
 * prunes), 0600. Then: systemd's daemon-reload when units came back, nginx's testCommand (a
 * refusal puts every file back as it was and fails) and reloadCommand when nginx files came back.
 * A `config-restore` event goes to the journal. Prints one JSON line: restored, safety, files, time.
 */
export function configRestoreScript(cfg: DeployConfig, archive: string, sha256: string): string {
  const L = layout(cfg.server.root);
  const rel = (p: string) => quote(`${p.replace(/^\/+/, "").replace(/\/+$/, "")}/`);
  return script(
    prelude(cfg.server),
    `umask 077`,
    `archive=${quote(archive)}`,
    `lock=${quote(L.lock)}`,
    `stamp=$(date -u +%Y%m%dT%H%M%SZ)`,
    `export NOSTROMO_LEASE=${quote(`${cfg.stack}/config-restore-`)}"$stamp-$$"`,
    `test -f "$archive" || { echo "restore-config: $archive is gone; nothing was changed" >&2; exit 3; }`,
    `have=$(sha256sum "$archive" | cut -d' ' -f1)`,
    `[ "$have" = ${quote(sha256)} ] || { echo "restore-config: $archive has sha256 $have, not the recorded "${quote(sha256)}"; nothing was changed" >&2; exit 3; }`,
    `t=$(mktemp -d)`,
    `trap 'rm -rf "$t"' EXIT`,
    `tar -tzf "$archive" | grep -v '/$' > "$t/all" || true`,
    // Which slot takes traffic is switched by a deploy alone, after its health gate: an archived
    // upstream include would send traffic to a slot nothing checked. It stays as it is.
    `grep -v ^${rel(L.upstreams)} "$t/all" > "$t/files" || true`,
    `grep ^${rel(L.upstreams)} "$t/all" | sed 's|^|kept as it is (the live slot is switched only by a deploy, after its health gate): /|' >&2 || true`,
    // The deploy lock: no deploy may write these files while they are put back.
    `exec 9>>${quote(`${cfg.server.root}/.lock-acquire`)}`,
    `flock -w 60 9 || { echo "restore-config: could not take ${cfg.server.root}/.lock-acquire in 60 s; nothing was changed" >&2; exit 3; }`,
    `if [ -d "$lock" ]; then echo "restore-config: the deploy lock is held by stack '$(cat "$lock/stack" 2>/dev/null)' (update $(cat "$lock/lease" 2>/dev/null), since $(cat "$lock/since" 2>/dev/null)): a deploy is running or stopped half way; nothing was changed" >&2; exit 3; fi`,
    `mkdir "$lock" && trap 'rm -rf "$lock" "$t"' EXIT`,
    `printf '%s\\n' ${quote(cfg.stack)} > "$lock/stack"; printf '%s\\n' "$NOSTROMO_LEASE" > "$lock/lease"; date -u +%Y-%m-%dT%H:%M:%SZ > "$lock/since"; date +%s > "$lock/started"`,
    `flock -u 9`,
    `exec 9>&-`,
    `: > "$t/present"`,
    `: > "$t/absent"`,
    `while IFS= read -r f; do if [ -e "/$f" ]; then printf '%s\\n' "$f" >> "$t/present"; else printf '%s\\n' "$f" >> "$t/absent"; fi; done < "$t/files"`,
    `mkdir -p ${quote(L.backups)}`,
    `chmod 700 ${quote(L.backups)}`,
    `safety=${quote(`${L.backups}/safety-config-${cfg.stack}`)}-"$stamp".tar.gz`,
    `tar -czf "$safety" -C / --no-recursion -T "$t/present"`,
    `printf '%s  %s\\n' "$(sha256sum "$safety" | cut -d' ' -f1)" "$(basename "$safety")" > "$safety.sha256"`,
    `chmod 600 "$safety" "$safety.sha256"`,
    `echo "safety archive of the files as they were: $safety" >&2`,
    `put_back() { tar -xzpf "$safety" -C /; while IFS= read -r f; do rm -f "/$f"; done < "$t/absent"; }`,
    `tar -xzpf "$archive" -C / -T "$t/files"`,
    `sed 's|^|restored: /|' "$t/files" >&2`,
    `if grep -q ^${rel(SYSTEMD_UNIT_DIR)} "$t/files" && command -v systemctl >/dev/null 2>&1; then systemctl daemon-reload; fi`,
    `if grep -q ^${rel(cfg.nginx.sitesDir)} "$t/files"; then`,
    `  if ! ${cfg.nginx.testCommand} >"$t/nginx" 2>&1; then`,
    `    cat "$t/nginx" >&2`,
    `    put_back`,
    `    echo "restore-config: nginx rejected the restored files; every file was put back as it was" >&2; exit 1`,
    `  fi`,
    `  ${cfg.nginx.reloadCommand}`,
    `  echo "nginx reloaded" >&2`,
    `fi`,
    eventFunction(cfg.server.root),
    `nostromo_event config-restore archive="$archive" sha256="$have" safety="$safety" count:="$(wc -l < "$t/files")"`,
    `printf '{"restored":"%s","safety":"%s","files":%s,"time":"%s"}\\n' "$archive" "$safety" "$(wc -l < "$t/files")" "$stamp"`,
  );
}
