/**
 * Every step a deploy runs, named in one place. Each Command carries its kind as the input `step`
 * (and `app` where it belongs to one): the policy pack, the tools and the test mocks find steps by
 * it, never by resource-name suffixes, so a rename cannot make a rule silently pass.
 */
export const STEP = {
  preflight: "preflight",
  lock: "lock",
  backup: "backup",
  release: "release",
  migration: "migration",
  slotStart: "slot-start",
  nginxSite: "nginx-site",
  cutover: "cutover",
  loadBalancer: "load-balancer",
  fleetCutover: "fleet-cutover",
  workers: "workers",
  record: "record",
  notifyStart: "notify-start",
  notifySuccess: "notify-success",
} as const;

export type StepKind = (typeof STEP)[keyof typeof STEP];

/** The child resource name of each step under its component (`nostromo-orchestrator-migration` + `-run`). */
export const STEP_SUFFIX: Record<StepKind, string> = {
  preflight: "preflight",
  lock: "lock",
  backup: "dump",
  release: "build",
  migration: "run",
  "slot-start": "start",
  "nginx-site": "install",
  cutover: "switch-and-smoke",
  "load-balancer": "install",
  "fleet-cutover": "rolling-switch",
  workers: "start",
  record: "append",
  "notify-start": "send",
  "notify-success": "send",
};

/** `<component name>-<suffix>`: the resource name of a step. */
export function stepName(component: string, kind: StepKind): string {
  return `${component}-${STEP_SUFFIX[kind]}`;
}

/** The resource type of a step (our Command dynamic resource) and of each component. */
export const COMMAND_TYPE = "pulumi-nodejs:dynamic/nostromo:Command";
export const COMPONENT_TYPE = {
  deployment: "nostromo:deployment:Deployment",
  server: "nostromo:server:Server",
  backup: "nostromo:databaseBackup:DatabaseBackup",
  release: "nostromo:appRelease:AppRelease",
  migration: "nostromo:migration:Migration",
  service: "nostromo:service:Service",
  nginxSite: "nostromo:nginxSite:NginxSite",
  cutover: "nostromo:cutover:Cutover",
  loadBalancer: "nostromo:loadBalancer:LoadBalancer",
  fleetCutover: "nostromo:fleetCutover:FleetCutover",
  fleet: "nostromo:fleet:FleetHost",
  workers: "nostromo:workers:Workers",
  record: "nostromo:deployRecord:DeployRecord",
  notification: "nostromo:notification:Notification",
} as const;
