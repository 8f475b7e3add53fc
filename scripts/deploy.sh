#!/usr/bin/env bash
# The main command (README): deploys the example system to this machine, stack `local`.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/install-pulumi.sh)"
eval "$(scripts/install-target-deps.sh)"
scripts/install-deps.sh
exec npx --no-install ts-node tools/deploy-local.ts "$@"
