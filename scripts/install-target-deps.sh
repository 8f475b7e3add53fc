#!/usr/bin/env bash
# Installs what the local deploy target (local/target.ts) runs: sshd, nginx, git, curl,
# rsync, the PostgreSQL tools (only when missing) from Debian, and PM2 from the npm registry;
# for the IACT example (Django + Celery): redis-server and python3-venv.
# Idempotent: a second run only checks. Logs go to stderr; stdout is the environment to export.
#
# Use: eval "$(scripts/install-target-deps.sh)"
# Cache: $NOSTROMO_CACHE (default ~/.cache/nostromo). Under CI=true a failed install is fatal.
set -euo pipefail

PM2_VERSION=7.0.4 # pinned: checked with `npm view pm2 version`
PG_TOOLS=(initdb pg_ctl pg_dump pg_restore)

say() { printf 'install-target-deps: %s\n' "$*" >&2; }
die() { printf 'install-target-deps: error: %s\n' "$*" >&2; exit 1; }

cache=${NOSTROMO_CACHE:-$HOME/.cache/nostromo}
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo -n"
# shellcheck source-path=SCRIPTDIR source=apt-install.sh
. "$(dirname "$0")/apt-install.sh"

# First directory holding all four PostgreSQL tools: PATH, /usr/local/bin, newest Debian major.
pg_bin_dir() {
  local d t ok
  local IFS=:
  # shellcheck disable=SC2206
  local dirs=($PATH /usr/local/bin)
  IFS=$'\n'
  dirs+=($(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r))
  for d in "${dirs[@]}"; do
    ok=1
    for t in "${PG_TOOLS[@]}"; do [ -x "$d/$t" ] || { ok=0; break; }; done
    [ "$ok" = 1 ] && { printf '%s\n' "$d"; return 0; }
  done
  return 1
}

nginx_running() { # any process named nginx (e.g. a system one)
  local c
  for c in /proc/[0-9]*/comm; do [ "$(cat "$c" 2>/dev/null)" = nginx ] && return 0; done
  return 1
}

# --- Debian packages --------------------------------------------------------------------
missing=()
for p in openssh-server nginx git curl rsync redis-server python3-venv; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
pg_bin_dir >/dev/null || missing+=(postgresql)

if [ ${#missing[@]} -eq 0 ]; then
  say "Debian packages present: openssh-server nginx git curl rsync redis-server python3-venv, PostgreSQL tools"
else
  start=$SECONDS
  say "installing ${missing[*]} with apt-get"
  nginx_before=0; nginx_running && nginx_before=1
  apt_install "${missing[@]}"
  # Safety net for hosts without policy-rc.d support: stop an nginx the install started on :80.
  if [ "$nginx_before" = 0 ] && nginx_running; then
    say "the nginx package started a system nginx: stopping it (ours uses its own config)"
    $sudo nginx -s quit 2>/dev/null || $sudo service nginx stop >&2 || true
  fi
  if [ ${#failed[@]} -gt 0 ]; then
    msg="apt-get install failed for: ${failed[*]}"
    [ "${CI:-}" = true ] && die "$msg"
    say "warning: $msg (install them yourself; the local target will not start without them)"
  else
    say "installed ${missing[*]} in $((SECONDS - start)) s"
  fi
fi
pg_bin=$(pg_bin_dir) || { [ "${CI:-}" = true ] && die "no directory with ${PG_TOOLS[*]}"; pg_bin=""; }
[ -n "$pg_bin" ] && say "PostgreSQL tools: $pg_bin"

# --- PM2 ----------------------------------------------------------------------------------
pm2_dir="$cache/pm2"
pm2_bin="$pm2_dir/node_modules/.bin"
have=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$pm2_dir/node_modules/pm2/package.json" 2>/dev/null || true)
if [ "$have" = "$PM2_VERSION" ] && [ -x "$pm2_bin/pm2" ]; then
  say "pm2 $PM2_VERSION cached in $pm2_dir"
else
  command -v npm >/dev/null 2>&1 || die "npm is needed to install pm2@$PM2_VERSION"
  start=$SECONDS
  mkdir -p "$pm2_dir"
  npm install --prefix "$pm2_dir" --no-audit --no-fund "pm2@$PM2_VERSION" >"$pm2_dir/install.log" 2>&1 ||
    die "npm install pm2@$PM2_VERSION failed (log: $pm2_dir/install.log)"
  say "pm2 $PM2_VERSION installed into $pm2_dir in $((SECONDS - start)) s"
fi

printf 'export PATH=%q:"$PATH"\n' "$pm2_bin${pg_bin:+:$pg_bin}"
