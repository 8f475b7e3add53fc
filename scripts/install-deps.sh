#!/usr/bin/env bash
# npm ci when package-lock.json changed since the last install. Install scripts are skipped:
# ssh2's optional native speed-ups are not needed, and nothing else needs one.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  start=$SECONDS
  npm ci --ignore-scripts --no-audit --no-fund >&2
  echo "install-deps: npm ci in $((SECONDS - start)) s" >&2
fi
# The policy pack (policy/) has its own dependencies: the engine runs it from its own folder.
if [ ! -f policy/node_modules/.package-lock.json ] || [ policy/package-lock.json -nt policy/node_modules/.package-lock.json ]; then
  start=$SECONDS
  npm ci --ignore-scripts --no-audit --no-fund --prefix policy >&2
  echo "install-deps: npm ci of the policy pack in $((SECONDS - start)) s" >&2
fi
