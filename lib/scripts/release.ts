/** A release folder: fetched, installed, built, its .env, its migration. */
import { AppConfig, DeployConfig } from "../config";
import { quote } from "../shell";
import { eventFunction } from "./journal";
import { layout } from "./layout";
import { stepScript } from "./lock";

/** A command as an error names it: its first line, at most 80 characters. */
const firstLine = (cmd: string) => {
  const line = cmd.trim().split("\n")[0];
  return line.length > 80 ? `${line.slice(0, 77)}...` : line;
};

/**
 * Fetches `sha` into releases/<app>/<sha>, links the shared .env (read from standard input,
 * written 0600), installs and builds. A release already built for that SHA is kept as it is.
 * Result: built (`built` or `kept`), previous (the SHA serving before, or empty), changelog (the
 * commits since it, `<short sha> <subject>` per line).
 */
export function releaseScript(cfg: DeployConfig, app: AppConfig, sha: string): string {
  const { server } = cfg;
  const L = layout(server.root, app.name);
  const release = `${L.releases}/${sha}`;
  const python = app.kind === "python";
  return stepScript(
    cfg,
    `mirror=${quote(L.mirror)}; release=${quote(release)}; shared=${quote(L.shared)}`,
    `nostromo_phase=""`,
    `nostromo_cleanup() { [ -z "$nostromo_phase" ] || echo "$nostromo_phase of ${app.name}@${sha.slice(0, 12)} failed; nothing was switched, the old release still serves" >&2; }`,
    `mkdir -p ${quote(L.releases)} "$shared" ${quote(`${server.root}/repos`)}`,
    // Folders nginx serves that every release writes into (collectstatic): kept across releases,
    // so the files a page of the old release names still answer during the overlap.
    ...(app.staticFolders ?? []).map((f) => `mkdir -p ${quote(f.dir)}`),
    // The .env is rendered on every run: config and secrets may change without a new SHA.
    `(umask 077; cat > "$shared/.env.new") && mv -f "$shared/.env.new" "$shared/.env"`,
    // Git's own output is kept and shown with the repository when it fails (never --quiet: it
    // hides why a fetch was refused). The mirror's origin follows apps.<app>.repo when it changes.
    `if [ ! -d "$mirror" ]; then`,
    `  if ! git_out=$(git clone --mirror ${quote(app.repo)} "$mirror" 2>&1); then printf 'release: git clone --mirror of %s failed:\\n%s\\n' ${quote(app.repo)} "$git_out" >&2; exit 1; fi`,
    `fi`,
    `if [ "$(git -C "$mirror" config --get remote.origin.url)" != ${quote(app.repo)} ]; then`,
    `  git -C "$mirror" remote set-url origin ${quote(app.repo)}`,
    `  echo "release: mirror origin set to "${quote(app.repo)}`,
    `fi`,
    // Forced refspecs: a tag moved on the remote (git tag -f) is moved here too, not refused.
    `if ! git -C "$mirror" cat-file -e ${quote(`${sha}^{commit}`)} 2>/dev/null; then`,
    `  if ! git_out=$(git -C "$mirror" fetch --prune origin ${quote("+refs/heads/*:refs/heads/*")} ${quote("+refs/tags/*:refs/tags/*")} 2>&1); then printf 'release: git fetch from %s failed:\\n%s\\n' ${quote(app.repo)} "$git_out" >&2; exit 1; fi`,
    `  [ -z "$git_out" ] || printf '%s\\n' "$git_out"`,
    `fi`,
    `git -C "$mirror" cat-file -e ${quote(`${sha}^{commit}`)} || { echo "release: commit ${sha} not found in "${quote(app.repo)} >&2; exit 1; }`,
    `if [ -f "$release/.nostromo-built" ]; then`,
    `  built=kept`,
    `  echo "release ${app.name}@${sha.slice(0, 12)} already built: kept"`,
    `else`,
    // A virtualenv cannot move (its scripts name its path): a python release is built where it
    // stays, and counts as built only once .nostromo-built is there, as any release.
    python ? `  tmp="$release"` : `  tmp=${quote(`${L.releases}/.${sha}.partial`)}`,
    `  rm -rf "$tmp" && mkdir -p "$tmp"`,
    `  git -C "$mirror" archive ${quote(sha)} | tar -x -C "$tmp"`,
    `  ln -sfn "$shared/.env" "$tmp/.env"`,
    `  printf '%s\\n' ${quote(sha)} > "$tmp/REVISION"`,
    `  cd "$tmp"`,
    ...(python ? [`  python3 -m venv .venv`, `  ${venvLine('"$release"')}`, PIP_INSTALL_FUNCTION.replace(/^/gm, "  ")] : []),
    // A failing install or build says which, and that nothing took traffic (the exit handler).
    `  nostromo_phase=${quote(`install (${firstLine(app.install)})`)}`,
    `  ${app.install}`,
    ...(app.build ? [`  nostromo_phase=${quote(`build (${firstLine(app.build)})`)}`, `  ${app.build}`] : []),
    `  nostromo_phase=""`,
    `  touch .nostromo-built`,
    `  cd /`,
    python ? undefined : `  rm -rf "$release" && mv -T "$tmp" "$release"`,
    `  built=built`,
    `  echo "release ${app.name}@${sha.slice(0, 12)} built"`,
    `fi`,
    // APP_VERSION belongs to the release, not to the shared .env: an old release restarted (the
    // idle slot after a new environment, a crash during a refused deploy) reports its own.
    app.version
      ? `printf '%s\\n' ${quote(`APP_VERSION=${quote(app.version)}`)} > "$release/${RELEASE_ENV}"`
      : `rm -f "$release/${RELEASE_ENV}"`,
    `prev=$(basename "$(readlink ${quote(L.current)} 2>/dev/null)" 2>/dev/null || true)`,
    `changelog=""`,
    `if [ -n "$prev" ] && [ "$prev" != ${quote(sha)} ] && git -C "$mirror" cat-file -e "$prev^{commit}" 2>/dev/null; then`,
    `  changelog=$(git -C "$mirror" log --no-merges --format='%h %s' "$prev..${sha}")`,
    `fi`,
    `nostromo_result built="$built" previous="$prev" changelog="$changelog"`,
  );
}

