/**
 * The traffic switch of every app, all or nothing: every app's new release is verified before
 * any is switched, a failure at any point after the first switch (a smoke test, the bake) puts
 * every switched app back, and what each app serves afterwards is read from the server.
 */
import { AppConfig, DeployConfig, SECRET_REF, SmokeStep } from "../config";
import { bakeApps, bakeLines } from "./bake";
import { nginxErrorLines, slotLogLines } from "./bundle";
import { quote, script } from "../shell";
import { EXPECT_FIELDS, expectedText } from "./health";
import { drainFile, layout, prelude } from "./layout";
import { stepScript } from "./lock";
import { liveAnswer, liveAnswerPath, liveLinkTarget } from "./nginx";
import { restartSlotLine } from "./slot";

/** One app's cutover target: its checked release, and for node apps the checked slot. */
export interface CutoverTarget {
  app: AppConfig;
  sha: string;
  slot?: string;
  port?: number;
  /** Digest of the app's .env: an idle slot started with another one is restarted. */
  envDigest?: string;
}

/** A shell test that is true when `t` already serves: release, live slot and nginx's live link. */
function servingTest(cfg: DeployConfig, t: CutoverTarget): string {
  const L = layout(cfg.server.root, t.app.name);
  const release = quote(`${L.releases}/${t.sha}`);
  const current = `[ "$(readlink ${quote(L.current)} 2>/dev/null)" = ${release} ]`;
  if (t.app.kind === "static") return current;
  return [
    current,
    `[ "$(cat ${quote(`${L.slots}/live`)} 2>/dev/null)" = ${quote(String(t.slot))} ]`,
    `[ "$(readlink ${quote(L.liveLink)} 2>/dev/null)" = ${quote(liveLinkTarget(t.app.name, String(t.slot)))} ]`,
  ].join(" && ");
}

/**
 * nginx's own word that it routes the app to `slot` now (nginx.ts liveAnswerLocation), for an app
 * nginx routes: a worker that cannot read the link would keep routing to blue. Else the switch
 * failed (and is put back).
 */
function nginxSeesLines(cfg: DeployConfig, app: AppConfig, slot: string): string[] {
  if (!cfg.nginx.routes.some((r) => r.serve === "slot" && r.app === app.name)) return [];
  const url = `http://127.0.0.1:${cfg.nginx.port}${liveAnswerPath(app.name)}`;
  const link = layout(cfg.server.root, app.name).liveLink;
  return [
    `  seen=$(curl -sS -m 5 ${quote(url)} 2>&1) || true`,
    `  [ "$seen" = ${quote(liveAnswer(app.name, slot))} ] || { echo "switch of ${app.name} failed: nginx answers "${quote(url)}" with '$seen', not ${liveAnswer(app.name, slot)}: it reads ${link} for every request (can its workers read that path? does it run this site?)" >&2; exit 1; }`,
  ];
}

/** Renames a new live link (to the shell word `target`) over the app's: new requests go there, no reload (nginx.ts). */
function linkLine(L: ReturnType<typeof layout>, target: string): string {
  return `ln -sfn ${target} ${quote(`${L.liveLink}.new`)} && mv -T ${quote(`${L.liveLink}.new`)} ${quote(L.liveLink)}`;
}

/**
 * Checks one app's new release before anything is switched (static: its site; node: its slot);
 * a failed check exits `refusedExit`.
 */
