#!/usr/bin/env bash
# CI: gives git read access to the app repositories the stacks name (the program resolves each
# app's ref with `git ls-remote`). APPS_SSH_KEY: a deploy key with read access to them (secret);
# APPS_KNOWN_HOSTS: their hosts' keys, known_hosts lines (e.g. GitHub's published keys). Without a
# key, nothing is done (public https repositories need none).
set -euo pipefail
if [ -z "${APPS_SSH_KEY:-}" ]; then
  echo "ci-git-access: no APPS_SSH_KEY: using git without a key" >&2
  exit 0
fi
if [ -z "${APPS_KNOWN_HOSTS:-}" ]; then
  echo "ci-git-access: error: APPS_KNOWN_HOSTS is required with APPS_SSH_KEY (pin the git host's key)" >&2
  exit 1
fi
dir="${RUNNER_TEMP:-$(mktemp -d)}/git-ssh"
mkdir -p "$dir"
chmod 700 "$dir"
printf '%s\n' "$APPS_SSH_KEY" >"$dir/key"
printf '%s\n' "$APPS_KNOWN_HOSTS" >"$dir/known_hosts"
chmod 600 "$dir/key" "$dir/known_hosts"
cmd="ssh -i $dir/key -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$dir/known_hosts"
if [ -n "${GITHUB_ENV:-}" ]; then
  echo "GIT_SSH_COMMAND=$cmd" >>"$GITHUB_ENV"
else
  echo "export GIT_SSH_COMMAND='$cmd'"
fi
echo "ci-git-access: git uses the deploy key for ssh remotes" >&2