/**
 * Runs the app's migration inside the new release, with the release's .env loaded. A failure
 * names the backup taken just before it. Either way a `migration` event in the journal names the
 * backup it ran after, so a restore can find the one taken just before it.
 */
export function migrateScript(cfg: DeployConfig, app: AppConfig, sha: string, backupPath?: string): string {
  const release = `${layout(cfg.server.root, app.name).releases}/${sha}`;
  const event = (status: string) =>
    `nostromo_event migration app=${quote(app.name)} sha=${quote(sha)} backup=${quote(backupPath ?? "")} status=${status}`;
  return stepScript(
    cfg,
    eventFunction(cfg.server.root),
    `cd ${quote(release)}`,
    `set -a; . ./.env; set +a`,
    app.kind === "python" ? venvLine(quote(release)) : undefined,
    `echo "migrating ${app.name}@${sha.slice(0, 12)}"`,
    // Its own bash with -e: inside `if !` a failing command in the middle would not stop it.
    `if ! bash -ec ${quote(app.migrate!)}; then`,
    `  ${event("failed")}`,
    `  echo "migration of ${app.name}@${sha.slice(0, 12)} failed; nothing was switched, the old release still serves."${backupPath ? `" Database backup taken just before it: "${quote(backupPath)}` : ""} >&2`,
    `  exit 1`,
    `fi`,
    event("succeeded"),
    // Runbook 003's `showmigrations`: nothing of this release left unapplied, before any switch.
    ...(app.migrateCheck
      ? [
          `if ! check_out=$(bash -ec ${quote(app.migrateCheck)} 2>&1); then`,
          `  printf '%s\\n' "$check_out" | tail -n 20 >&2`,
          `  echo "migration check of ${app.name}@${sha.slice(0, 12)} failed ("${quote(app.migrateCheck)}"): migrations of this release are not applied; nothing was switched, the old release still serves" >&2`,
          `  exit 1`,
          `fi`,
          `echo "migration check of ${app.name}@${sha.slice(0, 12)} passed"`,
        ]
      : []),
    `nostromo_result migrated=${quote(sha)}`,
  );
}

/**
 * The line that puts a python release's virtualenv first on PATH, `dir` being the release folder
 * as a shell word: its python, pip and console scripts (gunicorn, celery) win over the system's.
 */
export function venvLine(dir: string): string {
  return `export VIRTUAL_ENV=${dir}/.venv PATH=${dir}/.venv/bin:"$PATH"`;
}

/**
 * `nostromo_pip_install FILE` (a python app's default install, PIP_INSTALL): installs FILE into
 * the active virtualenv from the wheelhouse shared by the app's releases (<shared>/wheelhouse),
 * offline (--no-index); when that fails (new or changed pins), pip downloads what is missing into
 * it (its cache in <shared>/pip-cache) and installs again, preferring the wheelhouse. With hashes
 * in FILE every file is checked against them (--require-hashes), offline too.
 */
export const PIP_INSTALL_FUNCTION = [
  `nostromo_pip_install() {`,
  `  wheels="$shared/wheelhouse"; mkdir -p "$wheels" "$shared/pip-cache"`,
  `  hashes=""; if grep -q -- '--hash=' "$1"; then hashes=--require-hashes; fi`,
  `  if pip install --quiet --disable-pip-version-check --no-index --find-links "$wheels" $hashes -r "$1" 2>"$nostromo_tmp/pip-offline"; then`,
  `    echo "pip: $1 installed offline from $wheels"`,
  `    return 0`,
  `  fi`,
  `  echo "pip: $1 needs what $wheels lacks ($(tail -n 1 "$nostromo_tmp/pip-offline")): downloading it"`,
  `  pip download --quiet --disable-pip-version-check $hashes --cache-dir "$shared/pip-cache" -d "$wheels" -r "$1"`,
  `  pip install --quiet --disable-pip-version-check --cache-dir "$shared/pip-cache" --find-links "$wheels" $hashes -r "$1"`,
  `  echo "pip: $1 installed; its files are kept in $wheels"`,
  `}`,
].join("\n");

/** The release's own environment file (APP_VERSION), in its folder, loaded after the shared .env. */
export const RELEASE_ENV = ".release.env";

/**
 * What the app's .env holds: its config values, the secrets given, and the shared folders nginx
 * serves with their paths (`STATIC_ROOT`, `STATIC_URL`: collectstatic writes there). Not the
 * version: that is the release's (RELEASE_ENV).
 */
export function envEntries(app: AppConfig, values: Record<string, string>): Record<string, string> {
  const all: Record<string, string> = { ...app.env, ...values };
  for (const f of app.staticFolders ?? []) {
    all[f.dirVar] = f.dir;
    all[f.urlVar] = f.url;
  }
  return all;
}

/** The app's .env: config values and secrets, each shell-quoted (the file is sourced by bash). */
export function renderEnvFile(app: AppConfig, values: Record<string, string>): string {
  const all = envEntries(app, values);
  return Object.keys(all)
    .sort()
    .map((k) => `${k}=${quote(all[k])}\n`)
    .join("");
}
