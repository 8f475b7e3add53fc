import * as assert from "assert";
import { configBackupLines, eventFunction } from "../../../lib/scripts";
import { parse } from "./fixture";

describe("unit: scripts/configBackup (exact text)", () => {
  it("archives the nginx site (not the live links), the served apps' units, PM2's dump and every shared .env that exist (0600 in 0700, verified, sha256, newest backup.keep of its own name kept) and records itself in the journal", () => {
    const cfg = parse((raw) => {
      raw.backup = { keep: 3 };
      raw.nginx.sitesDir = "/etc/nginx/sites-enabled";
    });
    // Lines of the lock step (lock.test.ts), which ends with their result fields.
    assert.deepStrictEqual(configBackupLines(cfg), [
      "umask 077",
      "dir='/srv/nostromo/backups'",
      `mkdir -p "$dir"`,
      `chmod 700 "$dir"`,
      "stamp=$(date -u +%Y%m%dT%H%M%SZ)",
      `file="$dir/"'unit'"-config-$stamp.tar.gz"`,
      `: > "$nostromo_tmp/files"`,
      `: > "$nostromo_tmp/skipped"`,
      `nostromo_add() { found=""; for f in "$@"; do if [ -f "$f" ]; then printf '%s\\n' "$f" >> "$nostromo_tmp/files"; found=1; fi; done; [ -n "$found" ] || printf '%s\\n' "$1" >> "$nostromo_tmp/skipped"; }`,
      "nostromo_add '/etc/nginx/sites-enabled/nostromo.conf'",
      "nostromo_add '/etc/systemd/system/nostromo-orchestrator-'*.service",
      `nostromo_add "\${PM2_HOME:-$HOME/.pm2}/dump.pm2"`,
      "nostromo_add '/srv/nostromo/shared/orchestrator/.env'",
      "nostromo_add '/srv/nostromo/shared/sevastopol/.env'",
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
      `ls -1 "$dir"/'unit'-config-*.tar.gz 2>/dev/null | sort -r | tail -n +4 | while IFS= read -r old; do rm -f "$old" "$old.sha256"; done`,
      `json_lines() { local out="" l; while IFS= read -r l || [ -n "$l" ]; do [ -n "$l" ] || continue; nostromo_json_string "$l"; out="$out\${out:+,}$nostromo_json"; done < "$1"; printf '[%s]' "$out"; }`,
      eventFunction("/srv/nostromo"),
      `nostromo_event config-backup path="$file" sha256="$sum" stamp="$stamp" stack='unit' count:="$count" files:="$(json_lines "$nostromo_tmp/files")" skipped:="$(json_lines "$nostromo_tmp/skipped")"`,
    ]);
  });

  it("without an nginx site or PM2 apps: no site file, no PM2 dump; systemd apps' units", () => {
    const cfg = parse((raw) => {
      delete raw.nginx.site;
      raw.apps.orchestrator.manager = "systemd";
    });
    const adds = configBackupLines(cfg).filter((l) => l.startsWith("nostromo_add "));
    assert.deepStrictEqual(adds, [
      "nostromo_add '/etc/systemd/system/nostromo-orchestrator-'*.service",
      "nostromo_add '/srv/nostromo/shared/orchestrator/.env'",
      "nostromo_add '/srv/nostromo/shared/sevastopol/.env'",
    ]);
  });

  it("a systemd app's workers: their units (`<app>-<worker>.service`, runbook 003's names) are archived too", () => {
    const cfg = parse((raw) => {
      raw.apps.orchestrator.manager = "systemd";
      raw.apps.orchestrator.workers = { "celery-worker": { command: "celery -A app worker" } };
    });
    const adds = configBackupLines(cfg).filter((l) => l.startsWith("nostromo_add '/etc/systemd"));
    assert.deepStrictEqual(adds, [
      "nostromo_add '/etc/systemd/system/nostromo-orchestrator-'*.service",
      "nostromo_add '/etc/systemd/system/orchestrator-celery-worker.service'",
    ]);
  });
});
