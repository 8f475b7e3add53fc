import * as assert from "assert";
import { DeployConfig } from "../../../lib/config";
import {
  CutoverTarget,
  cutoverCheckScript,
  cutoverScript,
  drainFile,
  loadBalancerCheckScript,
  loadBalancerScript,
  loadBalancerSite,
  loadBalancerSitePath,
  loadBalancerUpstream,
  nginxSite,
  prelude,
  servingScript,
  switchBackScript,
} from "../../../lib/scripts";
import { SHA, SHA2, parse, replaced, stepText } from "./fixture";

const KEY = (n: number) => `ssh-ed25519 AAAAC3Nza${n}`;

/** The fixture's system on three web hosts behind a load balancer. */
function fleet(): DeployConfig {
  return parse((raw) => {
    raw.server = { user: "deploy", root: "/srv/nostromo" };
    raw.hosts = {
      web1: { host: "10.0.0.11", hostKey: KEY(1), roles: ["web", "primary"] },
      web2: { host: "10.0.0.12", hostKey: KEY(2), roles: ["web"] },
      web3: { host: "10.0.0.13", hostKey: KEY(3), roles: ["web"] },
    };
    raw.loadBalancer = { host: "10.0.0.2", hostKey: KEY(5), port: 80, reloadCommand: "nginx -s reload" };
  }, "unit");
}

function targets(cfg: DeployConfig): CutoverTarget[] {
  return [
    { app: cfg.apps[0], sha: SHA, slot: "green", port: 8002, envDigest: "d1gest" },
    { app: cfg.apps[1], sha: SHA2 },
  ];
}

const lines = (text: string) => text.split("\n");

