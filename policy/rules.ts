/**
 * The runbooks' checks before a deploy, as pure functions over what a policy pack sees: the
 * stack's resources (type, name, URN, inputs, dependencies), the stack's config as the engine
 * hands it to the analyzer (PULUMI_CONFIG, decrypted) and the stack file's text. No @pulumi
 * import, so the rules are unit-tested without an engine (test/unit/policyRules.test.ts).
 */
import { DeployWindow, describeWindow, isWithinWindow, localTime } from "../lib/deployWindow";
import { COMMAND_TYPE, STEP, StepKind } from "../lib/steps";

export { COMMAND_TYPE };
/** Config keys that must be Pulumi secrets (encrypted in the stack file). */
export const SECRET_KEYS = ["sshPrivateKey", "databaseUrl", "jwtSecret", "notifyWebhookUrl", "smokeSecrets", "appSecrets"] as const;

/** A config value's secret texts: the value itself, or every leaf of an object (smokeSecrets, appSecrets). */
export function secretLeaves(v: unknown): string[] {
  if (typeof v === "string") return [v];
  if (v && typeof v === "object") return Object.values(v).flatMap(secretLeaves);
  return [];
}

/** Secure in the stack file: `{ secure: … }`, or an object whose every leaf is (`--secret --path`). */
function isSecure(v: unknown): boolean {
  if (!v || typeof v !== "object" || Array.isArray(v)) return false;
  if (typeof (v as { secure?: unknown }).secure === "string") return true;
  const values = Object.values(v);
  return values.length > 0 && values.every(isSecure);
}
/** What the engine sends for a value not known until the update (preview of a changed input). */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

export interface Res {
  type: string;
  name: string;
  urn: string;
  props: Record<string, unknown>;
  /** URNs this resource depends on (dependsOn and property dependencies together). */
  dependencies: string[];
}

export interface Finding {
  /** The resource the finding is about (its name), when it is about one. */
  resource?: string;
  message: string;
}

/** `urn:pulumi:<stack>::<project>::<type>::<name>` → stack. */
export function stackOfUrn(urn: string): string {
  return urn.split("::")[0].replace(/^urn:pulumi:/, "");
}

const isCommand = (r: Res) => r.type === COMMAND_TYPE;
/** Steps are found by the kind they declare (input `step`, lib/steps.ts), never by their names. */
const isStep = (r: Res, kind: StepKind) => isCommand(r) && r.props.step === kind;
const appOf = (r: Res) => (typeof r.props.app === "string" ? r.props.app : undefined);

/** Every URN reachable from `from` through dependencies. */
function dependencyClosure(from: Res, byUrn: Map<string, Res>): Set<string> {
  const seen = new Set<string>();
  const queue = [...from.dependencies];
  while (queue.length > 0) {
    const urn = queue.pop()!;
    if (seen.has(urn)) continue;
    seen.add(urn);
    queue.push(...(byUrn.get(urn)?.dependencies ?? []));
  }
  return seen;
}

/** Runbook 000 §3: in production, every migration runs after a database backup of this deploy. */
export function backupBeforeMigration(resources: Res[], stack: string): Finding[] {
  if (stack !== "production") return [];
  const byUrn = new Map(resources.map((r) => [r.urn, r]));
  return resources
    .filter((r) => isStep(r, STEP.migration))
    .filter((m) => ![...dependencyClosure(m, byUrn)].some((urn) => isStep(byUrn.get(urn)!, STEP.backup)))
    .map((m) => ({ resource: m.name, message: `migration ${m.name} (${appOf(m)}) has no database backup step before it` }));
}

type ConfiguredApp = { kind?: string; migrate?: unknown };

/**
 * The apps of the stack's config, by name, as PULUMI_CONFIG holds them (`<project>:apps`, JSON
 * text): the stack files key them by name (`apps.<name>`); a list of apps that carry their `name`
 * is read too, so a reshaped config is still checked rather than passed over.
 */