function verifyLines(cfg: DeployConfig, t: CutoverTarget, refusedExit: number): string[] {
  const { app, sha } = t;
  const L = layout(cfg.server.root, app.name);
  const release = `${L.releases}/${sha}`;
  if (app.kind === "static") {
    const index = `${release}/${app.output}/index.html`;
    return [
      `[ -s ${quote(index)} ] || { echo "check failed for ${app.name}: ${index} is missing or empty; nothing was switched" >&2; exit ${refusedExit}; }`,
    ];
  }
  return [
    `[ "$(readlink ${quote(`${L.slots}/${t.slot}`)} 2>/dev/null)" = ${quote(release)} ] || { echo "check failed for ${app.name}: slot ${t.slot} does not hold release ${sha.slice(0, 12)}; nothing was switched" >&2; exit ${refusedExit}; }`,
    // Every health path again, each with its own fields (the version where it is compared).
    ...app.health!.checks.flatMap((check) => {
      const url = `http://127.0.0.1:${t.port}${check.path}`;
      const expect = expectedText(check, app.version);
      if (!expect) {
        return [
          `curl -fsS -m 5 -o /dev/null ${quote(url)} 2>"$nostromo_tmp/verify" || { echo "check failed for ${app.name}: "${quote(url)}" does not answer ($(cat "$nostromo_tmp/verify")); nothing was switched" >&2; exit ${refusedExit}; }`,
        ];
      }
      return [
        `curl -fsS -m 5 -o "$nostromo_tmp/verify-body" ${quote(url)} 2>"$nostromo_tmp/verify" || { echo "check failed for ${app.name}: "${quote(url)}" does not answer ($(cat "$nostromo_tmp/verify")); nothing was switched" >&2; exit ${refusedExit}; }`,
        `why=$(node -e ${quote(EXPECT_FIELDS)} ${quote(expect)} "$(cat "$nostromo_tmp/verify-body")") || { echo "check failed for ${app.name}: "${quote(url)}" expected HTTP 200 with "${quote(expect)}", got HTTP 200 ($why): $(head -c 300 "$nostromo_tmp/verify-body"); nothing was switched" >&2; exit ${refusedExit}; }`,
      ];
    }),
  ];
}

/**
 * The atomic switch of one app, when it is not already serving that release. Node apps: nginx's
 * live link is renamed to name the new slot (nginx reads it per request: the old slot finishes
 * its requests and stays up for a rollback; no reload drops a kept-alive connection). Static
 * apps: the `current` symlink is swapped with `mv -T`. What was switched is listed in $switched
 * for a switch-back.
 */
function switchLines(cfg: DeployConfig, t: CutoverTarget): string[] {
  const { app, sha } = t;
  const L = layout(cfg.server.root, app.name);
  const release = `${L.releases}/${sha}`;
  const lines = [`if ${servingTest(cfg, t)}; then`, `  echo "${app.name} already serves ${sha.slice(0, 12)}"`, `else`];
  lines.push(
    `  readlink ${quote(L.current)} > ${quote(`${L.releases}/.previous`)} 2>/dev/null || rm -f ${quote(`${L.releases}/.previous`)}`,
  );
  if (app.kind !== "static") {
    lines.push(
      `  switched="$switched ${app.name}"`,
      `  cat ${quote(`${L.slots}/live`)} > ${quote(`${L.slots}/previous`)} 2>/dev/null || true`,
      `  ${linkLine(L, quote(liveLinkTarget(app.name, String(t.slot))))}`,
      `  printf '%s\\n' ${quote(String(t.slot))} > ${quote(`${L.slots}/live`)}`,
      ...nginxSeesLines(cfg, app, String(t.slot)),
    );
  }
  lines.push(
    `  ln -sfn ${quote(release)} ${quote(`${L.current}.new`)} && mv -T ${quote(`${L.current}.new`)} ${quote(L.current)}`,
    ...(app.kind !== "static" ? [] : [`  switched="$switched ${app.name}"`]),
    `  echo "switched ${app.name} to ${sha.slice(0, 12)}${app.kind !== "static" ? ` (slot ${t.slot}, port ${t.port})` : ""}"`,
    `fi`,
  );
  return lines;
}

/** Puts one switched app back on the release (and slot, and live link) that served before. */
function switchBackLines(cfg: DeployConfig, app: AppConfig): string[] {
  const L = layout(cfg.server.root, app.name);
  const lines = [`case " $switched " in *" ${app.name} "*)`];
  if (app.kind !== "static") {
    lines.push(
      `  previous=$(cat ${quote(`${L.slots}/previous`)} 2>/dev/null || true)`,
      `  case "$previous" in blue|green) ${linkLine(L, `${quote(`${app.name}.`)}"$previous"`)};; esac`,
      `  [ -f ${quote(`${L.slots}/previous`)} ] && cp ${quote(`${L.slots}/previous`)} ${quote(`${L.slots}/live`)} || true`,
    );
  }
  lines.push(
    `  if [ -f ${quote(`${L.releases}/.previous`)} ]; then`,
    `    ln -sfn "$(cat ${quote(`${L.releases}/.previous`)})" ${quote(`${L.current}.new`)} && mv -T ${quote(`${L.current}.new`)} ${quote(L.current)}`,
    `  else`,
    `    rm -f ${quote(L.current)}`,
    `  fi`,
    `  echo "switched ${app.name} back" >&2;;`,
    `esac`,
  );
  return lines;
}