describe("unit: scripts of a fleet (exact text; issue 12)", () => {
  it("the load balancer's site: every web host in one upstream; drained (503) or silent hosts passed over", () => {
    const cfg = fleet();
    assert.strictEqual(loadBalancerUpstream("unit"), "nostromo_fleet_unit");
    assert.strictEqual(
      loadBalancerSite(cfg),
      [
        "# Written by nostromo-deploy (stack unit): the load balancer of the web hosts web1, web2, web3",
        "upstream nostromo_fleet_unit {",
        "    server 10.0.0.11:8080 max_fails=1 fail_timeout=1s;",
        "    server 10.0.0.12:8080 max_fails=1 fail_timeout=1s;",
        "    server 10.0.0.13:8080 max_fails=1 fail_timeout=1s;",
        "    keepalive 32;",
        "}",
        "server {",
        "    listen 80;",
        "    location / {",
        "        proxy_pass http://nostromo_fleet_unit;",
        "        proxy_http_version 1.1;",
        `        proxy_set_header Connection "";`,
        "        proxy_set_header Host $host;",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        proxy_connect_timeout 2s;",
        "        proxy_next_upstream error timeout http_502 http_503 non_idempotent;",
        "    }",
        "}",
        "",
      ].join("\n"),
    );
  });

  it("installs the load balancer's site only when it differs, tested first, the previous one put back when refused", () => {
    const cfg = fleet();
    const site = loadBalancerSitePath(cfg.fleet!.loadBalancer!, "unit");
    assert.strictEqual(site, "/srv/nostromo/nginx/nostromo-unit.conf");
    const text = `'${loadBalancerSite(cfg).replace(/'/g, `'\\''`)}'`;
    assert.strictEqual(
      loadBalancerScript(cfg),
      [
        "set -eu",
        prelude(cfg.fleet!.loadBalancer!.server),
        "mkdir -p '/srv/nostromo/nginx'",
        `if [ -f '${site}' ] && [ "$(cat '${site}')" = ${`'${loadBalancerSite(cfg).trimEnd().replace(/'/g, `'\\''`)}'`} ]; then`,
        `  echo "load balancer site unchanged: ${site}"`,
        "else",
        `  [ -f '${site}' ] && cp -p '${site}' '${site}.previous' || rm -f '${site}.previous'`,
        `  printf '%s' ${text} > '${site}.new' && mv -f '${site}.new' '${site}'`,
        "  if ! nginx -t > /tmp/nostromo-lb-test.$$ 2>&1; then",
        "    cat /tmp/nostromo-lb-test.$$ >&2; rm -f /tmp/nostromo-lb-test.$$",
        `    if [ -f '${site}.previous' ]; then mv -f '${site}.previous' '${site}'; else rm -f '${site}'; fi`,
        `    echo "nginx on the load balancer rejected the site; the previous one was put back" >&2; exit 1`,
        "  fi",
        "  rm -f /tmp/nostromo-lb-test.$$",
        "  nginx -s reload",
        `  echo "load balancer site installed: ${site}"`,
        "fi",
        `nostromo_result site='${site}'`,
        "",
      ].join("\n"),
    );
    assert.match(loadBalancerCheckScript(cfg), /was changed or removed"; exit 3; }\necho "load balancer site as written"\n$/);
  });

  it("a web host's nginx answers 503 to all but itself while its drain file exists", () => {
    const host = { ...fleet(), server: fleet().fleet!.hosts[1].server };
    const site = lines(nginxSite(host));
    const at = site.indexOf("    set $nostromo_drain $remote_addr;");
    assert.deepStrictEqual(site.slice(at, at + 7), [
      "    set $nostromo_drain $remote_addr;",
      "    if (!-e /srv/nostromo/.drain) {",
      "        set $nostromo_drain 127.0.0.1;",
      "    }",
      "    if ($nostromo_drain !~ ^(127\\.0\\.0\\.1|::1)$) {",
      "        return 503;",
      "    }",
    ]);
    assert.ok(!nginxSite(parse()).includes("nostromo_drain"), "a single server has no drain");
    // A lone web host behind a load balancer is never taken out: nothing else would serve.
    const lone = parse((raw) => {
      raw.server = { user: "deploy", root: "/srv/nostromo" };
      raw.hosts = { web1: { host: "10.0.0.11", hostKey: KEY(1), roles: ["web", "primary"] } };
      raw.loadBalancer = { host: "10.0.0.2", hostKey: KEY(5) };
    });
    assert.strictEqual(drainFile(lone), undefined);
    assert.strictEqual(drainFile(host), "/srv/nostromo/.drain");
    assert.ok(!nginxSite(lone).includes("nostromo_drain") && !cutoverScript(lone, targets(lone), []).includes(".drain"));
  });

  it("a web host's cutover: out of the load balancer once verified, back in once the smoke tests pass, and back in on a failure", () => {
    const single = parse();
    const host = { ...fleet(), server: { ...fleet().fleet!.hosts[1].server } };
    // Same text as a single server's, but for the drain lines (both have root /srv/nostromo).
    const base = lines(cutoverScript(single, targets(single), []));
    let expected = replaced(
      base,
      `  echo "cutover failed; $([ -n "$switched" ] && echo "switched back:$switched" || echo "nothing was switched"). Serving now: $serving" >&2`,
      [
        "  rm -f '/srv/nostromo/.drain'",
        `  echo "cutover failed; $([ -n "$switched" ] && echo "switched back:$switched" || echo "nothing was switched"). Serving now: $serving" >&2`,
      ],
    );
    const firstSwitch = expected.findIndex((l) => l.startsWith(`if [ "$(readlink '/srv/nostromo/current/orchestrator'`));
    expected = [
      ...expected.slice(0, firstSwitch),
      `touch '/srv/nostromo/.drain' && echo "out of the load balancer"`,
      ...expected.slice(firstSwitch),
    ];
    expected = replaced(expected, `echo "no smoke steps configured"`, [
      `echo "no smoke steps configured"`,
      `rm -f '/srv/nostromo/.drain' && echo "back in the load balancer"`,
    ]);
    assert.deepStrictEqual(lines(cutoverScript(host, targets(host), [])), expected);
    assert.match(
      cutoverCheckScript(host, targets(host)),
      /\n\[ ! -e '\/srv\/nostromo\/\.drain' \] \|\| drift="\$drift \(out of the load balancer\)"\n/,
    );
  });

  it("reads what a host serves; switches back only the apps its cutover switched, once what served before answers", () => {
    const cfg = fleet();
    const apps = cfg.apps;
    assert.strictEqual(
      servingScript(cfg, apps),
      [
        "set -eu",
        prelude(cfg.server),
        `serving=""`,
        `serving="$serving orchestrator=$(basename "$(readlink '/srv/nostromo/current/orchestrator' 2>/dev/null || echo none)" | cut -c1-12)""/$(cat '/srv/nostromo/slots/orchestrator/live' 2>/dev/null || echo none)"`,
        `serving="$serving sevastopol=$(basename "$(readlink '/srv/nostromo/current/sevastopol' 2>/dev/null || echo none)" | cut -c1-12)"`,
        "serving=${serving# }",
        `nostromo_result serving="$serving"`,
        "",
      ].join("\n"),
    );
    const text = lines(switchBackScript(cfg, apps));
    const start = text.indexOf(`switched=""`);
    assert.deepStrictEqual(text.slice(start, start + 13), [
      `switched=""`,
      `case " \${NOSTROMO_SWITCHED:-} " in *" orchestrator "*)`,
      "  previous=$(cat '/srv/nostromo/slots/orchestrator/previous' 2>/dev/null || true)",
      `  case "$previous" in blue) port=8001;; green) port=8002;; *) port="";; esac`,
      `  if [ -n "\${port-x}" ] && curl -fsS -m 5 -o /dev/null "http://127.0.0.1:$port"'/health'; then switched="$switched orchestrator"`,
      `  else echo "orchestrator: what served before does not answer; it stays on the new release" >&2; fi;;`,
      "esac",
      `case " \${NOSTROMO_SWITCHED:-} " in *" sevastopol "*)`,
      `  if [ -n "\${port-x}" ] && [ -f '/srv/nostromo/releases/sevastopol/.previous' ]; then switched="$switched sevastopol"`,
      `  else echo "sevastopol: what served before does not answer; it stays on the new release" >&2; fi;;`,
      "esac",
      `case " $switched " in *" orchestrator "*)`,
      "  previous=$(cat '/srv/nostromo/slots/orchestrator/previous' 2>/dev/null || true)",
    ]);
    assert.strictEqual(text.at(-2), `nostromo_result switchedBack="\${switched# }" serving="$serving"`);
    assert.deepStrictEqual(stepText(cfg, []).split("\n").slice(0, 3), text.slice(0, 3));
  });
});
