import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseDeployConfig } from "../../../lib/config";
import { PG_CONNECTION_JS, pgConnectionLines } from "../../../lib/pgconnect";
import { backupScript, eventFunction, TABLE_STATS_SQL } from "../../../lib/scripts";
import { quote } from "../../../lib/shell";
import { validRaw } from "../../support/validConfig";
import { stepText } from "./fixture";

describe("unit: scripts/backup (exact text)", () => {
  it("dumps from DATABASE_URL on stdin (through a private service/password file) to a 0600 mktemp file in a 0700 folder, verifies, checksums, keeps the newest backup.keep and the last good one, and records itself in the journal", () => {
    const raw = validRaw();
    raw.backup = { keep: 3 };
    const cfg = parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
    const text = backupScript(cfg, "0123456789ab", { orchestrator: "0123456789abcdef0123456789abcdef01234567" });
    assert.strictEqual(
      text,
      stepText(cfg, [
        "umask 077",
        "IFS= read -r DATABASE_URL",
        `printf '%s\\n' "$DATABASE_URL" | node -e ${quote(PG_CONNECTION_JS)} "$nostromo_tmp"`,
        "unset DATABASE_URL",
        `export PGSERVICEFILE="$nostromo_tmp"/pg_service.conf PGSERVICE=nostromo PGPASSFILE="$nostromo_tmp"/pgpass`,
        "dir='/srv/nostromo/backups'",
        `mkdir -p "$dir"`,
        `chmod 700 "$dir"`,
        `find "$dir" -maxdepth 1 -type f -perm /077 -exec chmod 600 {} +`,
        "stamp=$(date -u +%Y%m%dT%H%M%SZ)",
        `file="$dir/"'unit'"-$stamp-"'0123456789ab'".dump"`,
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
        `last_good=$(grep '"result":"succeeded"' '/srv/nostromo/deploys.jsonl' 2>/dev/null | tail -n 1 | sed -n 's/.*"backup":"\\([^"]*\\)".*/\\1/p')`,
        `ls -1t "$dir"/'unit'-*.dump 2>/dev/null | tail -n +4 | while IFS= read -r old; do [ "$old" = "$last_good" ] || rm -f "$old" "$old.sha256"; done`,
        eventFunction("/srv/nostromo"),
        `nostromo_event backup path="$file" size:="$size" sha256="$sum" stamp="$stamp" stack='unit' stats:="$stats" \\`,
        `  from.orchestrator="$(basename "$(readlink '/srv/nostromo/current/orchestrator')" 2>/dev/null)" \\`,
        `  to.orchestrator='0123456789abcdef0123456789abcdef01234567'`,
        `nostromo_result path="$file" size="$size" sha256="$sum" time="$stamp"`,
      ]),
    );
    assert.ok(!text.includes("postgres://"), "no database URL in the script's text");
    assert.ok(!/--dbname=?"?\$DATABASE_URL/.test(text), "DATABASE_URL is not an argument");
  });

  it("pgConnectionLines: the URL goes through a pipe from the shell's builtin printf, never an argument or a child's environment", () => {
    const lines = pgConnectionLines(`"$d"`);
    assert.strictEqual(lines.length, 3);
    assert.ok(lines[0].startsWith(`printf '%s\\n' "$DATABASE_URL" | node -e '`));
    assert.strictEqual(lines.join("\n").split("$DATABASE_URL").length, 2, "DATABASE_URL is named once, as printf's argument");
    assert.deepStrictEqual(lines.slice(1), [
      "unset DATABASE_URL",
      `export PGSERVICEFILE="$d"/pg_service.conf PGSERVICE=nostromo PGPASSFILE="$d"/pgpass`,
    ]);
  });

  describe("PG_CONNECTION_JS: a URL on stdin becomes a 0600 libpq service file and password file", () => {
    function convert(url: string): { code: number | null; stderr: string; service?: string; pgpass?: string; modes?: string[] } {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-pgconn-"));
      try {
        const r = spawnSync(process.execPath, ["-e", PG_CONNECTION_JS, dir], { input: `${url}\n`, encoding: "utf8" });
        if (r.status !== 0) return { code: r.status, stderr: r.stderr };
        const files = ["pg_service.conf", "pgpass"].map((f) => path.join(dir, f));
        return {
          code: r.status,
          stderr: r.stderr,
          service: fs.readFileSync(files[0], "utf8"),
          pgpass: fs.readFileSync(files[1], "utf8"),
          modes: files.map((f) => (fs.statSync(f).mode & 0o777).toString(8)),
        };
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }

    it("user, host, port, dbname and parameters (sslmode survives) go to the service file, the password escaped to the password file", () => {
      const r = convert("postgres://app%40x:p%3Ass:w\\d@db.example:6432/nostro%20mo?sslmode=verify-full&application_name=deploy");
      assert.strictEqual(r.code, 0, r.stderr);
      assert.strictEqual(
        r.service,
        "[nostromo]\nuser=app@x\nhost=db.example\nport=6432\ndbname=nostro mo\nsslmode=verify-full\napplication_name=deploy\n",
      );
      assert.strictEqual(r.pgpass, "*:*:*:*:p\\:ss\\:w\\\\d\n");
      assert.deepStrictEqual(r.modes, ["600", "600"]);
    });

    it("postgresql://, several hosts, IPv6, ssl=true, a socket folder as host parameter, no password", () => {
      const r = convert("postgresql://u@[::1]:5433,h2/db?ssl=true");
      assert.strictEqual(r.code, 0, r.stderr);
      assert.strictEqual(r.service, "[nostromo]\nuser=u\nhost=::1,h2\nport=5433,\ndbname=db\nsslmode=require\n");
      assert.strictEqual(r.pgpass, "");
      const socket = convert("postgres:///db?host=/var/run/postgresql&password=s3cret");
      assert.strictEqual(socket.service, "[nostromo]\ndbname=db\nhost=/var/run/postgresql\n");
      assert.strictEqual(socket.pgpass, "*:*:*:*:s3cret\n");
    });

    it("refuses what is not a postgres URL, or what libpq's files cannot hold, without printing the value", () => {
      for (const url of [
        "mysql://x:s3cret@h/d",
        "postgres://x:s3cret@h/d?bad-key=1",
        "postgres://x:s3cret@h/d?sslmode=require%0Ahost=evil",
        "postgres://x:s3cret@h:port/d",
      ]) {
        const r = convert(url);
        assert.strictEqual(r.code, 2, url);
        assert.match(r.stderr, /^DATABASE_URL: .* \(value not shown\)$/m);
        assert.ok(!r.stderr.includes("s3cret"), r.stderr);
      }
    });
  });
});
