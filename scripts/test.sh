#!/usr/bin/env bash
# The test command (README): installs what it needs, then runs every tier once.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/install-pulumi.sh)"
eval "$(scripts/install-target-deps.sh)"
eval "$(scripts/install-systemd-host-deps.sh)"
scripts/install-deps.sh
start=$SECONDS
scripts/lint.sh
npx --no-install mocha "$@"
echo "test: all tiers ran in $((SECONDS - start)) s"
