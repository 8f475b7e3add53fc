#!/usr/bin/env bash
# Installs what `pulumi up` of this project needs, offline, cached outside the repo:
#   - Node.js >= 22 (from the npm registry when the machine's node is older);
#   - the Pulumi CLI, built from the Go module proxy at the pinned version;
#   - the Node.js language host, and the SDK's dynamic-provider and policy scripts.
# Idempotent: a second run only checks versions. Prints what it did and how long each step took.
#
# Use: eval "$(scripts/install-pulumi.sh)"   (install, then export the environment it prints)
# Cache: $NOSTROMO_CACHE (default ~/.cache/nostromo).

_np_main() {
  set -euo pipefail
  local here root
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  root=$(dirname "$here")
  # shellcheck source=engine-versions.env
  . "$here/engine-versions.env"

  local cache=${NOSTROMO_CACHE:-$HOME/.cache/nostromo}
  local engine="$cache/pulumi-v$PULUMI_VERSION"
  mkdir -p "$cache"

  _np_say() { printf 'install-pulumi: %s\n' "$*" >&2; }
  _np_die() { printf 'install-pulumi: error: %s\n' "$*" >&2; return 1; }

  # --- Node.js >= NODE_MAJOR ------------------------------------------------------------
  local node_bin=""
  if command -v node >/dev/null 2>&1 &&
     [ "$(node -p 'process.versions.node.split(".")[0]')" -ge "$NODE_MAJOR" ]; then
    node_bin=$(dirname "$(command -v node)")
    _np_say "node $(node --version) on PATH: used as it is"
  else
    node_bin="$cache/node$NODE_MAJOR/node_modules/node/bin"
    if [ ! -x "$node_bin/node" ]; then
      command -v npm >/dev/null 2>&1 ||
        { _np_die "Node.js >= $NODE_MAJOR is needed and there is no npm to install it: install Node.js $NODE_MAJOR (e.g. apt-get install nodejs npm) and run again"; return 1; }
      local start=$SECONDS log="$cache/node$NODE_MAJOR.log"
      mkdir -p "$cache/node$NODE_MAJOR"
      npm install --prefix "$cache/node$NODE_MAJOR" --no-audit --no-fund "node@$NODE_MAJOR" >"$log" 2>&1 ||
        { _np_die "npm install node@$NODE_MAJOR failed; see $log"; return 1; }
      _np_say "node@$NODE_MAJOR from the npm registry: installed in $((SECONDS - start)) s"
    fi
    _np_say "node $("$node_bin/node" --version) from $node_bin"
  fi

  # --- Pulumi CLI, language host, SDK scripts ---------------------------------------------
  local bin="$engine/bin"
  # An engine cached before the policy analyzer was added gets only the analyzer script.
  if [ -x "$bin/pulumi" ] && [ ! -x "$bin/pulumi-analyzer-policy" ] && command -v go >/dev/null 2>&1; then
    _np_install_analyzer "$cache" "$bin" || return 1
  fi
  if command -v pulumi >/dev/null 2>&1 && [ "$(pulumi version 2>/dev/null)" = "v$PULUMI_VERSION" ] &&
     command -v pulumi-language-nodejs >/dev/null 2>&1 && command -v pulumi-analyzer-policy >/dev/null 2>&1; then
    bin=$(dirname "$(command -v pulumi)")
    _np_say "pulumi v$PULUMI_VERSION on PATH: used as it is ($bin)"
  elif [ -x "$bin/pulumi" ] && [ "$("$bin/pulumi" version 2>/dev/null)" = "v$PULUMI_VERSION" ] &&
       [ -x "$bin/pulumi-language-nodejs" ] && [ -x "$bin/pulumi-resource-pulumi-nodejs" ] &&
       [ -x "$bin/pulumi-analyzer-policy" ]; then
    _np_say "pulumi v$PULUMI_VERSION cached in $bin"
  else
    command -v go >/dev/null 2>&1 ||
      { _np_die "no pulumi v$PULUMI_VERSION on PATH and no Go toolchain to build it: install Go >= 1.25 (https://go.dev/doc/install, or apt-get install golang-go from backports) or put pulumi v$PULUMI_VERSION with pulumi-language-nodejs on PATH"; return 1; }
    _np_build_engine "$cache" "$bin" || return 1
  fi

  local home=${PULUMI_HOME:-$cache/pulumi-home}
  mkdir -p "$home"
  # Policy packs (policy/PulumiPolicy.yaml, runtime $PULUMI_POLICY_RUNTIME) are run by the analyzer
  # plugin pulumi-analyzer-policy-<runtime>, looked up in PULUMI_HOME's plugin cache (ambient plugins
  # are ignored): install the SDK's script there under that name.
  local policy_plugin="policy-$PULUMI_POLICY_RUNTIME" pver=$PULUMI_LANGUAGE_HOST_SDK_VERSION
  if [ ! -x "$home/plugins/analyzer-$policy_plugin-v$pver/pulumi-analyzer-$policy_plugin" ]; then
    local ptmp
    ptmp=$(mktemp -d)
    install -m 755 "$bin/pulumi-analyzer-policy" "$ptmp/pulumi-analyzer-$policy_plugin"
    tar -C "$ptmp" -czf "$ptmp/plugin.tgz" "pulumi-analyzer-$policy_plugin"
    PULUMI_HOME=$home "$bin/pulumi" plugin install analyzer "$policy_plugin" "$pver" --file "$ptmp/plugin.tgz" >&2 ||
      { rm -rf "$ptmp"; _np_die "could not install the policy analyzer plugin into $home"; return 1; }
    rm -rf "$ptmp"
    _np_say "policy analyzer pulumi-analyzer-$policy_plugin v$pver installed in $home/plugins"
  fi
  _np_say "ready: pulumi $("$bin/pulumi" version) at $bin, node $("$node_bin/node" --version)"
  # The environment every pulumi run of this project uses: offline, no ambient plugins.
  printf 'export PATH=%q:"$PATH"\n' "$bin:$node_bin"
  printf 'export PULUMI_HOME=%q\n' "$home"
  printf 'export PULUMI_SKIP_UPDATE_CHECK=true\n'
  printf 'export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true\n'
  printf 'export PULUMI_IGNORE_AMBIENT_PLUGINS=true\n'
  # Every node process of a run (the program, the dynamic provider, the tools) keeps its compiled
  # modules here: the Pulumi SDK then loads in about half the time (bench/engine.ts).
  printf 'export NODE_COMPILE_CACHE=%q\n' "$cache/node-compile-cache"
}

