/**
 * `npm run restore-config -- --stack X [--host NAME] [--archive PATH] [--yes]`
 *
 * Puts back the server's configuration (nginx site, systemd units, PM2's process list, the apps'
 * shared .env; not the upstream includes, which only a health-gated deploy switches) from a config archive the deploy took before changing it: by
 * default the one the stack's last deploy took (its `configBackup` output), or exactly
 * `--archive PATH` on the server. Says what the archive holds and what differs from the server
 * now, asks (or --yes), then restores under the server's deploy lock (refused while a deploy
 * holds it), after a safety archive of the files as they are; nginx tests and reloads the result
 * (a refusal puts every file back). On a fleet (`hosts`), each host has archives of its own:
 * `--host` names the one to restore (its own last archive by default).
 */
import "../lib/compileCache"; // first: every module after it loads from the compile cache
import { ConfigError, DeployConfig, parseDeployConfig } from "../lib/config";
import { hostApps, hostConfig } from "../lib/config/fleet";
import { configRestoreScript, configSurveyScript, parseConfigSurvey } from "../lib/restore";
import { layout } from "../lib/scripts";
import { quote } from "../lib/shell";
import {
  confirm,
  hostTarget,
  openStack,
  parseToolArgs,
  plainConfig,
  plainOutputs,
  requireStackName,
  runMain,
  secretConfig,
  serverTarget,
  sshRun,
  ToolError,
} from "./common";

const USAGE = "npm run restore-config -- --stack <name> [--host <name>] [--archive <path on the server>] [--yes]";

function deployConfigOf(name: string, config: Record<string, unknown>): DeployConfig {
  try {
    return parseDeployConfig(name, config, { sshPrivateKey: true, databaseUrl: true });
  } catch (err) {
    if (err instanceof ConfigError) throw new ToolError(`the stack config is not valid: ${err.message}`);
    throw err;
  }
}

async function main(): Promise<void> {
  const args = parseToolArgs(
    process.argv.slice(2),
    { stack: { type: "string" }, host: { type: "string" }, archive: { type: "string" }, yes: { type: "boolean", short: "y" } },
    USAGE,
  );
  const name = requireStackName(args.stack, USAGE);
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const stack = await openStack(name);
  const config = await plainConfig(stack);
  const all = deployConfigOf(name, config);
  // A fleet's hosts each archive their own config: the one to restore is named, never guessed.
  const hosts = all.fleet?.hosts ?? [];
  const names = hosts.map((h) => h.name).join(", ");
  if (args.host !== undefined && hosts.length === 0)
    throw new ToolError(`--host names a host of a fleet (hosts); stack ${name} deploys to one server\nusage: ${USAGE}`);
  if (hosts.length > 0 && args.host === undefined)
    throw new ToolError(
      `refused: stack ${name} deploys to ${hosts.length} hosts (${names}): name one with --host; nothing was changed\nusage: ${USAGE}`,
    );
  const host = hosts.find((h) => h.name === args.host);
  if (args.host !== undefined && !host) throw new ToolError(`--host ${args.host}: stack ${name} has no such host (hosts: ${names})`);
  const cfg = host ? hostConfig(all, host, hostApps(all, host)) : all;
  const target = host ? hostTarget(host.server, await secretConfig(stack, "sshPrivateKey")) : await serverTarget(stack, config);
  const where = host ? `host ${host.name} (${host.server.host})` : "the server";

  let archive = args.archive;
  if (archive !== undefined && !archive.startsWith("/"))
    throw new ToolError(`--archive must be the archive's absolute path on the server, got '${archive}'`);
  if (archive === undefined) {
    const outputs = await plainOutputs(stack);
    const last = host
      ? (outputs.hosts as Record<string, { configBackup?: unknown }> | undefined)?.[host.name]?.configBackup
      : (outputs.configBackup as { path?: unknown } | undefined)?.path;
    if (typeof last === "string") archive = last;
    else {
      // No output (a stack deployed before config backups): the newest archive on the server.
      const dir = layout(cfg.server.root).backups;
      const r = await sshRun(target, `ls -1 ${quote(dir)}/${quote(cfg.stack)}-config-*.tar.gz 2>/dev/null | sort -r | head -n 1`);
      archive = r.stdout.trim();
      if (!archive)
        throw new ToolError(
          `refused: the stack has no configBackup output and ${dir} on ${where} holds no config archive of stack ${cfg.stack}; nothing was changed`,
        );
    }
  }

  const surveyed = await sshRun(target, configSurveyScript(cfg, archive));
  if (surveyed.code !== 0)
    throw new ToolError(`cannot read the archive ${archive} on ${where}: ${surveyed.stderr.trim() || `exit ${surveyed.code}`}`, 1);
  const survey = parseConfigSurvey(surveyed.stdout);
  if (survey.missing) throw new ToolError(`refused: the archive ${archive} is gone from the server (or empty); nothing was changed`);
  if (!survey.recorded)
    throw new ToolError(`refused: ${archive} has no ${archive}.sha256 beside it, so it cannot be checked; nothing was changed`);
  if (survey.sha256 !== survey.recorded) {
    throw new ToolError(
      `refused: ${archive} has sha256 ${survey.sha256}, not the recorded ${survey.recorded}: it changed since it was taken; nothing was changed`,
    );
  }

  log(
    `config archive${host ? ` of ${where}` : ""}: ${archive} (sha256 ${survey.sha256.slice(0, 16)}… as recorded), ${survey.files.length} files:`,
  );
  const said = {
    same: "same as on the server now",
    differs: "DIFFERS from the server now: will be put back",
    absent: "not on the server now: will be created",
  };
  for (const f of survey.files) log(`  ${f.path} (${f.mode}): ${said[f.state]}`);
  const changing = survey.files.filter((f) => f.state !== "same");
  if (changing.length === 0) {
    log("nothing differs from the server now; nothing was changed");
    return;
  }
  if (!args.yes) {
    if (!process.stdin.isTTY || !process.stdout.isTTY)
      throw new ToolError("refused: no terminal to confirm on; pass --yes to restore these files");
    if (!(await confirm(`Put back the ${changing.length} file(s) that differ (a safety archive of them as they are is taken first)?`))) {
      throw new ToolError("not confirmed; nothing was changed");
    }
  }

  const r = await sshRun(target, configRestoreScript(cfg, archive, survey.sha256));
  if (r.code !== 0) throw new ToolError(`config restore failed:\n${r.stderr.trim()}`, r.code === 3 ? 2 : 1);
  const info = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as { safety?: string; files?: number };
  for (const l of r.stderr.trim().split("\n").filter(Boolean)) log(l);
  log(
    `restored ${changing.length} changed file(s) of ${info.files ?? survey.files.length} from ${archive}: ${changing.map((f) => f.path).join(", ")}`,
  );
  log(`the files as they were before this restore: ${info.safety}`);
  log(
    "running apps keep the environment they started with until their slot restarts; the deploy's state still holds what it last deployed, so the next `pulumi up` with a change writes its own config again",
  );
}

runMain("restore-config", main);
