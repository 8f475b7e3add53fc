/**
 * The runbooks' checks before a deploy, enforced by the engine:
 *   pulumi preview --policy-pack policy      (and `pulumi up --policy-pack policy`)
 * A mandatory violation fails the preview, naming the rule and the resource. The rules themselves
 * are pure functions in rules.ts; this file only adapts them to @pulumi/policy.
 */
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { PolicyPack, PolicyResource, ReportViolation, ResourceValidationArgs, StackValidationArgs } from "@pulumi/policy";
import {
  COMMAND_TYPE,
  Res,
  SECRET_KEYS,
  UNKNOWN,
  backupBeforeMigration,
  configValue,
  deployWindowOf,
  healthCheckBeforeSwitch,
  migrationStepPresent,
  nodeAppsOf,
  outsideWindow,
  pinnedHostKey,
  plaintextSecretsInStackFile,
  secretInCommandText,
  secretLeaves,
  slotStartStepPresent,
  stackOfUrn,
} from "./rules";

// The engine launches the pack with the stack's identity and decrypted config in its environment.
const stackConfig: Record<string, unknown> = JSON.parse(process.env.PULUMI_CONFIG || "{}");
const dryRun = process.env.PULUMI_DRY_RUN !== "false";

function projectOf(urn: string): string {
  return process.env.PULUMI_PROJECT || urn.split("::")[1] || "";
}

function stackOf(urn: string): string {
  return process.env.PULUMI_STACK || stackOfUrn(urn);
}

function asRes(r: PolicyResource): Res {
  const deps = new Set<string>(r.dependencies.map((d) => d.urn));
  for (const list of Object.values(r.propertyDependencies)) for (const d of list) deps.add(d.urn);
  return { type: r.type, name: r.name, urn: r.urn, props: knownProps(r.props), dependencies: [...deps] };
}

/**
 * The inputs a rule reads, copied out of @pulumi/policy's proxy: reading a value that is unknown
 * during preview throws there (reported as an advisory "can't run policy"); here it becomes
 * UNKNOWN, which the rules skip (the same rule sees the value when `pulumi up` runs the step).
 */
function knownProps(props: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of ["step", "app", "connection", "create", "update", "delete"]) {
    try {
      const v = props[key];
      out[key] = v && typeof v === "object" ? JSON.parse(JSON.stringify(v)) : v;
    } catch {
      out[key] = UNKNOWN;
    }
  }
  return out;
}

function resourceArgs(a: ResourceValidationArgs): Res {
  return { type: a.type, name: a.name, urn: a.urn, props: knownProps(a.props), dependencies: [] };
}

