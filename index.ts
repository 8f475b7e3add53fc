import * as os from "os";
import * as pulumi from "@pulumi/pulumi";
import { Deployment } from "./components";
import { ConfigError, parseDeployConfig } from "./lib/config";
import { resolveRef } from "./lib/git";

// Config is read and validated once, before any resource exists: a bad value stops preview here.
const cfg = new pulumi.Config();
const sshPrivateKey = cfg.getSecret("sshPrivateKey");
const databaseUrl = cfg.getSecret("databaseUrl");
const jwtSecret = cfg.getSecret("jwtSecret");

function load() {
  try {
    const raw: Record<string, unknown> = {};
    for (const key of ["server", "apps", "nginx", "backup", "smoke", "releasesToKeep"]) raw[key] = cfg.getObject(key) ?? cfg.get(key);
    const config = parseDeployConfig(pulumi.getStack(), raw, { sshPrivateKey: !!sshPrivateKey, databaseUrl: !!databaseUrl });
    const shas: Record<string, string> = {};
    for (const app of config.apps) {
      try {
        shas[app.name] = resolveRef(app.repo, app.ref);
      } catch (err) {
        throw new ConfigError([`apps.${app.name}.ref: ${(err as Error).message}`]);
      }
    }
    return { config, shas };
  } catch (err) {
    if (err instanceof ConfigError) throw new pulumi.RunError(err.message);
    throw err;
  }
}

const { config, shas } = load();
const deployment = new Deployment("nostromo", {
  config,
  shas,
  sshPrivateKey: sshPrivateKey!,
  databaseUrl,
  jwtSecret,
  deployer: `${os.userInfo().username}@${os.hostname()}`,
});

export const url = deployment.url;
export const apps = deployment.apps;
export const backup = deployment.backup;
export const smokeTests = deployment.smokePassed;
