# shellcheck shell=bash disable=SC2154
# Sourced by the set-up scripts: apt_install PKG... installs Debian packages without letting their
# scripts start system services (a policy-rc.d that says "no", only for this install, as in Docker
# images), and sets the array `failed` to the packages that did not install. Uses the caller's
# $sudo ("" as root, "sudo -n" otherwise).
apt_install() {
  local policy=""
  if [ ! -e /usr/sbin/policy-rc.d ] &&
     printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null 2>&1; then
    policy=/usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
    $sudo chmod 755 "$policy"
  fi
  export DEBIAN_FRONTEND=noninteractive
  failed=()
  if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "$@"; } >&2; then
    # Find which package failed, so the message can name it.
    local p
    for p in "$@"; do
      $sudo apt-get install -y -qq --no-install-recommends "$p" >&2 || failed+=("$p")
    done
  fi
  if [ -n "$policy" ]; then $sudo rm -f "$policy"; trap - EXIT; fi
}
