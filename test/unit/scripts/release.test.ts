import * as assert from "assert";
import { envEntries, eventFunction, migrateScript, releaseScript } from "../../../lib/scripts";
import { SHA, SHA2, parse, replaced, stepText } from "./fixture";

describe("unit: scripts/release (exact text)", () => {
  it("release of a node app: .env from stdin (0600), mirror following the repo fetched (forced refs, git's output shown on failure), archive installed and built once per SHA, changelog", () => {
    const cfg = parse();
    assert.strictEqual(
      releaseScript(cfg, cfg.apps[0], SHA),
      stepText(cfg, [
        "mirror='/srv/nostromo/repos/orchestrator.git'; release='/srv/nostromo/releases/orchestrator/0123456789abcdef0123456789abcdef01234567'; shared='/srv/nostromo/shared/orchestrator'",
        `nostromo_phase=""`,
        `nostromo_cleanup() { [ -z "$nostromo_phase" ] || echo "$nostromo_phase of orchestrator@0123456789ab failed; nothing was switched, the old release still serves" >&2; }`,
        `mkdir -p '/srv/nostromo/releases/orchestrator' "$shared" '/srv/nostromo/repos'`,
        `(umask 077; cat > "$shared/.env.new") && mv -f "$shared/.env.new" "$shared/.env"`,
        `if [ ! -d "$mirror" ]; then`,
        `  if ! git_out=$(git clone --mirror '/tmp/repos/orchestrator' "$mirror" 2>&1); then printf 'release: git clone --mirror of %s failed:\\n%s\\n' '/tmp/repos/orchestrator' "$git_out" >&2; exit 1; fi`,
        "fi",
        `if [ "$(git -C "$mirror" config --get remote.origin.url)" != '/tmp/repos/orchestrator' ]; then`,
        `  git -C "$mirror" remote set-url origin '/tmp/repos/orchestrator'`,
        `  echo "release: mirror origin set to "'/tmp/repos/orchestrator'`,
        "fi",
        `if ! git -C "$mirror" cat-file -e '0123456789abcdef0123456789abcdef01234567^{commit}' 2>/dev/null; then`,
        `  if ! git_out=$(git -C "$mirror" fetch --prune origin '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*' 2>&1); then printf 'release: git fetch from %s failed:\\n%s\\n' '/tmp/repos/orchestrator' "$git_out" >&2; exit 1; fi`,
        `  [ -z "$git_out" ] || printf '%s\\n' "$git_out"`,
        "fi",
        `git -C "$mirror" cat-file -e '0123456789abcdef0123456789abcdef01234567^{commit}' || { echo "release: commit 0123456789abcdef0123456789abcdef01234567 not found in "'/tmp/repos/orchestrator' >&2; exit 1; }`,
        `if [ -f "$release/.nostromo-built" ]; then`,
        "  built=kept",
        `  echo "release orchestrator@0123456789ab already built: kept"`,
        "else",
        "  tmp='/srv/nostromo/releases/orchestrator/.0123456789abcdef0123456789abcdef01234567.partial'",
        `  rm -rf "$tmp" && mkdir -p "$tmp"`,
        `  git -C "$mirror" archive '0123456789abcdef0123456789abcdef01234567' | tar -x -C "$tmp"`,
        `  ln -sfn "$shared/.env" "$tmp/.env"`,
        `  printf '%s\\n' '0123456789abcdef0123456789abcdef01234567' > "$tmp/REVISION"`,
        `  cd "$tmp"`,
        "  nostromo_phase='install (npm ci)'",
        "  npm ci",
        "  nostromo_phase='build (npm run build)'",
        "  npm run build",
        `  nostromo_phase=""`,
        "  touch .nostromo-built",
        "  cd /",
        `  rm -rf "$release" && mv -T "$tmp" "$release"`,
        "  built=built",
        `  echo "release orchestrator@0123456789ab built"`,
        "fi",
        `printf '%s\\n' 'APP_VERSION='\\''1.2.2'\\''' > "$release/.release.env"`,
        `prev=$(basename "$(readlink '/srv/nostromo/current/orchestrator' 2>/dev/null)" 2>/dev/null || true)`,
        `changelog=""`,
        `if [ -n "$prev" ] && [ "$prev" != '0123456789abcdef0123456789abcdef01234567' ] && git -C "$mirror" cat-file -e "$prev^{commit}" 2>/dev/null; then`,
        `  changelog=$(git -C "$mirror" log --no-merges --format='%h %s' "$prev..0123456789abcdef0123456789abcdef01234567")`,
        "fi",
        `nostromo_result built="$built" previous="$prev" changelog="$changelog"`,
      ]),
    );
  });

  it("release without a build command runs only the app's install", () => {
    const cfg = parse((raw) => {
      raw.apps.sevastopol.install = "npm ci --omit=dev";
      delete raw.apps.sevastopol.build;
    });
    assert.strictEqual(
      releaseScript(cfg, cfg.apps[1], SHA2),
      stepText(cfg, [
        "mirror='/srv/nostromo/repos/sevastopol.git'; release='/srv/nostromo/releases/sevastopol/fedcba9876543210fedcba9876543210fedcba98'; shared='/srv/nostromo/shared/sevastopol'",
        `nostromo_phase=""`,
        `nostromo_cleanup() { [ -z "$nostromo_phase" ] || echo "$nostromo_phase of sevastopol@fedcba987654 failed; nothing was switched, the old release still serves" >&2; }`,
        `mkdir -p '/srv/nostromo/releases/sevastopol' "$shared" '/srv/nostromo/repos'`,
        `(umask 077; cat > "$shared/.env.new") && mv -f "$shared/.env.new" "$shared/.env"`,
        `if [ ! -d "$mirror" ]; then`,
        `  if ! git_out=$(git clone --mirror '/tmp/repos/sevastopol' "$mirror" 2>&1); then printf 'release: git clone --mirror of %s failed:\\n%s\\n' '/tmp/repos/sevastopol' "$git_out" >&2; exit 1; fi`,
        "fi",
        `if [ "$(git -C "$mirror" config --get remote.origin.url)" != '/tmp/repos/sevastopol' ]; then`,
        `  git -C "$mirror" remote set-url origin '/tmp/repos/sevastopol'`,
        `  echo "release: mirror origin set to "'/tmp/repos/sevastopol'`,
        "fi",
        `if ! git -C "$mirror" cat-file -e 'fedcba9876543210fedcba9876543210fedcba98^{commit}' 2>/dev/null; then`,
        `  if ! git_out=$(git -C "$mirror" fetch --prune origin '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*' 2>&1); then printf 'release: git fetch from %s failed:\\n%s\\n' '/tmp/repos/sevastopol' "$git_out" >&2; exit 1; fi`,
        `  [ -z "$git_out" ] || printf '%s\\n' "$git_out"`,
        "fi",
        `git -C "$mirror" cat-file -e 'fedcba9876543210fedcba9876543210fedcba98^{commit}' || { echo "release: commit fedcba9876543210fedcba9876543210fedcba98 not found in "'/tmp/repos/sevastopol' >&2; exit 1; }`,
        `if [ -f "$release/.nostromo-built" ]; then`,
        "  built=kept",
        `  echo "release sevastopol@fedcba987654 already built: kept"`,
        "else",
        "  tmp='/srv/nostromo/releases/sevastopol/.fedcba9876543210fedcba9876543210fedcba98.partial'",
        `  rm -rf "$tmp" && mkdir -p "$tmp"`,
        `  git -C "$mirror" archive 'fedcba9876543210fedcba9876543210fedcba98' | tar -x -C "$tmp"`,
        `  ln -sfn "$shared/.env" "$tmp/.env"`,
        `  printf '%s\\n' 'fedcba9876543210fedcba9876543210fedcba98' > "$tmp/REVISION"`,
        `  cd "$tmp"`,
        "  nostromo_phase='install (npm ci --omit=dev)'",
        "  npm ci --omit=dev",
        `  nostromo_phase=""`,
        "  touch .nostromo-built",
        "  cd /",
        `  rm -rf "$release" && mv -T "$tmp" "$release"`,
        "  built=built",
        `  echo "release sevastopol@fedcba987654 built"`,
        "fi",
        `rm -f "$release/.release.env"`,
        `prev=$(basename "$(readlink '/srv/nostromo/current/sevastopol' 2>/dev/null)" 2>/dev/null || true)`,
        `changelog=""`,
        `if [ -n "$prev" ] && [ "$prev" != 'fedcba9876543210fedcba9876543210fedcba98' ] && git -C "$mirror" cat-file -e "$prev^{commit}" 2>/dev/null; then`,
        `  changelog=$(git -C "$mirror" log --no-merges --format='%h %s' "$prev..fedcba9876543210fedcba9876543210fedcba98")`,
        "fi",
        `nostromo_result built="$built" previous="$prev" changelog="$changelog"`,
      ]),
    );
  });

  it("migration in the release with its .env loaded; a failure names the backup taken before it; either way the journal names the backup it ran after", () => {
    const cfg = parse();
    assert.strictEqual(
      migrateScript(cfg, cfg.apps[0], SHA, "/srv/nostromo/backups/unit-20250101T000000Z-0123456789ab.dump"),
      stepText(cfg, [
        eventFunction("/srv/nostromo"),
        "cd '/srv/nostromo/releases/orchestrator/0123456789abcdef0123456789abcdef01234567'",
        "set -a; . ./.env; set +a",
        `echo "migrating orchestrator@0123456789ab"`,
        "if ! bash -ec 'npm run migrate:production'; then",
        "  nostromo_event migration app='orchestrator' sha='0123456789abcdef0123456789abcdef01234567' backup='/srv/nostromo/backups/unit-20250101T000000Z-0123456789ab.dump' status=failed",
        `  echo "migration of orchestrator@0123456789ab failed; nothing was switched, the old release still serves."" Database backup taken just before it: "'/srv/nostromo/backups/unit-20250101T000000Z-0123456789ab.dump' >&2`,
        "  exit 1",
        "fi",
        "nostromo_event migration app='orchestrator' sha='0123456789abcdef0123456789abcdef01234567' backup='/srv/nostromo/backups/unit-20250101T000000Z-0123456789ab.dump' status=succeeded",
        "nostromo_result migrated='0123456789abcdef0123456789abcdef01234567'",
      ]),
    );
  });

  it("migration without a backup says only that nothing was switched", () => {
    const cfg = parse();
    assert.strictEqual(
      migrateScript(cfg, cfg.apps[0], SHA),
      stepText(cfg, [
        eventFunction("/srv/nostromo"),
        "cd '/srv/nostromo/releases/orchestrator/0123456789abcdef0123456789abcdef01234567'",
        "set -a; . ./.env; set +a",
        `echo "migrating orchestrator@0123456789ab"`,
        "if ! bash -ec 'npm run migrate:production'; then",
        "  nostromo_event migration app='orchestrator' sha='0123456789abcdef0123456789abcdef01234567' backup='' status=failed",
        `  echo "migration of orchestrator@0123456789ab failed; nothing was switched, the old release still serves." >&2`,
        "  exit 1",
        "fi",
        "nostromo_event migration app='orchestrator' sha='0123456789abcdef0123456789abcdef01234567' backup='' status=succeeded",
        "nostromo_result migrated='0123456789abcdef0123456789abcdef01234567'",
      ]),
    );
  });

  it(".env entries: the app's env, then the values given (they win); never APP_VERSION (the release's own file has it)", () => {
    const cfg = parse((raw) => {
      raw.apps.orchestrator.env = { NODE_ENV: "production", LOG_LEVEL: "info" };
      raw.apps.sevastopol.env = { PUBLIC_URL: "/" };
    });
    assert.deepStrictEqual(envEntries(cfg.apps[0], { DATABASE_URL: "postgres://u:p@h/db", LOG_LEVEL: "debug" }), {
      NODE_ENV: "production",
      LOG_LEVEL: "debug",
      DATABASE_URL: "postgres://u:p@h/db",
    });
    assert.deepStrictEqual(envEntries(cfg.apps[1], {}), { PUBLIC_URL: "/" });
  });

  it("a folder routed with static (issue 10): made under shared/<app> before the build, its path and URL in the .env (STATIC_ROOT, STATIC_URL)", () => {
    const withRoutes = parse((raw) => {
      delete raw.nginx.site;
      raw.nginx.routes = [
        { path: "/api/", app: "orchestrator" },
        { path: "/assets/", app: "orchestrator", static: "static" },
      ];
    });
    const plain = parse();
    const mkdir = `mkdir -p '/srv/nostromo/releases/orchestrator' "$shared" '/srv/nostromo/repos'`;
    assert.strictEqual(
      releaseScript(withRoutes, withRoutes.apps[0], SHA),
      replaced(releaseScript(plain, plain.apps[0], SHA).split("\n"), mkdir, [
        mkdir,
        "mkdir -p '/srv/nostromo/shared/orchestrator/static'",
      ]).join("\n"),
    );
    assert.deepStrictEqual(envEntries(withRoutes.apps[0], { DATABASE_URL: "postgres://u:p@h/db" }), {
      DATABASE_URL: "postgres://u:p@h/db",
      STATIC_ROOT: "/srv/nostromo/shared/orchestrator/static",
      STATIC_URL: "/assets/",
    });
  });
});
