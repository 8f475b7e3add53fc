/**
 * The rollback's fast path: when every app's release to go back to still runs in a slot (or, for
 * a static app, is still on disk) and answers its health checks, traffic goes to it at once,
 * before the rollback's `pulumi up` records it (lib/scripts/rollbackSwitch.ts). Otherwise it
 * says why, changes nothing, and the normal path runs.
 */
import { ConfigError, DeployConfig, parseDeployConfig } from "../lib/config";
import { Stack } from "@pulumi/pulumi/automation";
import * as fs from "fs";
import * as path from "path";
import { fileURLToPath } from "url";
import { resolveRef } from "../lib/git";
import { DeployRow } from "../lib/history";
import { CutoverTarget, parseProbe, ROLLBACK_SWITCH_REFUSED, rollbackSwitchScript, switchProbeScript } from "../lib/scripts";
import { sshRun, Target } from "./common";

/**
 * Where the switch's time went (seconds): resolving the refs, the probe's SSH run (0 when the
 * first guess was right), the switch's.
 */
export type SwitchPhases = { refs: number; probe: number; switch: number };

/**
 * The first guess, no probe: each node app's release to go back to runs in the slot that does not
 * serve now (`servingSlots`, the stack's outputs), where the update before kept it. Undefined when
 * an app's serving slot is not known. The switch checks the guess before it switches anything.
 */
export function guessTargets(
  targets: { app: DeployConfig["apps"][number]; sha: string }[],
  servingSlots: Record<string, string | undefined>,
): CutoverTarget[] | undefined {
  const guesses: CutoverTarget[] = [];
  for (const { app, sha } of targets) {
    if (app.kind === "static") {
      guesses.push({ app, sha });
      continue;
    }
    const serving = servingSlots[app.name];
    if (serving !== "blue" && serving !== "green") return undefined;
    const slot = serving === "blue" ? "green" : "blue";
    guesses.push({ app, sha, slot, port: app.ports![slot] });
  }
  return guesses;
}
/**
 * The lock files another update holds on the stack in a file backend (`file://…`), as paths; none
 * for another backend (which this cannot see: the update finds out). The switch at once happens
 * before the rollback's update takes that lock, so it must not while another update holds it.
 */
export async function fileBackendLocks(stack: Stack, name: string): Promise<string[]> {
  const url = (await stack.workspace.whoAmI()).url ?? "";
  if (!url.startsWith("file://")) return [];
  const root = path.join(fileURLToPath(url.split("?")[0]), ".pulumi", "locks");
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    for (const e of fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }) : []) {
      const p = path.join(dir, e.name);
      if (e.isDirectory() && depth < 4) walk(p, depth + 1);
      else if (e.isFile() && path.basename(path.dirname(p)) === name) found.push(p);
    }
  };
  walk(root, 0);
  return found;
}

export type SwitchOutcome = { switched: true; serving: string; phases: SwitchPhases } | { switched: false; why: string };

export async function switchAtOnce(
  server: Target,
  name: string,
  config: Record<string, unknown>,
  target: DeployRow,
  servingSlots: Record<string, string | undefined> = {},
): Promise<SwitchOutcome> {
  const appsConfig = target.appsConfig;
  if (!appsConfig) return { switched: false, why: `the history holds no apps config of update ${target.version}` };
  let cfg;
  try {
    cfg = parseDeployConfig(name, { ...config, apps: appsConfig }, { sshPrivateKey: true, databaseUrl: true });
  } catch (err) {
    if (err instanceof ConfigError) return { switched: false, why: `update ${target.version}'s config is not valid today: ${err.message}` };
    throw err;
  }
  const t0 = Date.now();
  const since = (t: number) => (Date.now() - t) / 1000;
  // The commit the rollback's update will deploy: its ref resolved now, as the program will.
  const targets: { app: (typeof cfg.apps)[number]; sha: string }[] = [];
  for (const app of cfg.apps) {
    try {
      targets.push({ app, sha: resolveRef(app.repo, app.ref) });
    } catch (err) {
      return { switched: false, why: `${app.name}: ${(err as Error).message}` };
    }
  }

  const refs = since(t0);
  const guess = guessTargets(targets, servingSlots);
  if (guess) {
    // One SSH run when the guess is right; a refusal (nothing switched) falls back to the probe.
    const t1 = Date.now();
    const r = await sshRun(server, rollbackSwitchScript(cfg, guess));
    if (r.code === 0) return { switched: true, serving: servingOf(r.stdout), phases: { refs, probe: 0, switch: since(t1) } };
    if (r.code !== ROLLBACK_SWITCH_REFUSED) return { switched: false, why: r.stderr.trim() || `the switch exited ${r.code}` };
  }
  const t1 = Date.now();
  const probe = await sshRun(server, switchProbeScript(cfg, targets));
  const probed = since(t1);
  if (probe.code !== 0) return { switched: false, why: `the probe failed: ${probe.stderr.trim() || `exit ${probe.code}`}` };
  const answers = parseProbe(probe.stdout);
  const cutover: CutoverTarget[] = [];
  for (const t of targets) {
    const a = answers.find((x) => x.app === t.app.name);
    if (!a) return { switched: false, why: `the probe did not answer for ${t.app.name}` };
    if ("why" in a) return { switched: false, why: `${t.app.name}: ${a.why}` };
    cutover.push(t.app.kind === "static" ? { app: t.app, sha: t.sha } : { app: t.app, sha: t.sha, slot: a.slot, port: a.port });
  }
  const t2 = Date.now();
  const r = await sshRun(server, rollbackSwitchScript(cfg, cutover));
  if (r.code !== 0) return { switched: false, why: r.stderr.trim() || `the switch exited ${r.code}` };
  return { switched: true, serving: servingOf(r.stdout), phases: { refs, probe: probed, switch: since(t2) } };
}

const servingOf = (stdout: string) => /"serving":"([^"]*)"/.exec(stdout)?.[1] ?? "";
