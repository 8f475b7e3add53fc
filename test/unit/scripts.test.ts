import * as assert from "assert";
import { parseDeployConfig } from "../../lib/config";
import { lockScript, renderEnvFile } from "../../lib/scripts";
import { quote } from "../../lib/shell";
import { validRaw } from "../support/validConfig";

describe("unit: shell quoting and script builders (exact text)", () => {
  it("quotes every value as one POSIX word", () => {
    assert.strictEqual(quote("plain"), "'plain'");
    assert.strictEqual(quote("it's"), `'it'\\''s'`);
    assert.strictEqual(quote("$(rm -rf /) `x` ; | & \n"), "'$(rm -rf /) `x` ; | & \n'");
    assert.strictEqual(quote(8080), "'8080'");
    assert.throws(() => quote("a\0b"), /NUL/);
  });

  it("renders the .env with every value quoted, sorted, with the app's version", () => {
    const cfg = parseDeployConfig("unit", validRaw(), { sshPrivateKey: true, databaseUrl: true });
    const app = { ...cfg.apps[0], env: { NODE_ENV: "production", GREETING: "it's $HOME" } };
    assert.strictEqual(
      renderEnvFile(app, { DATABASE_URL: "postgres://u:p@h/db", JWT_SECRET: "s3cr3t" }),
      "APP_VERSION='1.2.2'\nDATABASE_URL='postgres://u:p@h/db'\nGREETING='it'\\''s $HOME'\nJWT_SECRET='s3cr3t'\nNODE_ENV='production'\n",
    );
  });

  it("builds the lock script", () => {
    const cfg = parseDeployConfig("unit", validRaw(), { sshPrivateKey: true, databaseUrl: true });
    assert.strictEqual(
      lockScript({ ...cfg.server, path: ["/opt/node/bin"], env: { PM2_HOME: "/var/pm2" } }, "production", '{"orchestrator":"abc"}'),
      [
        "set -eu",
        "umask 022",
        `export PATH='/opt/node/bin':"$PATH"`,
        "export PM2_HOME='/var/pm2'",
        "lock='/srv/nostromo/.lock'",
        `if ! mkdir "$lock" 2>/dev/null; then`,
        `  holder=$(cat "$lock/stack" 2>/dev/null || echo unknown)`,
        `  if [ "$holder" != 'production' ]; then`,
        `    echo "deploy lock held by stack '$holder' ($(cat "$lock/owner" 2>/dev/null), since $(cat "$lock/since" 2>/dev/null)); if no deploy is running there: rm -rf $lock" >&2`,
        "    exit 1",
        "  fi",
        `  echo "taking over a stale lock of this stack from $(cat "$lock/since" 2>/dev/null)"`,
        "fi",
        `printf '%s\\n' 'production' > "$lock/stack"`,
        `printf '%s@%s\\n' "$(id -un)" "$(hostname)" > "$lock/owner"`,
        `date -u +%Y-%m-%dT%H:%M:%SZ > "$lock/since"`,
        `date +%s > "$lock/started"`,
        `printf '%s\\n' '{"orchestrator":"abc"}' > "$lock/refs"`,
        `echo "lock taken by "'production'`,
        "",
      ].join("\n"),
    );
  });
});
