import * as assert from "assert";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Client } from "pg";
import { REPO_ROOT } from "../../local/backend";
import { DeployHarness } from "../../local/harness";
import { request } from "../../local/http";
import { LOCAL_SMOKE_SECRETS, outputOf } from "../../local/stack";
import { watchProcesses } from "../support/processes";

/**
 * Issue 9: the smoke login's password is a stack secret. It reaches the smoke program on the
 * cutover's stdin only: never on a command line or in an environment, never in clear in the
 * state or the stack file, never in the output; and the login still passes with it.
 */
describe("e2e: the smoke login's password is a stack secret, sent on stdin only", function () {
  const h = new DeployHarness(`t-smk${process.pid}`);
  // A password no other text of the deploy holds, so finding it anywhere is a leak.
  const password = `smoke-${randomBytes(12).toString("hex")}`;
  const login = (pw: string) =>
    request(h.target.nginx.port, "POST", "/api/command/auth/login", { json: { username: "admin", password: pw } });

  before(async () => {
    await h.start();
    const r = await h.up("baseline deploy");
    assert.strictEqual(r.code, 0, outputOf(r));
  });
  after(() => h.stop());

  it("a rotated smoke password runs the cutover again: the login passes with it, and it is on no command line, in no state or stack file", async () => {
    // The app's admin gets the new password; the old one (the local stack's) stops working.
    const db = new Client({ connectionString: h.pg.url });
    await db.connect();
    await db.query("update users set password_sha256 = encode(sha256(convert_to($1, 'UTF8')), 'hex') where username = 'admin'", [password]);
    await db.end();
    assert.strictEqual((await login(LOCAL_SMOKE_SECRETS.smokePassword)).status, 401);
    // The documented way to set one smoke secret: a secret leaf under smokeSecrets.
    h.backend.pulumiOk(REPO_ROOT, ["config", "rm", "smokeSecrets", "--stack", h.stack]);
    h.backend.pulumiOk(
      REPO_ROOT,
      ["config", "set", "--secret", "--path", "smokeSecrets.smokePassword", "--stack", h.stack],
      undefined,
      password,
    );
    const journalBefore = h.journal().length;

    const watch = watchProcesses(password, /const steps = JSON\.parse\(process\.argv\[1\]\)/);
    const r = await h.up("smoke password rotated");
    const seen = await watch.stop();
    assert.strictEqual(r.code, 0, outputOf(r));

    // The smoke login passed with the new password: it reached the smoke program.
    assert.deepStrictEqual(h.outputs().smokeTests.slice(0, 2), ["login returns a JWT", "protected endpoint with the JWT"]);
    assert.strictEqual(h.journal().length, journalBefore + 1, "the change did not go through the journal");
    assert.ok(seen.seen.length > 0, `the watcher never saw the smoke program run (${seen.samples} samples)`);
    // The engine hands the Pulumi program its decrypted config in PULUMI_CONFIG (owner-only
    // /proc/<pid>/environ, on the machine running pulumi, as for every secret); nowhere else.
    const leaks = seen.leaks.filter((l) => l.where !== "PULUMI_CONFIG");
    assert.deepStrictEqual(leaks, [], "the smoke password was on a command line or in an environment");
    assert.ok(!outputOf(r).includes(password), "the smoke password is in pulumi up's output");

    // The state holds it encrypted only: not in the export, but there with --show-secrets.
    const exported = h.backend.pulumiOk(REPO_ROOT, ["stack", "export", "--stack", h.stack]).stdout;
    assert.ok(!exported.includes(password), "the smoke password is in clear in the state");
    const state = JSON.parse(exported);
    const cutover = state.deployment.resources.find((res: { urn: string }) => res.urn.endsWith("::nostromo-cutover-switch-and-smoke"));
    assert.ok(cutover, "no cutover step in the state");
    for (const where of ["inputs", "outputs"]) {
      assert.ok(cutover[where].stdin?.ciphertext, `the cutover's ${where}.stdin is not encrypted: ${JSON.stringify(cutover[where].stdin)}`);
      assert.ok(String(cutover[where].create).includes("${secret:smokePassword}"), `the cutover's ${where}.create has no placeholder`);
    }
    const revealed = h.backend.pulumiOk(REPO_ROOT, ["stack", "export", "--show-secrets", "--stack", h.stack]).stdout;
    assert.ok(revealed.includes(password), "the smoke password never reached the state (the check above proves nothing)");
    const stackFile = fs.readFileSync(path.join(REPO_ROOT, `Pulumi.${h.stack}.yaml`), "utf8");
    assert.ok(!stackFile.includes(password), "the smoke password is in clear in the stack file");
    assert.match(stackFile, /smokeSecrets:\s+smokePassword:\s+secure: /);

    // Nothing new: nothing runs (the secret's digest is stable).
    const again = await h.up("nothing changed");
    assert.strictEqual(again.code, 0, outputOf(again));
    assert.strictEqual(h.journal().length, journalBefore + 1, "an up with nothing changed ran the cutover again");
  });

  it("appSecrets: an app's own secret reaches its .env (0600) through the release's stdin, restarts it through the gate, and is in no state, stack file or output in clear (issue 10)", async () => {
    const value = `app-secret-${randomBytes(12).toString("hex")}`;
    h.backend.pulumiOk(
      REPO_ROOT,
      ["config", "set", "--secret", "--path", "appSecrets.orchestrator.PARTNER_API_KEY", "--stack", h.stack],
      undefined,
      value,
    );
    const preview = h.backend.pulumiOk(REPO_ROOT, ["preview", "--stack", h.stack]).stdout;
    assert.match(preview, /orchestrator: [^\n]*restart with new environment \(PARTNER_API_KEY changed\)/, preview);
    const journalBefore = h.journal().length;
    const r = await h.up("app secret set");
    assert.strictEqual(r.code, 0, outputOf(r));
    const env = path.join(h.target.root, "shared", "orchestrator", ".env");
    assert.match(fs.readFileSync(env, "utf8"), new RegExp(`^PARTNER_API_KEY='${value}'$`, "m"));
    assert.strictEqual((fs.statSync(env).mode & 0o777).toString(8), "600");
    assert.ok(!fs.readFileSync(path.join(h.target.root, "shared", "sevastopol", ".env"), "utf8").includes(value), "another app got it");
    assert.strictEqual(h.journal().length, journalBefore + 1, "the change did not go through the journal");
    assert.ok(!outputOf(r).includes(value) && !preview.includes(value), "the value is in pulumi's output");
    assert.ok(!h.backend.pulumiOk(REPO_ROOT, ["stack", "export", "--stack", h.stack]).stdout.includes(value), "in clear in the state");
    const stackFile = fs.readFileSync(path.join(REPO_ROOT, `Pulumi.${h.stack}.yaml`), "utf8");
    assert.ok(!stackFile.includes(value), "in clear in the stack file");
    assert.match(stackFile, /appSecrets:\s+orchestrator:\s+PARTNER_API_KEY:\s+secure: /);
  });
});
