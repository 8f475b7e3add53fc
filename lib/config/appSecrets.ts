/**
 * `appSecrets`: a stack secret (JSON: app → { ENV_KEY: value }) whose values go into that app's
 * .env beside its config `env`, through the same secret path as DATABASE_URL (the rendered .env
 * is a Pulumi secret and reaches the server on standard input only). Django's SECRET_KEY, a
 * smoke account's password, a Redis URL with its password. The config check reads names only.
 */
import { Reader } from "./reader";
import { AppConfig } from "./types";

export const APP_SECRETS_KEY = "appSecrets";
const ENV_KEY = /^[A-Z_][A-Z0-9_]*$/;
/** Names the deploy itself writes into an app's .env. */
const RESERVED = ["DATABASE_URL", "JWT_SECRET", "APP_VERSION", "PORT"];

const howToSet = (app: string, key: string) => `pulumi config set --secret --path '${APP_SECRETS_KEY}.${app}.${key}' …`;

/** app → the keys `appSecrets` holds for it (never the values), or why it cannot be read. */
export function appSecretNames(json: string | undefined): { names: Record<string, string[]>; problem?: string } {
  if (json === undefined) return { names: {} };
  const problem = `must be an object of app → { ENV_KEY: text } (${howToSet("<app>", "<KEY>")})`;
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return { names: {}, problem };
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) return { names: {}, problem };
  const names: Record<string, string[]> = {};
  for (const [app, keys] of Object.entries(v)) {
    if (!keys || typeof keys !== "object" || Array.isArray(keys) || Object.values(keys).some((x) => typeof x !== "string")) {
      return { names: {}, problem: `${problem}; not so for ${JSON.stringify(app)}` };
    }
    names[app] = Object.keys(keys).sort();
  }
  return { names };
}

/** The values for `app` (inside the secret path only: an apply on the secret). */
export function appSecretValues(json: string | undefined, app: string): Record<string, string> {
  if (!json) return {};
  const v = (JSON.parse(json) as Record<string, Record<string, string>>)[app];
  return v ? { ...v } : {};
}

/** Refuses, by path, secrets for an unknown app, a key a shell cannot hold, or one the config or the deploy already sets. */
export function checkAppSecrets(r: Reader, names: Record<string, string[]>, apps: AppConfig[]): void {
  for (const [name, keys] of Object.entries(names)) {
    const app = apps.find((a) => a.name === name);
    if (!app) {
      r.fail(`${APP_SECRETS_KEY}.${name}`, `no app named ${JSON.stringify(name)}`);
      continue;
    }
    const deploys = [...RESERVED, ...(app.staticFolders ?? []).flatMap((f) => [f.dirVar, f.urlVar])];
    for (const key of keys) {
      const at = `${APP_SECRETS_KEY}.${name}.${key}`;
      if (!ENV_KEY.test(key)) r.fail(at, "must be an environment name (A-Z, 0-9, _)");
      else if (app.env[key] !== undefined) r.fail(at, `is also set in apps.${name}.env: keep it in one place`);
      else if (deploys.includes(key)) r.fail(at, "is written by the deploy itself");
    }
  }
}
