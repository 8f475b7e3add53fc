import * as assert from "assert";
import { parseDeployConfig } from "../../lib/config";
import * as scripts from "../../lib/scripts";
import { renderEnvFile } from "../../lib/scripts";
import { validRaw } from "../support/validConfig";

describe("unit: script builders", () => {
  it("lib/scripts exports exactly the builders whose exact text test/unit/scripts/ asserts (a new one needs its test)", () => {
    assert.deepStrictEqual(Object.keys(scripts).sort(), [
      "BAKE_LOG_FIELDS", // nginx.test.ts
      "CONFIG_BACKUP_RESULT", // lock.test.ts (in the lock step's result)
      "LB_FAIL_TIMEOUT_SECONDS", // fleet.test.ts (in the load balancer's site)
      "PIP_INSTALL_FUNCTION", // python.test.ts
      "RELEASE_ENV", // release.test.ts
      "RESULT_FUNCTION", // layout.test.ts (in the prelude)
      "ROLLBACK_SWITCH_REFUSED", // integration/rollbackSwitch.test.ts (the exit of a refused switch)
      "SYSTEMD_UNIT_DIR", // lock.test.ts, slot-start.test.ts
      "TABLE_STATS_SQL", // backup.test.ts
      "WORKER_SETTLE_SECONDS", // workers.test.ts
      "backupScript", // backup.test.ts
      "bakeLogFormat", // nginx.test.ts
      "configBackupLines", // configBackup.test.ts
      "cutoverCheckScript", // cutover.test.ts
      "cutoverScript", // cutover.test.ts
      "drainFile", // fleet.test.ts
      "envEntries", // release.test.ts
      "eventFunction", // journal.test.ts
      "healthGate", // slot.test.ts
      "layout", // layout.test.ts
      "leaseGuard", // lock.test.ts
      "liveAnswer", // nginx.test.ts (the name in the site), cutover.test.ts
      "liveAnswerPath", // nginx.test.ts (the location in the site), cutover.test.ts
      "liveLinkTarget", // nginx.test.ts
      "loadBalancerCheckScript", // fleet.test.ts
      "loadBalancerScript", // fleet.test.ts
      "loadBalancerSite", // fleet.test.ts
      "loadBalancerSitePath", // fleet.test.ts
      "loadBalancerUpstream", // fleet.test.ts
      "lockScript", // lock.test.ts
      "migrateScript", // release.test.ts
      "nginxSite", // nginx.test.ts
      "nginxSiteScript", // nginx.test.ts
      "parseProbe", // integration/rollbackSwitch.test.ts
      "preflightLines", // lock.test.ts
      "prelude", // layout.test.ts
      "recordScript", // journal.test.ts
      "releaseScript", // release.test.ts
      "renderEnvFile", // below
      "restartSlotLine", // slot.test.ts
      "rollbackSwitchScript", // integration/rollbackSwitch.test.ts
      "servingScript", // fleet.test.ts
      "sha256", // layout.test.ts
      "slotCheckScript", // slot.test.ts
      "slotUnit", // slot.test.ts
      "startCommand", // python.test.ts
      "startSlotScript", // slot-start.test.ts
      "stepScript", // lock.test.ts
      "switchBackScript", // fleet.test.ts
      "switchProbeScript", // integration/rollbackSwitch.test.ts
      "systemdQuote", // slot.test.ts
      "systemdUnit", // slot.test.ts
      "unitStateCommand", // slot-start.test.ts, workers.test.ts (in the failure report)
      "venvLine", // python.test.ts
      "workerSystemdUnit", // workers.test.ts
      "workersCheckScript", // workers.test.ts
      "workersRetireLines", // workers.test.ts, journal.test.ts
      "workersScript", // workers.test.ts
    ]);
  });

  it("renders the .env with every value quoted, sorted; the version is the release's, not in it", () => {
    const cfg = parseDeployConfig("unit", validRaw(), { sshPrivateKey: true, databaseUrl: true });
    const app = { ...cfg.apps[0], env: { NODE_ENV: "production", GREETING: "it's $HOME" } };
    assert.strictEqual(
      renderEnvFile(app, { DATABASE_URL: "postgres://u:p@h/db", JWT_SECRET: "s3cr3t" }),
      "DATABASE_URL='postgres://u:p@h/db'\nGREETING='it'\\''s $HOME'\nJWT_SECRET='s3cr3t'\nNODE_ENV='production'\n",
    );
  });
});
