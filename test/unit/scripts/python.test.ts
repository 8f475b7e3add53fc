import * as assert from "assert";
import {
  PIP_INSTALL_FUNCTION,
  eventFunction,
  migrateScript,
  preflightLines,
  releaseScript,
  startCommand,
  systemdUnit,
  venvLine,
} from "../../../lib/scripts";
import { SHA, parse, replaced, stepText } from "./fixture";
import { pythonConfig } from "./pythonFixture";

describe("unit: scripts for python apps (issue 10, exact text)", () => {
  it("release of a python app: built in place (a virtualenv cannot move), .venv made and first on PATH, requirements from the shared wheelhouse, then the build", () => {
    const { cfg, app } = pythonConfig();
    assert.strictEqual(
      releaseScript(cfg, app, SHA),
      stepText(cfg, [
        "mirror='/srv/nostromo/repos/iact.git'; release='/srv/nostromo/releases/iact/0123456789abcdef0123456789abcdef01234567'; shared='/srv/nostromo/shared/iact'",
        'nostromo_phase=""',
        'nostromo_cleanup() { [ -z "$nostromo_phase" ] || echo "$nostromo_phase of iact@0123456789ab failed; nothing was switched, the old release still serves" >&2; }',
        "mkdir -p '/srv/nostromo/releases/iact' \"$shared\" '/srv/nostromo/repos'",
        '(umask 077; cat > "$shared/.env.new") && mv -f "$shared/.env.new" "$shared/.env"',
        'if [ ! -d "$mirror" ]; then',
        "  if ! git_out=$(git clone --mirror '/tmp/repos/iact' \"$mirror\" 2>&1); then printf 'release: git clone --mirror of %s failed:\\n%s\\n' '/tmp/repos/iact' \"$git_out\" >&2; exit 1; fi",
        "fi",
        'if [ "$(git -C "$mirror" config --get remote.origin.url)" != \'/tmp/repos/iact\' ]; then',
        "  git -C \"$mirror\" remote set-url origin '/tmp/repos/iact'",
        "  echo \"release: mirror origin set to \"'/tmp/repos/iact'",
        "fi",
        "if ! git -C \"$mirror\" cat-file -e '0123456789abcdef0123456789abcdef01234567^{commit}' 2>/dev/null; then",
        "  if ! git_out=$(git -C \"$mirror\" fetch --prune origin '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*' 2>&1); then printf 'release: git fetch from %s failed:\\n%s\\n' '/tmp/repos/iact' \"$git_out\" >&2; exit 1; fi",
        '  [ -z "$git_out" ] || printf \'%s\\n\' "$git_out"',
        "fi",
        "git -C \"$mirror\" cat-file -e '0123456789abcdef0123456789abcdef01234567^{commit}' || { echo \"release: commit 0123456789abcdef0123456789abcdef01234567 not found in \"'/tmp/repos/iact' >&2; exit 1; }",
        'if [ -f "$release/.nostromo-built" ]; then',
        "  built=kept",
        '  echo "release iact@0123456789ab already built: kept"',
        "else",
        '  tmp="$release"',
        '  rm -rf "$tmp" && mkdir -p "$tmp"',
        '  git -C "$mirror" archive \'0123456789abcdef0123456789abcdef01234567\' | tar -x -C "$tmp"',
        '  ln -sfn "$shared/.env" "$tmp/.env"',
        "  printf '%s\\n' '0123456789abcdef0123456789abcdef01234567' > \"$tmp/REVISION\"",
        '  cd "$tmp"',
        "  python3 -m venv .venv",
        '  export VIRTUAL_ENV="$release"/.venv PATH="$release"/.venv/bin:"$PATH"',
        "  nostromo_pip_install() {",
        '    wheels="$shared/wheelhouse"; mkdir -p "$wheels" "$shared/pip-cache"',
        '    hashes=""; if grep -q -- \'--hash=\' "$1"; then hashes=--require-hashes; fi',
        '    if pip install --quiet --disable-pip-version-check --no-index --find-links "$wheels" $hashes -r "$1" 2>"$nostromo_tmp/pip-offline"; then',
        '      echo "pip: $1 installed offline from $wheels"',
        "      return 0",
        "    fi",
        '    echo "pip: $1 needs what $wheels lacks ($(tail -n 1 "$nostromo_tmp/pip-offline")): downloading it"',
        '    pip download --quiet --disable-pip-version-check $hashes --cache-dir "$shared/pip-cache" -d "$wheels" -r "$1"',
        '    pip install --quiet --disable-pip-version-check --cache-dir "$shared/pip-cache" --find-links "$wheels" $hashes -r "$1"',
        '    echo "pip: $1 installed; its files are kept in $wheels"',
        "  }",
        "  nostromo_phase='install (nostromo_pip_install requirements.txt)'",
        "  nostromo_pip_install requirements.txt",
        "  nostromo_phase='build (python manage.py collectstatic --noinput)'",
        "  python manage.py collectstatic --noinput",
        '  nostromo_phase=""',
        "  touch .nostromo-built",
        "  cd /",
        "  built=built",
        '  echo "release iact@0123456789ab built"',
        "fi",
        "printf '%s\\n' 'APP_VERSION='\\''1.0.0'\\''' > \"$release/.release.env\"",
        "prev=$(basename \"$(readlink '/srv/nostromo/current/iact' 2>/dev/null)\" 2>/dev/null || true)",
        'changelog=""',
        'if [ -n "$prev" ] && [ "$prev" != \'0123456789abcdef0123456789abcdef01234567\' ] && git -C "$mirror" cat-file -e "$prev^{commit}" 2>/dev/null; then',
        '  changelog=$(git -C "$mirror" log --no-merges --format=\'%h %s\' "$prev..0123456789abcdef0123456789abcdef01234567")',
        "fi",
        'nostromo_result built="$built" previous="$prev" changelog="$changelog"',
      ]),
    );
  });

  it("nostromo_pip_install: offline from the wheelhouse first (hashes required when the file has them), else download what is missing and install", () => {
    assert.strictEqual(
      PIP_INSTALL_FUNCTION,
      [
        "nostromo_pip_install() {",
        '  wheels="$shared/wheelhouse"; mkdir -p "$wheels" "$shared/pip-cache"',
        '  hashes=""; if grep -q -- \'--hash=\' "$1"; then hashes=--require-hashes; fi',
        '  if pip install --quiet --disable-pip-version-check --no-index --find-links "$wheels" $hashes -r "$1" 2>"$nostromo_tmp/pip-offline"; then',
        '    echo "pip: $1 installed offline from $wheels"',
        "    return 0",
        "  fi",
        '  echo "pip: $1 needs what $wheels lacks ($(tail -n 1 "$nostromo_tmp/pip-offline")): downloading it"',
        '  pip download --quiet --disable-pip-version-check $hashes --cache-dir "$shared/pip-cache" -d "$wheels" -r "$1"',
        '  pip install --quiet --disable-pip-version-check --cache-dir "$shared/pip-cache" --find-links "$wheels" $hashes -r "$1"',
        '  echo "pip: $1 installed; its files are kept in $wheels"',
        "}",
      ].join("\n"),
    );
  });

  it("migration of a python app runs with the release's .venv first on PATH", () => {
    const { cfg, app } = pythonConfig();
    assert.strictEqual(
      migrateScript(cfg, app, SHA),
      stepText(cfg, [
        eventFunction("/srv/nostromo"),
        "cd '/srv/nostromo/releases/iact/0123456789abcdef0123456789abcdef01234567'",
        "set -a; . ./.env; set +a",
        "export VIRTUAL_ENV='/srv/nostromo/releases/iact/0123456789abcdef0123456789abcdef01234567'/.venv PATH='/srv/nostromo/releases/iact/0123456789abcdef0123456789abcdef01234567'/.venv/bin:\"$PATH\"",
        'echo "migrating iact@0123456789ab"',
        "if ! bash -ec 'python manage.py migrate --noinput'; then",
        "  nostromo_event migration app='iact' sha='0123456789abcdef0123456789abcdef01234567' backup='' status=failed",
        '  echo "migration of iact@0123456789ab failed; nothing was switched, the old release still serves." >&2',
        "  exit 1",
        "fi",
        "nostromo_event migration app='iact' sha='0123456789abcdef0123456789abcdef01234567' backup='' status=succeeded",
        "nostromo_result migrated='0123456789abcdef0123456789abcdef01234567'",
      ]),
    );
  });

  it("migrateCheck (runbook 003's showmigrations) runs after the migration, before any switch; a failure shows its output's tail", () => {
    const { cfg, app } = pythonConfig();
    const checked = { ...app, migrateCheck: "python manage.py migrate --check" };
    const result = "nostromo_result migrated='0123456789abcdef0123456789abcdef01234567'";
    assert.strictEqual(
      migrateScript(cfg, checked, SHA),
      replaced(migrateScript(cfg, app, SHA).split("\n"), result, [
        "if ! check_out=$(bash -ec 'python manage.py migrate --check' 2>&1); then",
        `  printf '%s\\n' "$check_out" | tail -n 20 >&2`,
        `  echo "migration check of iact@0123456789ab failed ("'python manage.py migrate --check'"): migrations of this release are not applied; nothing was switched, the old release still serves" >&2`,
        "  exit 1",
        "fi",
        'echo "migration check of iact@0123456789ab passed"',
        result,
      ]).join("\n"),
    );
  });

  it("start command: .env loaded, a python release's .venv/bin first on PATH, then exec", () => {
    const { app } = pythonConfig();
    assert.strictEqual(venvLine('"$release"'), 'export VIRTUAL_ENV="$release"/.venv PATH="$release"/.venv/bin:"$PATH"');
    assert.strictEqual(
      startCommand(app, "gunicorn x"),
      'set -a; . ./.env; [ ! -f ./.release.env ] || . ./.release.env; set +a; export VIRTUAL_ENV="$PWD"/.venv PATH="$PWD"/.venv/bin:"$PATH"; exec gunicorn x',
    );
    assert.strictEqual(
      startCommand(parse().apps[0], "node w.js"),
      "set -a; . ./.env; [ ! -f ./.release.env ] || . ./.release.env; set +a; exec node w.js",
    );
  });

  it("slot unit of a python app: its start command with the slot's .venv", () => {
    const { cfg, app } = pythonConfig();
    assert.strictEqual(
      systemdUnit(cfg.server, app, "blue"),
      [
        "[Unit]",
        "Description=nostromo iact (blue slot)",
        "After=network.target",
        "",
        "[Service]",
        "Type=simple",
        "User=deploy",
        "WorkingDirectory=/srv/nostromo/slots/iact/blue",
        'Environment="PORT=8101"',
        'ExecStart=/bin/bash -c "set -a; . ./.env; [ ! -f ./.release.env ] || . ./.release.env; set +a; export VIRTUAL_ENV=\\"$$PWD\\"/.venv PATH=\\"$$PWD\\"/.venv/bin:\\"$$PATH\\"; exec gunicorn iact.wsgi --bind 127.0.0.1:$$PORT"',
        "Restart=on-failure",
        "RestartSec=2",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=30",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
      ].join("\n"),
    );
  });

  it("preflight of a python app: python3 needed, and able to make virtualenvs", () => {
    const { cfg } = pythonConfig();
    assert.deepStrictEqual(preflightLines(cfg), [
      'missing=""',
      "for c in 'git' 'tar' 'curl' 'node' 'npm' 'flock' 'mktemp' 'timeout' 'pm2' 'ln' 'systemctl' 'python3' 'pg_dump' 'pg_restore' 'psql' 'sha256sum' 'nginx'; do command -v \"$c\" >/dev/null 2>&1 || missing=\"$missing $c\"; done",
      '[ -z "$missing" ] || { echo "preflight: missing on $(hostname): $missing (PATH=$PATH)" >&2; exit 1; }',
      "[ -w '/etc/systemd/system' ] || { echo \"preflight: $(id -un)@$(hostname) cannot write /etc/systemd/system: apps with manager systemd need a deploy user that can (root), to install their slots' units\" >&2; exit 1; }",
      "mkdir -p '/srv/nostromo/releases' '/srv/nostromo/current' '/srv/nostromo/shared' '/srv/nostromo/slots' '/srv/nostromo/repos' '/srv/nostromo/backups' '/srv/nostromo/nginx-upstreams'",
      "free=$(df -Pm '/srv/nostromo' | awk 'NR==2 {print $4}')",
      "python3 -c 'import ensurepip, venv' 2>/dev/null || { echo \"preflight: python3 on $(hostname) cannot make virtualenvs (install python3-venv), needed by the python apps\" >&2; exit 1; }",
      '[ "$free" -ge 512 ] || { echo "preflight: only $free MiB free under /srv/nostromo, need 512 MiB (server.minFreeMiB)" >&2; exit 1; }',
      'ls /etc/systemd/system/pm2-*.service /etc/init.d/pm2-* >/dev/null 2>&1 || echo "preflight: warning: PM2 has no boot hook on $(hostname) (run \\`pm2 startup\\` once as $(id -un)); after a reboot nothing serves until \\`pulumi up --refresh\\`" >&2',
      'echo "preflight ok: $free MiB free"',
    ]);
  });
});