function appsOf(config: Record<string, unknown>, project: string): Record<string, ConfiguredApp> | undefined {
  const apps = configValue(config, project, "apps");
  if (Array.isArray(apps)) {
    const named = apps.filter((a): a is ConfiguredApp & { name: string } => typeof a?.name === "string" && a.name !== "");
    return Object.fromEntries(named.map((a) => [a.name, a]));
  }
  return apps && typeof apps === "object" ? (apps as Record<string, ConfiguredApp>) : undefined;
}

const isNodeApp = (a: ConfiguredApp | undefined) => (a?.kind ?? "node") !== "static";
const migrates = (a: ConfiguredApp | undefined) => typeof a?.migrate === "string" && a.migrate.trim() !== "";
const hasStep = (resources: Res[], kind: StepKind, app: string) => resources.some((r) => isStep(r, kind) && appOf(r) === app);

/** The node apps of the stack's config (apps.<name>.kind is node unless it says static). */
export function nodeAppsOf(config: Record<string, unknown>, project: string): string[] | undefined {
  const apps = appsOf(config, project);
  if (!apps) return undefined;
  return Object.entries(apps)
    .filter(([, a]) => isNodeApp(a))
    .map(([name]) => name);
}

/**
 * Runbook "future: automated health checks": nothing switches traffic to a node app before its new
 * release passed its health gate (its slot-start step starts the slot and checks it). Every
 * cutover step must follow the slot-start step of each node app.
 */
export function healthCheckBeforeSwitch(resources: Res[], nodeApps: string[] | undefined): Finding[] {
  const byUrn = new Map(resources.map((r) => [r.urn, r]));
  const starts = resources.filter((r) => isStep(r, STEP.slotStart));
  const apps = nodeApps ?? [...new Set(starts.map(appOf).filter((a): a is string => !!a))];
  const findings: Finding[] = [];
  for (const sw of resources.filter((r) => isStep(r, STEP.cutover))) {
    const before = dependencyClosure(sw, byUrn);
    for (const app of apps) {
      if (!starts.some((s) => appOf(s) === app && before.has(s.urn)))
        findings.push({
          resource: sw.name,
          message: `${sw.name} switches traffic to ${app} without its health-checked start (a slot-start step of ${app}) before it`,
        });
    }
  }
  return findings;
}

/**
 * Every app the stack's config gives a migration (`apps.<name>.migrate`) has a migration step for
 * it in the graph. A migration step that was renamed is still found (by its kind); one that was
 * dropped, or no longer declares its kind, is a violation, never a rule that silently passes.
 */
export function migrationStepPresent(resources: Res[], config: Record<string, unknown>, project: string): Finding[] {
  return Object.entries(appsOf(config, project) ?? {})
    .filter(([name, a]) => migrates(a) && !hasStep(resources, STEP.migration, name))
    .map(([name]) => ({ message: `apps.${name}.migrate is set but the deploy has no migration step for ${name}` }));
}

/**
 * Every node app of the stack's config has its health-gated slot-start step in the graph (what
 * health-check-before-switch orders before the cutover; without it that rule would have nothing
 * to check).
 */
export function slotStartStepPresent(resources: Res[], config: Record<string, unknown>, project: string): Finding[] {
  return Object.entries(appsOf(config, project) ?? {})
    .filter(([name, a]) => isNodeApp(a) && !hasStep(resources, STEP.slotStart, name))
    .map(([name]) => ({ message: `apps.${name} is a node app but the deploy has no health-gated slot-start step for it` }));
}

/** Whether a value came through as "not known yet" (preview). */
function isUnknown(v: unknown): boolean {
  return v === UNKNOWN;
}

