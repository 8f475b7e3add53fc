import * as assert from "assert";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as os from "os";
import * as path from "path";
import { REPO_ROOT, RunResult, TempBackend, requirePulumi } from "../../local/backend";
import { makeExampleRepos } from "../../local/exampleRepos";
import { localConfig, localSecrets, outputOf } from "../../local/stack";
import { LocalTarget } from "../../local/target";
import { WEEKDAYS } from "../../lib/deployWindow";

/**
 * The policy pack (policy/) run by the real engine on previews of the real program, as CI runs it:
 * `pulumi preview --policy-pack policy`. A preview needs no server: only `git ls-remote` of the app
 * repos and config. The stack is named `production` (the backup rule applies there only), so the
 * program runs from a temporary project folder of links to the repo (the repo's own
 * Pulumi.production.yaml stays untouched), with a copy of the pack's folder beside it.
 */
describe("e2e: the policy pack refuses what the runbooks forbid", function () {
  let backend: TempBackend;
  let work: string;
  let project: string;
  let base: Record<string, unknown>;
  const stack = "production";

  /** A target that is never connected to: previews only read its coordinates. */
  const target = {
    root: "/opt/nostromo",
    ssh: {
      host: "127.0.0.1",
      port: 2222,
      user: "deploy",
      privateKey: "",
      hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeHostKeyForPolicyTests0000000000000000",
    },
    nginx: {
      port: 8080,
      confPath: "/etc/nginx/nginx.conf",
      reloadCommand: "nginx -s reload",
      testCommand: "nginx -t",
      sitesDir: "/etc/nginx/conf.d",
    },
    pm2Home: "/opt/pm2",
    binPath: ["/usr/local/bin"],
    env: {},
    stop: async () => undefined,
  } as LocalTarget;

  /** A project folder of links: the program and the pack from the repo, stack files of its own. */
  function linkProject(dir: string, program: string, files: string[]): void {
    fs.mkdirSync(path.join(dir, "policy"), { recursive: true });
    for (const f of files) fs.symlinkSync(path.join(program, f), path.join(dir, f));
    for (const f of ["index.ts", "rules.ts", "package.json", "PulumiPolicy.yaml", "tsconfig.json", "node_modules"]) {
      fs.symlinkSync(path.join(REPO_ROOT, "policy", f), path.join(dir, "policy", f));
    }
  }

  /** Writes the stack file: plain config under the project's prefix, secrets set through the CLI. */
  function writeStack(
    dir: string,
    projectName: string,
    config: Record<string, unknown>,
    secrets: Record<string, string>,
    plain: Record<string, string> = {},
  ) {
    const file = path.join(dir, `Pulumi.${stack}.yaml`);
    fs.rmSync(file, { force: true });
    backend.pulumi(dir, ["stack", "rm", "--yes", "--force", "--preserve-config", "--stack", stack]);
    backend.pulumiOk(dir, ["stack", "init", stack]);
    const doc = (yaml.load(fs.readFileSync(file, "utf8")) ?? {}) as { config?: Record<string, unknown> };
    doc.config = Object.fromEntries(Object.entries({ ...config, ...plain }).map(([k, v]) => [`${projectName}:${k}`, v]));
    fs.writeFileSync(file, yaml.dump(doc));
    for (const [k, v] of Object.entries(secrets)) backend.pulumiOk(dir, ["config", "set", "--secret", k, "--stack", stack], undefined, v);
  }

  const preview = (dir: string): RunResult => backend.pulumi(dir, ["preview", "--stack", stack, "--policy-pack", "policy"]);

  /** A window open every day, all day; or one closed today and tomorrow (UTC), so closed now. */
  const openWindow = { days: [...WEEKDAYS], start: "00:00", end: "24:00", timezone: "UTC" };
  function closedWindow() {
    const today = (new Date().getUTCDay() + 6) % 7; // getUTCDay: 0 = Sunday; WEEKDAYS[0] = mon
    return { days: WEEKDAYS.filter((_, i) => i !== today && i !== (today + 1) % 7), start: "00:00", end: "24:00", timezone: "UTC" };
  }

  before(async () => {
    requirePulumi();
    backend = new TempBackend("policy");
    work = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-policy-"));
    project = path.join(work, "project");
    linkProject(project, REPO_ROOT, [
      "Pulumi.yaml",
      "main.js",
      "index.ts",
      "components",
      "lib",
      "provider",
      "node_modules",
      "package.json",
      "tsconfig.json",
    ]);
    const repos = await makeExampleRepos(path.join(work, "repos"));
    base = localConfig({
      target,
      databaseUrl: "",
      repos,
      refs: { orchestrator: "v1.2.3", sevastopol: "v1.2.3" },
      slotPorts: { blue: 8000, green: 8001 },
    });
  });

  after(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
    backend?.remove();
  });

  const secrets = {
    ...localSecrets("fake-key-never-used-by-a-preview", "postgres://deploy:s3cret-pass@127.0.0.1:5432/nostromo"),
    // Not the local stack's: a preview needs none of its values.
    smokeSecrets: JSON.stringify({ smokePassword: "policy-smoke-password" }),
  };

  it("a compliant production stack previews with every policy passing", () => {
    writeStack(project, "nostromo-deploy", { ...base, deployWindow: openWindow }, secrets);
    const r = preview(project);
    assert.strictEqual(r.code, 0, outputOf(r));
    assert.match(r.stdout, /Policies:\s+✅ nostromo-runbooks@v0\.1\.0/, r.stdout);
    assert.doesNotMatch(r.stdout, /\[(mandatory|advisory)\]/);
  });

  it("host key checking off and a secret in plain text fail the preview, naming rule and resource", () => {
    const server = { ...(base.server as object), hostKey: undefined, insecureIgnoreHostKey: true };
    writeStack(
      project,
      "nostromo-deploy",
      { ...base, server, deployWindow: closedWindow() },
      { sshPrivateKey: secrets.sshPrivateKey, smokeSecrets: secrets.smokeSecrets },
      { databaseUrl: secrets.databaseUrl },
    );
    const r = preview(project);
    const out = outputOf(r);
    assert.notStrictEqual(r.code, 0, out);
    assert.match(out, /\[mandatory\] +pinned-host-key +\(pulumi-nodejs:dynamic\/nostromo:Command: nostromo-server-lock\)/, out);
    assert.match(out, /nostromo-server-lock: connection\.insecureIgnoreHostKey is true/);
    assert.match(out, /\[mandatory\] +secrets-in-config[\s\S]*config databaseUrl is in plain text in the stack file/, out);
    // Outside the deploy window a preview only warns; `pulumi up` is refused (next test).
    assert.match(out, /\[advisory\] +deploy-window-notice[\s\S]*outside the deploy window \(.+ 00:00-24:00 UTC\)/, out);
  });

  it("pulumi up outside the deploy window is refused before any step runs", () => {
    writeStack(project, "nostromo-deploy", { ...base, deployWindow: closedWindow() }, secrets);
    const r = backend.pulumi(project, ["up", "--yes", "--skip-preview", "--stack", stack, "--policy-pack", "policy"]);
    const out = outputOf(r);
    assert.notStrictEqual(r.code, 0, out);
    assert.match(out, /\[mandatory\] +deploy-window +\(pulumi-nodejs:dynamic\/nostromo:Command: nostromo-server-lock\)/, out);
    // Nothing reached the (unreachable) server: no step ran, so none failed connecting.
    assert.doesNotMatch(out, /step failed|ssh 127\.0\.0\.1|ECONNREFUSED/, out);
    const state = JSON.parse(backend.pulumiOk(project, ["stack", "export", "--stack", stack]).stdout);
    const commands = (state.deployment.resources ?? []).filter(
      (x: { type: string }) => x.type === "pulumi-nodejs:dynamic/nostromo:Command",
    );
    assert.deepStrictEqual(commands, []);
  });

  it("a graph with a migration before no backup, an unchecked switch, configured steps missing and a secret in a script is refused", () => {
    const dir = path.join(work, "violations");
    linkProject(dir, path.join(REPO_ROOT, "test", "fixtures", "policy-violations"), ["Pulumi.yaml", "index.ts", "package.json"]);
    fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(dir, "node_modules"));
    writeStack(
      dir,
      "nostromo-policy-check",
      {
        apps: {
          orchestrator: { kind: "node", migrate: "npm run migrate" },
          api: { kind: "node", migrate: "npm run migrate" },
          sevastopol: { kind: "static" },
        },
      },
      { sshPrivateKey: "fake" },
    );
    const r = preview(dir);
    const out = outputOf(r);
    assert.notStrictEqual(r.code, 0, out);
    assert.match(
      out,
      /\[mandatory\] +backup-before-migration[\s\S]*migration db-step \(orchestrator\) has no database backup step before it/,
      out,
    );
    assert.match(
      out,
      /\[mandatory\] +health-check-before-switch[\s\S]*traffic switches traffic to orchestrator without its health-checked start/,
      out,
    );
    // The config asks for a migration of api that the graph does not have (orchestrator's, renamed, is found).
    assert.match(
      out,
      /\[mandatory\] +migration-step-present[\s\S]*apps\.api\.migrate is set but the deploy has no migration step for api/,
      out,
    );
    assert.doesNotMatch(out, /apps\.orchestrator\.migrate is set/, out);
    // Nor a health-gated start of either node app; the static one needs none.
    assert.match(
      out,
      /\[mandatory\] +slot-start-step-present[\s\S]*apps\.orchestrator is a node app but the deploy has no health-gated slot-start step for it/,
      out,
    );
    assert.doesNotMatch(out, /apps\.sevastopol is a node app/, out);
    assert.match(
      out,
      /\[mandatory\] +no-secret-in-command-text +\(pulumi-nodejs:dynamic\/nostromo:Command: nostromo-leaky\)[\s\S]*a URL with a password/,
      out,
    );
    assert.match(
      out,
      /\[mandatory\] +pinned-host-key +\(pulumi-nodejs:dynamic\/nostromo:Command: nostromo-unpinned\)[\s\S]*connection\.hostKey is not set/,
      out,
    );
  });
});