/** Prints `<app>=<sha12>[/<slot>]` for every app, as the server has it now, into $serving. */
export function servingLines(cfg: DeployConfig, apps: AppConfig[]): string[] {
  return [
    `serving=""`,
    ...apps.map((app) => {
      const L = layout(cfg.server.root, app.name);
      const slot = app.kind !== "static" ? `"/$(cat ${quote(`${L.slots}/live`)} 2>/dev/null || echo none)"` : "";
      return `serving="$serving ${app.name}=$(basename "$(readlink ${quote(L.current)} 2>/dev/null || echo none)" | cut -c1-12)"${slot}`;
    }),
    `serving=\${serving# }`,
  ];
}

/**
 * After a committed switch: the idle slot of a node app, kept for an instant rollback, is
 * restarted when it was started with another environment (a rotated secret must not come back
 * on rollback), and checked; one that does not come back is stopped, and said so.
 */
function refreshIdleSlotLines(cfg: DeployConfig, t: CutoverTarget): string[] {
  const { app } = t;
  if (app.kind === "static" || !t.envDigest) return [];
  const L = layout(cfg.server.root, app.name);
  const idle = t.slot === "blue" ? "green" : "blue";
  const port = app.ports![idle];
  const running =
    app.manager === "pm2"
      ? `pm2 describe ${quote(`${app.name}-${idle}`)} >/dev/null 2>&1`
      : `systemctl is-active --quiet ${quote(`nostromo-${app.name}-${idle}.service`)}`;
  const stop =
    app.manager === "pm2"
      ? `pm2 delete ${quote(`${app.name}-${idle}`)} >/dev/null 2>&1`
      : `systemctl disable --now --quiet ${quote(`nostromo-${app.name}-${idle}.service`)}`;
  const url = `http://127.0.0.1:${port}${app.health!.checks[0].path}`;
  return [
    `slot=${idle}`,
    // The digest first: it is a file read, where asking PM2 starts its CLI (0.1 s).
    `if [ "$(cat ${quote(`${L.slots}/${idle}.env`)} 2>/dev/null)" != ${quote(t.envDigest)} ] && ${running}; then`,
    `  ${restartSlotLine(app)}`,
    `  ok=""; for _ in $(seq 1 ${app.health!.timeoutSeconds}); do curl -fsS -m 5 -o /dev/null ${quote(url)} 2>/dev/null && { ok=1; break; }; sleep 1; done`,
    `  if [ -n "$ok" ]; then printf '%s\\n' ${quote(t.envDigest)} > ${quote(`${L.slots}/${idle}.env`)}; echo "${app.name}: idle slot ${idle} restarted with the new environment"`,
    `  else ${stop} || true; rm -f ${quote(`${L.slots}/${idle}.env`)}; echo "${app.name}: idle slot ${idle} did not answer "${quote(url)}" with the new environment and was stopped (a rollback will start it again)" >&2; fi`,
    `fi`,
  ];
}

/**
 * Node program run on the server: the smoke steps through the public port. The steps come as an
 * argument with their `${secret:NAME}` placeholders; the secrets' values come on stdin (one JSON
 * line) and are filled into bodies and headers in memory only, and masked in what is printed.
 */
