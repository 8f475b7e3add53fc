import * as assert from "assert";
import { parseDeployConfig } from "../../../lib/config";
import { backupScript } from "../../../lib/scripts";
import { validRaw } from "../../support/validConfig";
import { stepText } from "./fixture";

describe("unit: scripts/backup (exact text)", () => {
  it("dumps from DATABASE_URL on stdin to a mktemp file, verifies, checksums, keeps the newest backup.keep and the last good one", () => {
    const raw = validRaw();
    raw.backup = { keep: 3 };
    const cfg = parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
    const text = backupScript(cfg, "0123456789ab");
    assert.strictEqual(
      text,
      stepText(cfg, [
        "IFS= read -r DATABASE_URL",
        "dir='/srv/nostromo/backups'",
        `mkdir -p "$dir"`,
        "stamp=$(date -u +%Y%m%dT%H%M%SZ)",
        `file="$dir/"'unit'"-$stamp-"'0123456789ab'".dump"`,
        `tmp=$(mktemp "$dir/.partial-XXXXXXXX.dump")`,
        `nostromo_cleanup() { rm -f "$tmp"; }`,
        `pg_dump --format=custom --no-owner --dbname="$DATABASE_URL" --file="$tmp"`,
        `pg_restore --list "$tmp" >/dev/null`,
        `size=$(stat -c %s "$tmp")`,
        `[ "$size" -gt 0 ] || { echo "backup: empty dump" >&2; exit 1; }`,
        `sum=$(sha256sum "$tmp" | cut -d' ' -f1)`,
        `mv "$tmp" "$file"`,
        `printf '%s  %s\\n' "$sum" "$(basename "$file")" > "$file.sha256"`,
        `last_good=$(grep '"result":"succeeded"' '/srv/nostromo/deploys.jsonl' 2>/dev/null | tail -n 1 | sed -n 's/.*"backup":"\\([^"]*\\)".*/\\1/p')`,
        `ls -1t "$dir"/'unit'-*.dump 2>/dev/null | tail -n +4 | while IFS= read -r old; do [ "$old" = "$last_good" ] || rm -f "$old" "$old.sha256"; done`,
        `nostromo_result path="$file" size="$size" sha256="$sum" time="$stamp"`,
      ]),
    );
    assert.ok(!text.includes("postgres://"), "no database URL in the script's text");
  });
});
