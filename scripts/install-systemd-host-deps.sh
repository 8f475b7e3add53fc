#!/usr/bin/env bash
# Installs what the systemd test host (test/support/systemdHost.ts) needs: Debian's docker.io
# (dockerd, started by hand by the tests), debootstrap (builds the host's Debian root once) and
# systemd (systemd-analyze verify, for the unit tests of our units); then npm from the npm
# registry into the cache, to be mounted read-only into the host beside this machine's node 22.
# Idempotent: a second run only checks. Logs go to stderr; stdout is the environment to export.
#
# Use: eval "$(scripts/install-systemd-host-deps.sh)"
# Cache: $NOSTROMO_CACHE (default ~/.cache/nostromo). Under CI=true any failure is fatal and
# names what failed; elsewhere it is a warning (the systemd tests then fail saying what is missing).
set -euo pipefail

NPM_VERSION=11.21.2 # pinned: checked with `npm view npm@11 version`

say() { printf 'install-systemd-host-deps: %s\n' "$*" >&2; }
fail() {
  if [ "${CI:-}" = true ]; then printf 'install-systemd-host-deps: error: %s\n' "$*" >&2; exit 1; fi
  say "warning: $*"
}

cache=${NOSTROMO_CACHE:-$HOME/.cache/nostromo}/systemd-host
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo -n"
# shellcheck source-path=SCRIPTDIR source=apt-install.sh
. "$(dirname "$0")/apt-install.sh"

# --- Debian packages: package → a file it provides ------------------------------------------
declare -A provides=([docker.io]=/usr/sbin/dockerd [debootstrap]=/usr/sbin/debootstrap [systemd]=/usr/bin/systemd-analyze)
missing=()
for p in docker.io debootstrap systemd; do
  [ -x "${provides[$p]}" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  say "Debian packages present: docker.io debootstrap systemd"
else
  start=$SECONDS
  say "installing ${missing[*]} with apt-get"
  apt_install "${missing[@]}"
  for p in "${missing[@]}"; do
    [ -x "${provides[$p]}" ] || { case " ${failed[*]} " in *" $p "*) ;; *) failed+=("$p") ;; esac; }
  done
  if [ ${#failed[@]} -gt 0 ]; then
    fail "apt-get install failed for: ${failed[*]}"
  else
    say "installed ${missing[*]} in $((SECONDS - start)) s"
  fi
fi

# --- npm for the host (node 22 itself is this machine's, mounted read-only) --------------------
npm_dir="$cache/npm"
have=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$npm_dir/node_modules/npm/package.json" 2>/dev/null || true)
if [ "$have" = "$NPM_VERSION" ] && [ -f "$npm_dir/node_modules/npm/bin/npm-cli.js" ]; then
  say "npm $NPM_VERSION cached in $npm_dir"
elif ! command -v npm >/dev/null 2>&1; then
  fail "npm is needed to install npm@$NPM_VERSION into $npm_dir"
else
  start=$SECONDS
  mkdir -p "$npm_dir"
  if npm install --prefix "$npm_dir" --no-audit --no-fund "npm@$NPM_VERSION" >"$npm_dir/install.log" 2>&1; then
    say "npm $NPM_VERSION installed into $npm_dir in $((SECONDS - start)) s"
  else
    fail "npm install npm@$NPM_VERSION failed (log: $npm_dir/install.log)"
  fi
fi

# The tests find everything by these fixed paths: nothing to export.