/** The program's folder: the first folder above the pack holding the project's Pulumi.yaml. */
function projectDir(project: string): string | undefined {
  let dir = process.cwd();
  for (;;) {
    const file = path.join(dir, "Pulumi.yaml");
    if (fs.existsSync(file)) {
      const doc = yaml.load(fs.readFileSync(file, "utf8")) as { name?: string } | undefined;
      if (doc?.name === project) return dir;
    }
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

function secretValues(project: string): string[] {
  return SECRET_KEYS.flatMap((k) => secretLeaves(configValue(stackConfig, project, k)));
}

const report = (reportViolation: ReportViolation, findings: { resource?: string; message: string }[]) => {
  for (const f of findings) reportViolation(f.message);
};

new PolicyPack("nostromo-runbooks", {
  policies: [
    {
      name: "backup-before-migration",
      description: "Production: every migration step runs after a database backup step of the same deploy (a dependency path to it).",
      enforcementLevel: "mandatory",
      validateStack: (args: StackValidationArgs, reportViolation) => {
        const resources = args.resources.map(asRes);
        const stack = resources.length > 0 ? stackOf(resources[0].urn) : (process.env.PULUMI_STACK ?? "");
        report(reportViolation, backupBeforeMigration(resources, stack));
      },
    },
    {
      name: "health-check-before-switch",
      description: "Traffic reaches a node app only after its new release passed its health gate (its slot-start step before the cutover).",
      enforcementLevel: "mandatory",
      validateStack: (args: StackValidationArgs, reportViolation) => {
        const resources = args.resources.map(asRes);
        if (resources.length === 0) return;
        report(reportViolation, healthCheckBeforeSwitch(resources, nodeAppsOf(stackConfig, projectOf(resources[0].urn))));
      },
    },
    {
      name: "migration-step-present",
      description: "Every app whose config sets apps.<name>.migrate has a migration step for it (found by its kind, whatever its name).",
      enforcementLevel: "mandatory",
      validateStack: (args: StackValidationArgs, reportViolation) => {
        const resources = args.resources.map(asRes);
        if (resources.length === 0) return;
        report(reportViolation, migrationStepPresent(resources, stackConfig, projectOf(resources[0].urn)));
      },
    },
    {
      name: "slot-start-step-present",
      description: "Every node app of the config has its health-gated slot-start step (found by its kind, whatever its name).",
      enforcementLevel: "mandatory",
      validateStack: (args: StackValidationArgs, reportViolation) => {
        const resources = args.resources.map(asRes);
        if (resources.length === 0) return;
        report(reportViolation, slotStartStepPresent(resources, stackConfig, projectOf(resources[0].urn)));
      },
    },
    {
      name: "pinned-host-key",
      description: "Every remote step pins the server's SSH host key (connection.hostKey) and never ignores it.",
      enforcementLevel: "mandatory",
      validateResource: (args, reportViolation) => report(reportViolation, pinnedHostKey(resourceArgs(args))),
    },
    {
      name: "no-secret-in-command-text",
      description:
        "No secret in a step's script text (secrets go on stdin or in a 0600 file): no user:pass@ URL, private key or secret config value.",
      enforcementLevel: "mandatory",
      validateResource: (args, reportViolation) =>
        report(reportViolation, secretInCommandText(resourceArgs(args), secretValues(projectOf(args.urn)))),
    },
    {
      name: "secrets-in-config",
      description: `The stack file holds ${SECRET_KEYS.join(", ")} only as Pulumi secrets, never in plain text.`,
      enforcementLevel: "mandatory",
      validateStack: (args: StackValidationArgs, reportViolation) => {
        const urn = args.resources[0]?.urn;
        if (!urn) return;
        const project = projectOf(urn);
        const dir = projectDir(project);
        const file = dir ? path.join(dir, `Pulumi.${stackOf(urn)}.yaml`) : undefined;
        if (!file || !fs.existsSync(file))
          return args.notApplicable(`no stack file for ${project}/${stackOf(urn)} found above ${process.cwd()}`);
        report(reportViolation, plaintextSecretsInStackFile(yaml.load(fs.readFileSync(file, "utf8")) as Record<string, unknown>, project));
      },
    },
    {
      // Checked on every step of the update itself, before the step runs: the first step outside
      // the window stops the deploy before anything changed on the server.
      name: "deploy-window",
      description: "`pulumi up` runs only inside the stack's deployWindow, when it declares one.",
      enforcementLevel: "mandatory",
      validateResource: (args, reportViolation) => {
        if (dryRun || args.type !== COMMAND_TYPE) return;
        const outside = outsideWindow(deployWindowOf(stackConfig, projectOf(args.urn)), new Date());
        if (outside) reportViolation(`${args.name}: ${outside}`);
      },
    },
    {
      // A preview (a pull request's, or the one `pulumi up` shows first) only warns.
      name: "deploy-window-notice",
      description: "A preview outside the stack's deployWindow warns that `pulumi up` would be refused now.",
      enforcementLevel: "advisory",
      validateStack: (args: StackValidationArgs, reportViolation) => {
        const urn = args.resources[0]?.urn;
        if (!dryRun || !urn) return;
        const outside = outsideWindow(deployWindowOf(stackConfig, projectOf(urn)), new Date());
        if (outside) reportViolation(`${outside}; \`pulumi up\` would be refused now`);
      },
    },
  ],
});