/** The server's host key is pinned on every remote step, and host key checking is not switched off. */
export function pinnedHostKey(r: Res): Finding[] {
  if (!isCommand(r)) return [];
  const conn = r.props.connection as Record<string, unknown> | undefined;
  if (conn === undefined || conn === null || isUnknown(conn)) return [];
  const problems: string[] = [];
  const hostKey = conn.hostKey;
  if (!isUnknown(hostKey) && (typeof hostKey !== "string" || !/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+/.test(hostKey))) {
    problems.push("connection.hostKey is not set (pin the server's key: server.hostKey)");
  }
  if (conn.insecureIgnoreHostKey === true) problems.push("connection.insecureIgnoreHostKey is true");
  return problems.map((p) => ({ resource: r.name, message: `${r.name}: ${p}` }));
}

/** A config value from PULUMI_CONFIG (`<project>:<key>` → string; objects arrive as JSON text). */
export function configValue(config: Record<string, unknown>, project: string, key: string): unknown {
  const v = config[`${project}:${key}`];
  if (typeof v !== "string") return v;
  const t = v.trim();
  if (t.startsWith("{") || t.startsWith("[")) {
    try {
      return JSON.parse(t);
    } catch {
      return v;
    }
  }
  return v;
}

/**
 * Secret config keys written in clear in the stack file (`Pulumi.<stack>.yaml`). The engine hands
 * the analyzer decrypted config without saying which keys were secret, so the file tells.
 */
export function plaintextSecretsInStackFile(stackFile: Record<string, unknown> | undefined, project: string): Finding[] {
  const config = (stackFile?.config ?? {}) as Record<string, unknown>;
  const findings: Finding[] = [];
  for (const key of SECRET_KEYS) {
    const v = config[`${project}:${key}`] ?? config[key];
    if (v === undefined || v === null) continue;
    if (!isSecure(v))
      findings.push({ message: `config ${key} is in plain text in the stack file: set it with \`pulumi config set --secret ${key}\`` });
  }
  return findings;
}

/** Patterns of secrets that must never be part of a script's text (it is printed when a step fails). */
const SECRET_PATTERNS: [RegExp, string][] = [
  [/[a-z][a-z0-9+.-]*:\/\/[^\s:/@'"]+:[^\s@'"]+@/i, "a URL with a password (scheme://user:pass@)"],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "a private key (-----BEGIN … PRIVATE KEY-----)"],
];

/**
 * No secret in a step's script text: secrets reach a script on stdin or in a 0600 file. Besides the
 * patterns, the decrypted values of the secret config keys are looked for verbatim.
 */
export function secretInCommandText(r: Res, secretValues: string[]): Finding[] {
  if (!isCommand(r)) return [];
  const findings: Finding[] = [];
  for (const field of ["create", "update", "delete"]) {
    const text = r.props[field];
    if (typeof text !== "string" || isUnknown(text)) continue;
    for (const [pattern, what] of SECRET_PATTERNS) {
      if (pattern.test(text)) findings.push({ resource: r.name, message: `${r.name}: its ${field} script holds ${what}` });
    }
    if (secretValues.some((s) => s.length >= 8 && text.includes(s))) {
      findings.push({ resource: r.name, message: `${r.name}: its ${field} script holds the value of a secret config key` });
    }
  }
  return findings;
}

/** The stack's deploy window from PULUMI_CONFIG (already validated by the program's config). */
export function deployWindowOf(config: Record<string, unknown>, project: string): DeployWindow | undefined {
  const w = configValue(config, project, "deployWindow");
  if (!w || typeof w !== "object") return undefined;
  const o = w as Partial<DeployWindow>;
  if (!Array.isArray(o.days) || typeof o.start !== "string" || typeof o.end !== "string" || typeof o.timezone !== "string")
    return undefined;
  return { days: o.days, start: o.start, end: o.end, timezone: o.timezone };
}

/** Outside the window: a message naming the window and the time it is there; inside: undefined. */
export function outsideWindow(window: DeployWindow | undefined, now: Date): string | undefined {
  if (!window || isWithinWindow(window, now)) return undefined;
  return `outside the deploy window (${describeWindow(window)}): it is ${localTime(now, window.timezone).text}`;
}
