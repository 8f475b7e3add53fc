/**
 * `npm run restore-config -- --stack X [--archive PATH] [--yes]`
 *
 * Puts back the server's configuration (nginx site, systemd units, PM2's process list, the apps'
 * shared .env; not the upstream includes, which only a health-gated deploy switches) from a config archive the deploy took before changing it: by
 * default the one the stack's last deploy took (its `configBackup` output), or exactly
 * `--archive PATH` on the server. Says what the archive holds and what differs from the server
 * now, asks (or --yes), then restores under the server's deploy lock (refused while a deploy
 * holds it), after a safety archive of the files as they are; nginx tests and reloads the result
 * (a refusal puts every file back).
 */
import "../lib/compileCache"; // first: every module after it loads from the compile cache
import { ConfigError, DeployConfig, parseDeployConfig } from "../lib/config";
import { configRestoreScript, configSurveyScript, parseConfigSurvey } from "../lib/restore";
import { layout } from "../lib/scripts";
import { quote } from "../lib/shell";
import {
  confirm,
  openStack,
  parseToolArgs,
  plainConfig,
  plainOutputs,
  requireStackName,
  runMain,
  serverTarget,
  sshRun,
  ToolError,
} from "./common";

const USAGE = "npm run restore-config -- --stack <name> [--archive <path on the server>] [--yes]";

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
    { stack: { type: "string" }, archive: { type: "string" }, yes: { type: "boolean", short: "y" } },
    USAGE,
  );
  const name = requireStackName(args.stack, USAGE);
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const stack = await openStack(name);
  const config = await plainConfig(stack);
  const cfg = deployConfigOf(name, config);
  const target = await serverTarget(stack, config);

  let archive = args.archive;
  if (archive !== undefined && !archive.startsWith("/"))
    throw new ToolError(`--archive must be the archive's absolute path on the server, got '${archive}'`);
  if (archive === undefined) {
    const out = (await plainOutputs(stack)).configBackup as { path?: unknown } | undefined;
    if (typeof out?.path === "string") archive = out.path;
    else {
      // No output (a stack deployed before config backups): the newest archive on the server.
      const dir = layout(cfg.server.root).backups;
      const r = await sshRun(target, `ls -1 ${quote(dir)}/${quote(cfg.stack)}-config-*.tar.gz 2>/dev/null | sort -r | head -n 1`);
      archive = r.stdout.trim();
      if (!archive)
        throw new ToolError(
          `refused: the stack has no configBackup output and ${dir} holds no config archive of stack ${cfg.stack}; nothing was changed`,
        );
    }
  }

  const surveyed = await sshRun(target, configSurveyScript(cfg, archive));
  if (surveyed.code !== 0)
    throw new ToolError(`cannot read the archive ${archive} on the server: ${surveyed.stderr.trim() || `exit ${surveyed.code}`}`, 1);
  const survey = parseConfigSurvey(surveyed.stdout);
  if (survey.missing) throw new ToolError(`refused: the archive ${archive} is gone from the server (or empty); nothing was changed`);
  if (!survey.recorded)
    throw new ToolError(`refused: ${archive} has no ${archive}.sha256 beside it, so it cannot be checked; nothing was changed`);
  if (survey.sha256 !== survey.recorded) {
    throw new ToolError(
      `refused: ${archive} has sha256 ${survey.sha256}, not the recorded ${survey.recorded}: it changed since it was taken; nothing was changed`,
    );
  }

  log(`config archive: ${archive} (sha256 ${survey.sha256.slice(0, 16)}… as recorded), ${survey.files.length} files:`);
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
