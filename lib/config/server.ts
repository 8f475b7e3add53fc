/** A server's SSH and deploy-root settings (`server`, each of `hosts`, `loadBalancer`). */
import * as path from "path";
import { Raw, Reader } from "./reader";
import { ServerConfig } from "./types";

export const ABS_PATH = /^\/[A-Za-z0-9._/-]*$/;
const ENV_KEY = /^[A-Z_][A-Z0-9_]*$/;

/**
 * The deploy root, normalised (`/opt/nostromo/` → `/opt/nostromo`), or why it cannot be one: every
 * path the deploy removes or replaces is under it, so `/` in disguise (`/.`, `//`) and `..` are refused.
 */
export function normaliseRoot(root: string): { root: string; problem?: string } {
  if (root.split("/").includes("..")) return { root, problem: "must not contain '..' segments" };
  const normal = path.posix.normalize(root).replace(/\/+$/, "") || "/";
  if (normal === "/")
    return { root: normal, problem: root === "/" ? "must not be /" : `must not be / (${JSON.stringify(root)} is / once normalised)` };
  return { root: normal };
}

/** One server's SSH and deploy-root settings from `s`, problems reported under `at` (`server`, `hosts.web1`). */
export function parseServer(r: Reader, s: Raw, at: string): ServerConfig {
  const server: ServerConfig = {
    host:
      r.string(s.host, `${at}.host`, { required: true, pattern: /^[A-Za-z0-9.:-]+$/, patternText: "must be a host name or IP address" }) ??
      "",
    port: r.int(s.port, `${at}.port`, 1, 65535, 22) ?? 22,
    user:
      r.string(s.user, `${at}.user`, { required: true, pattern: /^[a-z_][a-z0-9_-]{0,31}$/, patternText: "must be a Unix user name" }) ??
      "",
    root:
      r.string(s.root, `${at}.root`, {
        required: true,
        pattern: ABS_PATH,
        patternText: "must be an absolute path of letters, digits, '.', '_', '-', '/'",
      }) ?? "",
    hostKey: r.string(s.hostKey, `${at}.hostKey`, {
      pattern: /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?$/,
      patternText: "must be an OpenSSH public key line (`ssh-ed25519 AAAA…`), as in known_hosts",
    }),
    insecureIgnoreHostKey: r.bool(s.insecureIgnoreHostKey, `${at}.insecureIgnoreHostKey`, false),
    path: r.stringList(s.path, `${at}.path`, ABS_PATH, "must be an absolute path"),
    env: r.stringMap(s.env, `${at}.env`, ENV_KEY),
    minFreeMiB: r.int(s.minFreeMiB, `${at}.minFreeMiB`, 0, 10_000_000, 512) ?? 512,
  };
  if (server.root) {
    const { root, problem } = normaliseRoot(server.root);
    if (problem) r.fail(`${at}.root`, problem);
    server.root = root;
  }
  if (!server.hostKey && !server.insecureIgnoreHostKey) {
    r.fail(`${at}.hostKey`, `is required: pin the server's host key (ssh-keyscan), or set ${at}.insecureIgnoreHostKey: true`);
  }
  return server;
}