const SMOKE_PROGRAM = `
const steps = JSON.parse(process.argv[1]); const base = process.argv[2];
const secrets = JSON.parse(require("fs").readFileSync(0, "utf8").trim() || "{}");
const fill = (v) => typeof v === "string" ? v.replace(${SECRET_REF}, (_, n) => { if (typeof secrets[n] !== "string") throw new Error("secret " + n + " was not sent"); return secrets[n]; })
  : Array.isArray(v) ? v.map(fill) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x)])) : v;
const mask = (t) => Object.values(secrets).reduce((a, v) => (v ? a.split(v).join("[secret]") : a), String(t));
const get = (o, p) => p.split(".").reduce((v, k) => (v == null ? undefined : v[k]), o);
(async () => {
  let token;
  for (const s of steps) {
    const headers = { "content-type": "application/json", ...fill(s.headers) };
    if (s.auth) headers.authorization = "Bearer " + token;
    const res = await fetch(base + s.path, { method: s.method, headers, body: s.body === undefined ? undefined : JSON.stringify(fill(s.body)), signal: AbortSignal.timeout(10000) });
    const text = await res.text(); let json; try { json = JSON.parse(text); } catch {}
    const fail = (why) => { console.error(mask("smoke test failed: " + s.name + ": " + s.method + " " + base + s.path + ": " + why + "; got HTTP " + res.status + ": " + text.slice(0, 300))); process.exit(1); };
    if (res.status !== s.expectStatus) fail("expected HTTP " + s.expectStatus);
    for (const f of s.expectFields) if (get(json, f) === undefined) fail("expected field " + f);
    for (const [f, v] of Object.entries(s.expectValues)) if (String(get(json, f)) !== v) fail("expected " + f + " = " + v);
    if (s.expectEvery) { const arr = get(json, s.expectEvery.array); if (!Array.isArray(arr) || arr.length === 0) fail("expected a non-empty list " + s.expectEvery.array); for (const it of arr) if (String(it[s.expectEvery.field]) !== s.expectEvery.value) fail("expected every " + s.expectEvery.array + "[]." + s.expectEvery.field + " = " + s.expectEvery.value); }
    if (s.captureToken) token = get(json, s.captureToken);
    console.log("smoke ok: " + s.name);
  }
})().catch((e) => { console.error(mask("smoke test failed: " + e.message)); process.exit(1); });
`;

/**
 * Every target verified, then every app switched; an exit with `$rc` non-zero from then on (the
 * exit handler runs nostromo_cleanup) puts every switched app back and says what serves now.
 * Shared by the cutover and the rollback tool's switch (`what` names which in the error).
 */
export function verifyAndSwitchLines(cfg: DeployConfig, targets: CutoverTarget[], what: string, refusedExit = 1): string[] {
  const apps = targets.map((t) => t.app);
  // A fleet's web host leaves the load balancer once verified, and comes back switched and checked (or switched back).
  const drain = drainFile(cfg);
  return [
    `mkdir -p ${quote(`${cfg.server.root}/current`)}`,
    `switched=""`,
    `nostromo_cleanup() {`,
    `  [ "$rc" -ne 0 ] || return 0`,
    // Best effort: one app that cannot be put back must not stop the others.
    `  set +e`,
    ...[...targets].reverse().flatMap((t) => switchBackLines(cfg, t.app).map((l) => `  ${l}`)),
    ...servingLines(cfg, apps).map((l) => `  ${l}`),
    ...(drain ? [`  rm -f ${quote(drain)}`] : []),
    `  echo "${what} failed; $([ -n "$switched" ] && echo "switched back:$switched" || echo "nothing was switched"). Serving now: $serving" >&2`,
    `}`,
    ...targets.flatMap((t) => verifyLines(cfg, t, refusedExit)),
    ...(drain ? [`touch ${quote(drain)} && echo "out of the load balancer"`] : []),
    ...targets.flatMap((t) => switchLines(cfg, t)),
  ];
}

/**
 * The cutover: every app's new release verified, every app switched to it, then the smoke steps
 * through the public port. A failure after the first switch puts every switched app back (the
 * exit trap), and the error says what each app serves now, read from the server. One step, so
 * a failed cutover leaves no switch recorded: the next `up` verifies and switches again.
 * Result: switched (apps), serving (`app=<sha12>[/slot]` …), smoke (passed step names), bake
 * (the bake's verdict and figures as JSON; "": none ran).
 */
