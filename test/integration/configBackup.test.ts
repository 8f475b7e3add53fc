import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DeployConfig, parseDeployConfig } from "../../lib/config";
import { configRestoreScript, configSurveyScript, parseConfigSurvey } from "../../lib/restore";
import { lockScript } from "../../lib/scripts";
import { validRaw } from "../support/validConfig";

/** Runs a built script with bash under `lease`, as the Command resource does on a server. */
function run(text: string, lease = "unit/lease-1"): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync("bash", ["-c", text], { encoding: "utf8", timeout: 60_000, env: { ...process.env, NOSTROMO_LEASE: lease } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function resultOf(stdout: string): Record<string, string> {
  const last = stdout.trim().split("\n").pop()!;
  assert.match(last, /^nostromo-result \{/);
  return JSON.parse(last.slice("nostromo-result ".length));
}

const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);
const tarList = (archive: string) => {
  const r = spawnSync("tar", ["-tzf", archive], { encoding: "utf8" });
  assert.strictEqual(r.status, 0, r.stderr);
  return r.stdout.split("\n").filter(Boolean);
};

/**
 * Issue 10: the config backup a deploy takes before its first change, run with bash against a
 * temporary root (the nginx site, PM2's dump and the shared .env files under it; the live link
 * beside them is no config), and the restore that puts an archive back.
 */
describe("integration: config backup and restore (built scripts, bash, a temp root)", () => {
  let root: string;
  let cfg: DeployConfig;
  let site: string;
  /** nginx's live link of the node app: which slot serves, switched by deploys alone. */
  let liveLink: string;
  let dump: string;
  let env: string;
  let backups: string;
  let taken: Record<string, string>;
  const SITE = "server { listen 127.0.0.1:8080; } # as deployed\n";

  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-config-"));
    const raw = validRaw();
    raw.server.root = root;
    raw.server.env = { PM2_HOME: path.join(root, "pm2") };
    raw.backup = { keep: 2 };
    raw.nginx.testCommand = `test ! -e ${root}/nginx-refuses`;
    raw.nginx.reloadCommand = `touch ${root}/reloaded`;
    cfg = parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
    backups = path.join(root, "backups");
    site = path.join(cfg.nginx.sitesDir, "nostromo.conf");
    liveLink = path.join(root, "nginx-upstreams", "orchestrator");
    dump = path.join(root, "pm2", "dump.pm2");
    env = path.join(root, "shared", "orchestrator", ".env");
    for (const f of [site, liveLink, dump, env]) fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(site, SITE, { mode: 0o644 });
    fs.symlinkSync("orchestrator.blue", liveLink);
    fs.writeFileSync(dump, "[]\n");
    fs.writeFileSync(env, "JWT_SECRET='v1'\n", { mode: 0o600 });
    // Earlier config archives (older stamps) and more database dumps than backup.keep.
    fs.mkdirSync(backups, { recursive: true });
    for (const s of ["1", "2", "3"]) {
      fs.writeFileSync(path.join(backups, `unit-config-20200101T00000${s}Z.tar.gz`), "old");
      fs.writeFileSync(path.join(backups, `unit-config-20200101T00000${s}Z.tar.gz.sha256`), "old");
      fs.writeFileSync(path.join(backups, `unit-20200101T00000${s}Z-aaaaaaaaaaaa.dump`), "dump");
      fs.writeFileSync(path.join(backups, `unit-20200101T00000${s}Z-aaaaaaaaaaaa.dump.sha256`), "dump");
    }
    fs.writeFileSync(path.join(backups, "safety-restore-20200101T000000Z.dump"), "safety");
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it("archives the files that exist (0600 in a 0700 folder, verified, sha256), names the missing ones, records a journal event", () => {
    // The lock step takes the archive once it holds the lock: its result names both.
    const r = run(lockScript(cfg));
    assert.strictEqual(r.code, 0, r.stderr);
    taken = resultOf(r.stdout);
    assert.match(taken.path, new RegExp(`^${backups}/unit-config-\\d{8}T\\d{6}Z\\.tar\\.gz$`));
    assert.strictEqual(taken.files, "3");
    assert.strictEqual(taken.lease, "unit/lease-1");
    assert.strictEqual(taken.stack, "unit");
    assert.strictEqual(fs.readFileSync(path.join(root, ".lock", "lease"), "utf8"), "unit/lease-1\n");
    assert.deepStrictEqual(tarList(taken.path), [site, dump, env].map((f) => f.slice(1)).sort());
    assert.strictEqual(mode(taken.path), "600");
    assert.strictEqual(mode(`${taken.path}.sha256`), "600");
    assert.strictEqual(mode(backups), "700");
    const sum = spawnSync("sha256sum", [taken.path], { encoding: "utf8" }).stdout.split(" ")[0];
    assert.strictEqual(taken.sha256, sum);
    assert.strictEqual(fs.readFileSync(`${taken.path}.sha256`, "utf8"), `${sum}  ${path.basename(taken.path)}\n`);
    // sevastopol has no .env yet (a first deploy); PM2 apps only: no units.
    assert.match(r.stdout, new RegExp(`config backup: not there, skipped: ${root}/shared/sevastopol/\\.env`));
    assert.match(r.stdout, /config backup: not there, skipped: \/etc\/systemd\/system\/nostromo-orchestrator-\*\.service/);
    const events = fs
      .readFileSync(path.join(root, "deploys.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const ev = events.find((e) => e.event === "config-backup");
    assert.strictEqual(ev.path, taken.path);
    assert.strictEqual(ev.sha256, sum);
    assert.strictEqual(ev.count, 3);
    assert.deepStrictEqual(ev.files, [site, dump, env].sort());
    assert.strictEqual(ev.lease, "unit/lease-1");
    // Modes are kept in the archive: the .env comes back 0600.
    const listing = spawnSync("tar", ["-tzvf", taken.path], { encoding: "utf8" }).stdout;
    assert.match(listing, /^-rw------- .*shared\/orchestrator\/\.env$/m);
    // The step took the deploy lock, as every step does; the deploy's record step releases it.
    assert.strictEqual(fs.readFileSync(path.join(root, ".lock", "lease"), "utf8").trim(), "unit/lease-1");
    fs.rmSync(path.join(root, ".lock"), { recursive: true });
  });

  it("keeps the newest backup.keep config archives and never deletes a database dump", () => {
    const names = fs.readdirSync(backups).sort();
    assert.deepStrictEqual(
      names.filter((n) => n.includes("-config-")),
      [
        path.basename(taken.path),
        `${path.basename(taken.path)}.sha256`,
        "unit-config-20200101T000003Z.tar.gz",
        "unit-config-20200101T000003Z.tar.gz.sha256",
      ].sort(),
    );
    assert.strictEqual(names.filter((n) => n.endsWith(".dump")).length, 4, names.join(" "));
    assert.strictEqual(names.filter((n) => n.endsWith(".dump.sha256")).length, 3, names.join(" "));
    assert.ok(!names.some((n) => n.startsWith(".partial")), names.join(" "));
  });

  it("the survey says what differs from the server now; the restore puts a changed site file back (mode too), recreates a deleted .env, reloads nginx", () => {
    fs.writeFileSync(site, "server { broken by hand }\n");
    fs.chmodSync(site, 0o600);
    fs.rmSync(env);
    // A later deploy switched traffic to the other slot (health-gated): a restore must not undo that.
    fs.unlinkSync(liveLink);
    fs.symlinkSync("orchestrator.green", liveLink);
    const surveyed = run(configSurveyScript(cfg, taken.path));
    assert.strictEqual(surveyed.code, 0, surveyed.stderr);
    const survey = parseConfigSurvey(surveyed.stdout);
    assert.strictEqual(survey.sha256, taken.sha256);
    assert.strictEqual(survey.recorded, taken.sha256);
    assert.deepStrictEqual(Object.fromEntries(survey.files.map((f) => [f.path, `${f.state} ${f.mode}`])), {
      [site]: "differs 644",
      [env]: "absent 600",
      [dump]: "same 644",
    });

    const r = run(configRestoreScript(cfg, taken.path, taken.sha256));
    assert.strictEqual(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout.trim().split("\n").pop()!);
    assert.strictEqual(info.files, 3);
    assert.strictEqual(fs.readlinkSync(liveLink), "orchestrator.green", "the restore switched traffic to an unchecked slot");
    assert.strictEqual(fs.readFileSync(site, "utf8"), SITE);
    assert.strictEqual(mode(site), "644");
    assert.strictEqual(fs.readFileSync(env, "utf8"), "JWT_SECRET='v1'\n");
    assert.strictEqual(mode(env), "600");
    assert.ok(fs.existsSync(path.join(root, "reloaded")), "nginx was not reloaded");
    assert.ok(!fs.existsSync(path.join(root, ".lock")), "the restore left the deploy lock");
    // The files as they were before the restore, kept aside (never rotated by the deploy).
    assert.match(info.safety, new RegExp(`^${backups}/safety-config-unit-\\d{8}T\\d{6}Z\\.tar\\.gz$`));
    assert.strictEqual(mode(info.safety), "600");
    assert.deepStrictEqual(tarList(info.safety), [site, dump].map((f) => f.slice(1)).sort());
    const ev = fs
      .readFileSync(path.join(root, "deploys.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
      .find((e) => e.event === "config-restore");
    assert.strictEqual(ev.archive, taken.path);
    assert.strictEqual(ev.safety, info.safety);
    assert.deepStrictEqual(
      Object.fromEntries(parseConfigSurvey(run(configSurveyScript(cfg, taken.path)).stdout).files.map((f) => [f.path, f.state])),
      { [site]: "same", [env]: "same", [dump]: "same" },
    );
  });

  it("refused, nothing changed: a wrong sha256, a deploy holding the lock; nginx refusing the result puts every file back", () => {
    fs.writeFileSync(site, "edited\n");
    const wrong = run(configRestoreScript(cfg, taken.path, "0".repeat(64)));
    assert.strictEqual(wrong.code, 3);
    assert.match(wrong.stderr, /not the recorded 0{64}; nothing was changed/);
    fs.mkdirSync(path.join(root, ".lock"));
    fs.writeFileSync(path.join(root, ".lock", "stack"), "unit\n");
    const locked = run(configRestoreScript(cfg, taken.path, taken.sha256));
    assert.strictEqual(locked.code, 3);
    assert.match(locked.stderr, /the deploy lock is held by stack 'unit'.*nothing was changed/);
    fs.rmSync(path.join(root, ".lock"), { recursive: true });
    assert.strictEqual(fs.readFileSync(site, "utf8"), "edited\n");

    fs.rmSync(env);
    fs.writeFileSync(path.join(root, "nginx-refuses"), "");
    const refused = run(configRestoreScript(cfg, taken.path, taken.sha256));
    assert.strictEqual(refused.code, 1);
    assert.match(refused.stderr, /nginx rejected the restored files; every file was put back as it was/);
    assert.strictEqual(fs.readFileSync(site, "utf8"), "edited\n");
    assert.ok(!fs.existsSync(env), "a file absent before the refused restore stayed");
    assert.ok(!fs.existsSync(path.join(root, ".lock")));
  });

  it("an archive made before the live link: its upstream include is kept out (listed as kept), the rest is put back", () => {
    fs.rmSync(path.join(root, "nginx-refuses"), { force: true });
    const include = path.join(root, "nginx-upstreams", "orchestrator.conf");
    fs.writeFileSync(include, "server 127.0.0.1:8000;\n");
    fs.writeFileSync(site, SITE);
    const old = path.join(backups, "unit-config-20200101T000009Z.tar.gz");
    const made = spawnSync("tar", ["-czf", old, "-C", "/", include.slice(1), site.slice(1)], { encoding: "utf8" });
    assert.strictEqual(made.status, 0, made.stderr);
    fs.rmSync(include);
    fs.writeFileSync(site, "edited\n");
    const sum = spawnSync("sha256sum", [old], { encoding: "utf8" }).stdout.split(" ")[0];
    const r = run(configRestoreScript(cfg, old, sum));
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, /kept as it is \(the live slot is switched only by a deploy, after its health gate\): \S+orchestrator\.conf/);
    assert.ok(!fs.existsSync(include), "the restore brought back an include that would send traffic to a slot nothing checked");
    assert.strictEqual(fs.readFileSync(site, "utf8"), SITE);
    assert.strictEqual(fs.readlinkSync(liveLink), "orchestrator.green");
  });
});
