#!/usr/bin/env bash
# Static checks, each named in its output: actionlint (with shellcheck) on the GitHub workflows,
# ESLint, Prettier, the TypeScript compiler (program, tests, policy pack), and npm audit of the
# runtime dependencies. Installs what it needs when missing: actionlint from the Go module proxy
# (cached in $NOSTROMO_CACHE/bin), shellcheck from Debian. Exit status: non-zero if any check fails.
#
# Use: scripts/lint.sh              (after scripts/install-deps.sh; node >= 22 on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

ACTIONLINT_VERSION=v1.7.12
cache=${NOSTROMO_CACHE:-$HOME/.cache/nostromo}
failed=()

say() { printf 'lint: %s\n' "$*" >&2; }
check() {
  local name=$1
  shift
  local start=$SECONDS
  if "$@"; then
    say "$name: ok ($((SECONDS - start)) s)"
  else
    say "$name: FAILED"
    failed+=("$name")
  fi
}

# --- tools ------------------------------------------------------------------------------------
if [ ! -x "$cache/bin/actionlint" ] || [ "$("$cache/bin/actionlint" -version | head -n 1)" != "$ACTIONLINT_VERSION" ]; then
  command -v go >/dev/null 2>&1 || { say "error: actionlint $ACTIONLINT_VERSION is built with Go, and there is no go on PATH"; exit 1; }
  say "installing actionlint $ACTIONLINT_VERSION from the Go module proxy"
  mkdir -p "$cache/bin"
  GOBIN="$cache/bin" CGO_ENABLED=0 go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
fi
if ! command -v shellcheck >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  say "installing shellcheck from Debian (actionlint runs it on the workflows' scripts)"
  $sudo apt-get install -y -qq shellcheck >&2 || { $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq shellcheck >&2; } ||
    { say "error: could not install shellcheck (apt-get install shellcheck)"; exit 1; }
fi

# npm audit of the runtime dependencies. Where the registry's advisory endpoint cannot be reached
# (a mirror that serves only GET, as on our build machines: 405), the audit is skipped with a
# warning, unless NOSTROMO_AUDIT_REQUIRED=1 (set in GitHub Actions) makes that a failure.
audit() {
  local out
  if out=$(npm audit --omit=dev --audit-level=high "$@" 2>&1); then
    printf '%s\n' "$out" | grep -v '^npm warn Unknown user config' | tail -n 3 >&2
    return 0
  fi
  if printf '%s' "$out" | grep -q -e 'audit endpoint returned an error' -e 'ENOAUDIT' -e 'Method Not Allowed'; then
    if [ "${NOSTROMO_AUDIT_REQUIRED:-}" = 1 ]; then
      say "npm audit: the advisory service cannot be reached ($(printf '%s' "$out" | grep -m 1 -o '[0-9]\{3\} [A-Za-z ]*- POST [^ ]*'))"
      return 1
    fi
    say "warning: npm audit skipped: the registry's advisory service cannot be reached (NOSTROMO_AUDIT_REQUIRED=1 makes this fail)"
    return 0
  fi
  printf '%s\n' "$out" >&2
  return 1
}

# --- checks -----------------------------------------------------------------------------------
check "actionlint + shellcheck (.github/workflows)" "$cache/bin/actionlint" -shellcheck "$(command -v shellcheck)"
check "eslint" npx --no-install eslint --max-warnings 0 .
check "prettier --check" npx --no-install prettier --check --log-level warn .
check "tsc (program and tests)" npx --no-install tsc --noEmit -p .
check "tsc (policy pack)" npx --no-install tsc --noEmit -p policy
# Runtime dependencies only: dev tools never reach a server. Accepted findings: README "Audit".
check "npm audit (runtime, high and above)" audit
check "npm audit (policy pack, high and above)" audit --prefix policy

if [ ${#failed[@]} -gt 0 ]; then
  say "failed: ${failed[*]}"
  exit 1
fi
say "all checks passed"