export function cutoverScript(cfg: DeployConfig, targets: CutoverTarget[], steps: SmokeStep[]): string {
  const apps = targets.map((t) => t.app);
  const pm2 = apps.some((a) => a.kind !== "static" && a.manager === "pm2");
  // A failed smoke step or bake shows what the slots now taking traffic logged, and nginx's errors.
  const bundle = [...targets.filter((t) => t.slot).map((t) => slotLogLines(t.app, quote(t.slot!))), nginxErrorLines(cfg)];
  return stepScript(
    cfg,
    // The smoke secrets (one JSON line on stdin, smokeSecretsLine), read before any command that
    // might read stdin; kept in an unexported variable until the smoke program gets them.
    steps.length > 0 && `IFS= read -r smoke_secrets || true`,
    ...verifyAndSwitchLines(cfg, targets, "cutover"),
    // The bake's windows meet here: the old slots' traffic before it, the new ones' after.
    `switch_at=$(date +%s%3N)`,
    `smoke=""`,
    steps.length === 0
      ? `echo "no smoke steps configured"`
      : [
          // Into the program's stdin: a here-string is no argument and no environment variable.
          `if ! node -e ${quote(SMOKE_PROGRAM)} ${quote(JSON.stringify(steps))} ${quote(`http://127.0.0.1:${cfg.nginx.port}`)} <<<"$smoke_secrets" > "$nostromo_tmp/smoke"; then`,
          `  cat "$nostromo_tmp/smoke"`,
          ...bundle,
          `  exit 1`,
          `fi`,
          `cat "$nostromo_tmp/smoke"`,
          `smoke=$(sed -n 's/^smoke ok: //p' "$nostromo_tmp/smoke")`,
        ].join("\n"),
    // Checked: back in the load balancer, whose traffic the bake then watches.
    drainFile(cfg) && `rm -f ${quote(drainFile(cfg)!)} && echo "back in the load balancer"`,
    ...bakeLines(cfg, bakeApps(cfg, targets), bundle),
    // Committed: from here a failure no longer switches back.
    `nostromo_cleanup() { :; }`,
    pm2 && `pm2 save --force >/dev/null`,
    ...targets.flatMap((t) => refreshIdleSlotLines(cfg, t)),
    ...servingLines(cfg, apps),
    `nostromo_result switched="\${switched# }" serving="$serving" smoke="$smoke" bake="$bake"`,
  );
}

/**
 * `pulumi refresh`'s question for the cutover: does every app still serve what it switched to
 * (release, live slot, nginx's live link)? Exit 3 (drift) names what differs; the next `up` switches again.
 */
export function cutoverCheckScript(cfg: DeployConfig, targets: CutoverTarget[]): string {
  return script(
    prelude(cfg.server),
    `drift=""`,
    ...targets.map((t) => `${servingTest(cfg, t)} || drift="$drift ${t.app.name}"`),
    ...(drainFile(cfg) ? [`[ ! -e ${quote(drainFile(cfg)!)} ] || drift="$drift (out of the load balancer)"`] : []),
    ...servingLines(
      cfg,
      targets.map((t) => t.app),
    ),
    `[ -z "$drift" ] || { echo "traffic drifted for:$drift (serving now: $serving)"; exit 3; }`,
    `echo "every app serves what it was switched to: $serving"`,
  );
}

/** What every app serves on the server now (read only): result `serving` (`app=<sha12>[/slot]` …). */
export function servingScript(cfg: DeployConfig, apps: AppConfig[]): string {
  return script(prelude(cfg.server), ...servingLines(cfg, apps), `nostromo_result serving="$serving"`);
}

/**
 * A fleet's switch-back of one web host after its batch failed elsewhere: every app named in
 * NOSTROMO_SWITCHED (the host's cutover result `switched`) goes back to the slot and release that
 * served before, once its previous slot answers its first health path; one that does not stays
 * on the new release, and the error says so. Result: switchedBack (apps), serving.
 */
export function switchBackScript(cfg: DeployConfig, apps: AppConfig[]): string {
  return stepScript(
    cfg,
    `switched=""`,
    ...apps.flatMap((app) => {
      const L = layout(cfg.server.root, app.name);
      const answers =
        app.kind === "static"
          ? `[ -f ${quote(`${L.releases}/.previous`)} ]`
          : `curl -fsS -m 5 -o /dev/null "http://127.0.0.1:$port"${quote(app.health!.checks[0].path)}`;
      return [
        `case " \${NOSTROMO_SWITCHED:-} " in *" ${app.name} "*)`,
        ...(app.kind === "static"
          ? []
          : [
              `  previous=$(cat ${quote(`${L.slots}/previous`)} 2>/dev/null || true)`,
              `  case "$previous" in blue) port=${app.ports!.blue};; green) port=${app.ports!.green};; *) port="";; esac`,
            ]),
        `  if [ -n "\${port-x}" ] && ${answers}; then switched="$switched ${app.name}"`,
        `  else echo "${app.name}: what served before does not answer; it stays on the new release" >&2; fi;;`,
        `esac`,
      ];
    }),
    ...apps.flatMap((app) => switchBackLines(cfg, app)),
    ...servingLines(cfg, apps),
    `nostromo_result switchedBack="\${switched# }" serving="$serving"`,
  );
}
