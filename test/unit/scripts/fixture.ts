/** What the exact-text tests of lib/scripts share: commits, the config, and a step's whole text. */
import * as assert from "assert";
import { DeployConfig, parseDeployConfig } from "../../../lib/config";
import { leaseGuard, prelude } from "../../../lib/scripts";
import { validRaw } from "../../support/validConfig";

export const SHA = "0123456789abcdef0123456789abcdef01234567";
export const SHA2 = "fedcba9876543210fedcba9876543210fedcba98";

/** The valid config of test/support, with `edit` applied to its raw form first. */
export function parse(edit: (raw: Record<string, any>) => void = () => {}, stack = "unit"): DeployConfig {
  const raw = validRaw();
  edit(raw);
  return parseDeployConfig(stack, raw, { sshPrivateKey: true, databaseUrl: true });
}

/** A step's whole text: set -eu, the prelude and the lease guard (exact text in layout/lock tests), then `lines`. */
export function stepText(cfg: DeployConfig, lines: string[]): string {
  return ["set -eu", prelude(cfg.server), leaseGuard(cfg), ...lines, ""].join("\n");
}

/** `lines` with the one line `old` replaced by `by`. */
export function replaced(lines: string[], old: string, by: string[]): string[] {
  const at = lines.indexOf(old);
  assert.ok(at >= 0 && lines.lastIndexOf(old) === at, `expected text has the line ${old} once`);
  return [...lines.slice(0, at), ...by, ...lines.slice(at + 1)];
}