# Builds pulumi, pulumi-language-nodejs and copies the SDK scripts into $2.
_np_build_engine() {
  local cache=$1 bin=$2 work="$1/build"
  mkdir -p "$work/cli" "$work/langhost" "$bin"
  export CGO_ENABLED=0 GOFLAGS=-mod=mod

  # The CLI module (pkg/v3) replaces sdk/v3 with a relative path, so `go install pkg@v` is refused:
  # a small module of ours requires pkg and sdk at one version and repeats the non-relative replace.
  cat >"$work/cli/go.mod" <<EOF
module nostromo.local/pulumi-cli

go 1.25

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e

require (
	github.com/pulumi/pulumi/pkg/v3 v$PULUMI_VERSION
	github.com/pulumi/pulumi/sdk/v3 v$PULUMI_VERSION
)
EOF
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"\n' >"$work/cli/tools.go"

  # The language host, from the last sdk/v3 release that still holds it (see engine-versions.env).
  cat >"$work/langhost/go.mod" <<EOF
module nostromo.local/pulumi-language-nodejs

go 1.18

replace golang.org/x/text => golang.org/x/text v0.3.6

require github.com/pulumi/pulumi/sdk/v3 v$PULUMI_LANGUAGE_HOST_SDK_VERSION
EOF
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs"\n' >"$work/langhost/tools.go"

  local vflag="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"
  _np_say "building the Pulumi engine from the Go module proxy (cold: several minutes on 2 cores)"
  # Both builds in parallel: the language host is small and finishes well before the CLI.
  (
    cd "$work/langhost" && go mod tidy && go build -trimpath -ldflags "-s -w $vflag=v$PULUMI_VERSION" \
      -o "$bin/pulumi-language-nodejs" github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs
  ) >"$work/langhost.log" 2>&1 &
  local lh_pid=$! start=$SECONDS
  if ! (cd "$work/cli" && go mod tidy && go build -trimpath -tags osusergo,grpcnotrace \
        -ldflags "-s -w $vflag=v$PULUMI_VERSION" -o "$bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) \
        >"$work/cli.log" 2>&1; then
    wait "$lh_pid" || true
    _np_die "pulumi CLI build failed; last lines of $work/cli.log:"; tail -n 20 "$work/cli.log" >&2; return 1
  fi
  _np_say "pulumi CLI v$PULUMI_VERSION: built in $((SECONDS - start)) s"
  if ! wait "$lh_pid"; then
    _np_die "language host build failed; last lines of $work/langhost.log:"; tail -n 20 "$work/langhost.log" >&2; return 1
  fi
  _np_say "language host (sdk v$PULUMI_LANGUAGE_HOST_SDK_VERSION): built beside the CLI"

  # Dynamic providers are launched through a script kept in the SDK module.
  local sdk_dir
  sdk_dir=$(cd "$work/cli" && go mod download -json "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION" |
            sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  install -m 755 "$sdk_dir/nodejs/dist/pulumi-resource-pulumi-nodejs" "$bin/" ||
    { _np_die "no pulumi-resource-pulumi-nodejs in the sdk module ($sdk_dir)"; return 1; }
  _np_install_analyzer "$cache" "$bin" || return 1
  _np_say "engine built in $((SECONDS - start)) s into $bin"
}

# Policy packs are run through a script kept in the sdk module up to the language host's version.
_np_install_analyzer() {
  local work="$1/build/langhost" bin=$2 sdk_dir
  mkdir -p "$work"
  [ -f "$work/go.mod" ] || printf 'module nostromo.local/analyzer\n\ngo 1.18\n' >"$work/go.mod"
  sdk_dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_LANGUAGE_HOST_SDK_VERSION" |
            sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  install -m 755 "$sdk_dir/nodejs/dist/pulumi-analyzer-policy" "$bin/" ||
    { _np_die "no pulumi-analyzer-policy in the sdk module ($sdk_dir)"; return 1; }
  _np_say "pulumi-analyzer-policy (sdk v$PULUMI_LANGUAGE_HOST_SDK_VERSION) installed beside pulumi"
}

_np_main "$@"
