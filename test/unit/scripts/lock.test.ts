import * as assert from "assert";
import { RESULT_FUNCTION, configBackupLines, leaseGuard, lockScript, preflightLines, prelude, stepScript } from "../../../lib/scripts";
import { parse } from "./fixture";

describe("unit: scripts/lock (exact text)", () => {
  it("preflight: the commands a PM2 app, a migration's backup and the nginx site need, the layout, free space, PM2's boot hook", () => {
    assert.strictEqual(
      preflightLines(parse()).join("\n"),
      [
        `missing=""`,
        `for c in 'git' 'tar' 'curl' 'node' 'npm' 'flock' 'mktemp' 'timeout' 'pm2' 'ln' 'pg_dump' 'pg_restore' 'psql' 'sha256sum' 'nginx'; do command -v "$c" >/dev/null 2>&1 || missing="$missing $c"; done`,
        `[ -z "$missing" ] || { echo "preflight: missing on $(hostname): $missing (PATH=$PATH)" >&2; exit 1; }`,
        "mkdir -p '/srv/nostromo/releases' '/srv/nostromo/current' '/srv/nostromo/shared' '/srv/nostromo/slots' '/srv/nostromo/repos' '/srv/nostromo/backups' '/srv/nostromo/nginx-upstreams'",
        "free=$(df -Pm '/srv/nostromo' | awk 'NR==2 {print $4}')",
        `[ "$free" -ge 512 ] || { echo "preflight: only $free MiB free under /srv/nostromo, need 512 MiB (server.minFreeMiB)" >&2; exit 1; }`,
        `ls /etc/systemd/system/pm2-*.service /etc/init.d/pm2-* >/dev/null 2>&1 || echo "preflight: warning: PM2 has no boot hook on $(hostname) (run \\\`pm2 startup\\\` once as $(id -un)); after a reboot nothing serves until \\\`pulumi up --refresh\\\`" >&2`,
        `echo "preflight ok: $free MiB free"`,
      ].join("\n"),
    );
  });

  it("preflight: a systemd app needs systemctl and a writable unit folder; no backup, no site: no pg tools, no nginx", () => {
    const cfg = parse((raw) => {
      raw.apps.orchestrator.manager = "systemd";
      raw.backup = { enabled: false };
      raw.nginx = { port: 8080 };
      raw.server.minFreeMiB = 2048;
    });
    assert.strictEqual(
      preflightLines(cfg).join("\n"),
      [
        `missing=""`,
        `for c in 'git' 'tar' 'curl' 'node' 'npm' 'flock' 'mktemp' 'timeout' 'systemctl' 'ln'; do command -v "$c" >/dev/null 2>&1 || missing="$missing $c"; done`,
        `[ -z "$missing" ] || { echo "preflight: missing on $(hostname): $missing (PATH=$PATH)" >&2; exit 1; }`,
        `[ -w '/etc/systemd/system' ] || { echo "preflight: $(id -un)@$(hostname) cannot write /etc/systemd/system: apps with manager systemd need a deploy user that can (root), to install their slots' units" >&2; exit 1; }`,
        "mkdir -p '/srv/nostromo/releases' '/srv/nostromo/current' '/srv/nostromo/shared' '/srv/nostromo/slots' '/srv/nostromo/repos' '/srv/nostromo/backups' '/srv/nostromo/nginx-upstreams'",
        "free=$(df -Pm '/srv/nostromo' | awk 'NR==2 {print $4}')",
        `[ "$free" -ge 2048 ] || { echo "preflight: only $free MiB free under /srv/nostromo, need 2048 MiB (server.minFreeMiB)" >&2; exit 1; }`,
        `echo "preflight ok: $free MiB free"`,
      ].join("\n"),
    );
  });

  it("lease guard: private temp folder, exit trap, the lease check, and the lock taken under flock after preflight", () => {
    assert.strictEqual(
      leaseGuard(parse()),
      [
        "lock='/srv/nostromo/.lock'",
        "nostromo_tmp=$(mktemp -d)",
        `nostromo_held=""`,
        "nostromo_cleanup() { :; }",
        "nostromo_on_exit() {",
        "  rc=$?",
        "  nostromo_cleanup",
        `  rm -rf "$nostromo_tmp"`,
        `  if [ "$rc" -ne 0 ] && [ -n "$nostromo_held" ]; then echo "the server lock stays with this update (lease $NOSTROMO_LEASE): other steps of it may still run; the next \\\`pulumi up\\\` of stack "'unit'" takes it over (if no deploy runs: rm -rf /srv/nostromo/.lock)" >&2; fi`,
        `  exit "$rc"`,
        "}",
        "trap nostromo_on_exit EXIT",
        '[ -n "${NOSTROMO_LEASE:-}" ] || { echo "no lease: a step runs only inside a pulumi up that holds the server lock" >&2; exit 1; }',
        "mkdir -p '/srv/nostromo'",
        "exec 9>>'/srv/nostromo/.lock-acquire'",
        `flock -w 60 9 || { echo "could not take /srv/nostromo/.lock-acquire in 60 s" >&2; exit 1; }`,
        `if [ "$(cat "$lock/lease" 2>/dev/null)" != "$NOSTROMO_LEASE" ]; then`,
        `  missing=""`,
        `  for c in 'git' 'tar' 'curl' 'node' 'npm' 'flock' 'mktemp' 'timeout' 'pm2' 'ln' 'pg_dump' 'pg_restore' 'psql' 'sha256sum' 'nginx'; do command -v "$c" >/dev/null 2>&1 || missing="$missing $c"; done`,
        `  [ -z "$missing" ] || { echo "preflight: missing on $(hostname): $missing (PATH=$PATH)" >&2; exit 1; }`,
        "  mkdir -p '/srv/nostromo/releases' '/srv/nostromo/current' '/srv/nostromo/shared' '/srv/nostromo/slots' '/srv/nostromo/repos' '/srv/nostromo/backups' '/srv/nostromo/nginx-upstreams'",
        "  free=$(df -Pm '/srv/nostromo' | awk 'NR==2 {print $4}')",
        `  [ "$free" -ge 512 ] || { echo "preflight: only $free MiB free under /srv/nostromo, need 512 MiB (server.minFreeMiB)" >&2; exit 1; }`,
        `  ls /etc/systemd/system/pm2-*.service /etc/init.d/pm2-* >/dev/null 2>&1 || echo "preflight: warning: PM2 has no boot hook on $(hostname) (run \\\`pm2 startup\\\` once as $(id -un)); after a reboot nothing serves until \\\`pulumi up --refresh\\\`" >&2`,
        `  echo "preflight ok: $free MiB free"`,
        `  if [ -d "$lock" ]; then`,
        `    holder=$(cat "$lock/stack" 2>/dev/null || echo unknown)`,
        `    if [ "$holder" != 'unit' ]; then`,
        `      echo "deploy lock held by stack '$holder' (update $(cat "$lock/lease" 2>/dev/null), $(cat "$lock/owner" 2>/dev/null), since $(cat "$lock/since" 2>/dev/null)); nothing was changed. That stack's next \\\`pulumi up\\\` takes it back; if no deploy is running there: rm -rf $lock" >&2`,
        "      exit 1",
        "    fi",
        `    echo "taking over the lock left by update $(cat "$lock/lease" 2>/dev/null) of this stack (since $(cat "$lock/since" 2>/dev/null))"`,
        `    rm -rf "$lock"`,
        "  fi",
        `  mkdir "$lock"`,
        `  printf '%s\\n' 'unit' > "$lock/stack"`,
        `  printf '%s\\n' "$NOSTROMO_LEASE" > "$lock/lease"`,
        `  printf '%s@%s\\n' "$(id -un)" "$(hostname)" > "$lock/owner"`,
        `  date -u +%Y-%m-%dT%H:%M:%SZ > "$lock/since"`,
        `  date +%s > "$lock/started"`,
        `  echo "lock taken by "'unit'" (lease $NOSTROMO_LEASE)"`,
        "fi",
        "nostromo_held=1",
        "flock -u 9",
        "exec 9>&-",
      ].join("\n"),
    );
  });

  it("a step is set -eu, the prelude, the lease guard, then its own non-empty lines", () => {
    const cfg = parse();
    assert.strictEqual(
      stepScript(cfg, "echo one", false, undefined, "", "echo two"),
      ["set -eu", prelude(cfg.server), leaseGuard(cfg), "echo one", "echo two", ""].join("\n"),
    );
  });

  it("the lock step, whole: PATH and environment, guard with preflight, the config backup, and its result (stack, started, the archive)", () => {
    const cfg = parse((raw) => {
      raw.server.path = ["/opt/node/bin"];
      raw.server.env = { PM2_HOME: "/var/pm2" };
    }, "production");
    assert.strictEqual(
      lockScript(cfg),
      [
        "set -eu",
        "umask 022",
        `export PATH='/opt/node/bin':"$PATH"`,
        "export PM2_HOME='/var/pm2'",
        RESULT_FUNCTION,
        "lock='/srv/nostromo/.lock'",
        "nostromo_tmp=$(mktemp -d)",
        `nostromo_held=""`,
        "nostromo_cleanup() { :; }",
        "nostromo_on_exit() {",
        "  rc=$?",
        "  nostromo_cleanup",
        `  rm -rf "$nostromo_tmp"`,
        `  if [ "$rc" -ne 0 ] && [ -n "$nostromo_held" ]; then echo "the server lock stays with this update (lease $NOSTROMO_LEASE): other steps of it may still run; the next \\\`pulumi up\\\` of stack "'production'" takes it over (if no deploy runs: rm -rf /srv/nostromo/.lock)" >&2; fi`,
        `  exit "$rc"`,
        "}",
        "trap nostromo_on_exit EXIT",
        '[ -n "${NOSTROMO_LEASE:-}" ] || { echo "no lease: a step runs only inside a pulumi up that holds the server lock" >&2; exit 1; }',
        "mkdir -p '/srv/nostromo'",
        "exec 9>>'/srv/nostromo/.lock-acquire'",
        `flock -w 60 9 || { echo "could not take /srv/nostromo/.lock-acquire in 60 s" >&2; exit 1; }`,
        `if [ "$(cat "$lock/lease" 2>/dev/null)" != "$NOSTROMO_LEASE" ]; then`,
        `  missing=""`,
        `  for c in 'git' 'tar' 'curl' 'node' 'npm' 'flock' 'mktemp' 'timeout' 'pm2' 'ln' 'pg_dump' 'pg_restore' 'psql' 'sha256sum' 'nginx'; do command -v "$c" >/dev/null 2>&1 || missing="$missing $c"; done`,
        `  [ -z "$missing" ] || { echo "preflight: missing on $(hostname): $missing (PATH=$PATH)" >&2; exit 1; }`,
        "  mkdir -p '/srv/nostromo/releases' '/srv/nostromo/current' '/srv/nostromo/shared' '/srv/nostromo/slots' '/srv/nostromo/repos' '/srv/nostromo/backups' '/srv/nostromo/nginx-upstreams'",
        "  free=$(df -Pm '/srv/nostromo' | awk 'NR==2 {print $4}')",
        `  [ "$free" -ge 512 ] || { echo "preflight: only $free MiB free under /srv/nostromo, need 512 MiB (server.minFreeMiB)" >&2; exit 1; }`,
        `  ls /etc/systemd/system/pm2-*.service /etc/init.d/pm2-* >/dev/null 2>&1 || echo "preflight: warning: PM2 has no boot hook on $(hostname) (run \\\`pm2 startup\\\` once as $(id -un)); after a reboot nothing serves until \\\`pulumi up --refresh\\\`" >&2`,
        `  echo "preflight ok: $free MiB free"`,
        `  if [ -d "$lock" ]; then`,
        `    holder=$(cat "$lock/stack" 2>/dev/null || echo unknown)`,
        `    if [ "$holder" != 'production' ]; then`,
        `      echo "deploy lock held by stack '$holder' (update $(cat "$lock/lease" 2>/dev/null), $(cat "$lock/owner" 2>/dev/null), since $(cat "$lock/since" 2>/dev/null)); nothing was changed. That stack's next \\\`pulumi up\\\` takes it back; if no deploy is running there: rm -rf $lock" >&2`,
        "      exit 1",
        "    fi",
        `    echo "taking over the lock left by update $(cat "$lock/lease" 2>/dev/null) of this stack (since $(cat "$lock/since" 2>/dev/null))"`,
        `    rm -rf "$lock"`,
        "  fi",
        `  mkdir "$lock"`,
        `  printf '%s\\n' 'production' > "$lock/stack"`,
        `  printf '%s\\n' "$NOSTROMO_LEASE" > "$lock/lease"`,
        `  printf '%s@%s\\n' "$(id -un)" "$(hostname)" > "$lock/owner"`,
        `  date -u +%Y-%m-%dT%H:%M:%SZ > "$lock/since"`,
        `  date +%s > "$lock/started"`,
        `  echo "lock taken by "'production'" (lease $NOSTROMO_LEASE)"`,
        "fi",
        "nostromo_held=1",
        "flock -u 9",
        "exec 9>&-",
        // Then the config backup, under the lock just taken (configBackup.test.ts has its lines).
        ...configBackupLines(cfg),
        `nostromo_result stack='production' started="$(cat "$lock/started")" path="$file" sha256="$sum" files="$count" time="$stamp"`,
        "",
      ].join("\n"),
    );
  });
});
