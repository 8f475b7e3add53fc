import * as assert from "assert";
import { DeployConfig, parseDeployConfig } from "../../../lib/config";
import { nginxSite, nginxSiteScript } from "../../../lib/scripts";
import { validRaw } from "../../support/validConfig";
import { stepText } from "./fixture";

/** An API app whose name has a '-', a static app served from `public`, and every nginx setting changed. */
function config(): DeployConfig {
  const raw = validRaw();
  raw.apps = { "api-core": raw.apps.orchestrator, web: { ...raw.apps.sevastopol, output: "public" } };
  raw.nginx = {
    port: 8080,
    listen: "127.0.0.1:8080",
    sitesDir: "/etc/nginx/conf.d",
    reloadCommand: "systemctl reload nginx",
    testCommand: "nginx -t -q",
    site: { staticApp: "web", apiApp: "api-core" },
  };
  return parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
}

/** The site file of `config()`. */
const SITE = [
  "# Written by nostromo-deploy (stack unit); the live slot is in /srv/nostromo/nginx-upstreams/api-core.conf",
  "upstream nostromo_api_core {",
  "    include /srv/nostromo/nginx-upstreams/api-core.conf;",
  "    keepalive 16;",
  "}",
  "server {",
  "    listen 127.0.0.1:8080;",
  "    root /srv/nostromo/current/web/public;",
  "    location /api/ {",
  "        proxy_pass http://nostromo_api_core;",
  "        proxy_http_version 1.1;",
  `        proxy_set_header Connection "";`,
  "        proxy_set_header Host $host;",
  "        proxy_next_upstream error timeout;",
  "    }",
  "    location = /health {",
  "        proxy_pass http://nostromo_api_core;",
  "        proxy_http_version 1.1;",
  `        proxy_set_header Connection "";`,
  "    }",
  "    location / {",
  "        try_files $uri $uri/ /index.html;",
  "    }",
  "}",
];

describe("unit: scripts/nginx (exact text)", () => {
  it("site: the static app at /, the API app's live slot (upstream include) at /api/ and /health", () => {
    assert.strictEqual(nginxSite(config()), [...SITE, ""].join("\n"));
  });

  it("site step: first upstream, site written beside the previous one, tested (put back if refused), reloaded", () => {
    const cfg = config();
    assert.strictEqual(
      nginxSiteScript(cfg),
      stepText(cfg, [
        "mkdir -p '/srv/nostromo/nginx-upstreams' '/etc/nginx/conf.d'",
        `[ -f '/srv/nostromo/nginx-upstreams/api-core.conf' ] || printf 'server 127.0.0.1:%s;\\n' 8001 > '/srv/nostromo/nginx-upstreams/api-core.conf'`,
        "[ -f '/etc/nginx/conf.d/nostromo.conf' ] && cp -p '/etc/nginx/conf.d/nostromo.conf' '/etc/nginx/conf.d/nostromo.conf.previous' || true",
        "printf '%s' '# Written by nostromo-deploy (stack unit); the live slot is in /srv/nostromo/nginx-upstreams/api-core.conf",
        "upstream nostromo_api_core {",
        "    include /srv/nostromo/nginx-upstreams/api-core.conf;",
        "    keepalive 16;",
        "}",
        "server {",
        "    listen 127.0.0.1:8080;",
        "    root /srv/nostromo/current/web/public;",
        "    location /api/ {",
        "        proxy_pass http://nostromo_api_core;",
        "        proxy_http_version 1.1;",
        `        proxy_set_header Connection "";`,
        "        proxy_set_header Host $host;",
        "        proxy_next_upstream error timeout;",
        "    }",
        "    location = /health {",
        "        proxy_pass http://nostromo_api_core;",
        "        proxy_http_version 1.1;",
        `        proxy_set_header Connection "";`,
        "    }",
        "    location / {",
        "        try_files $uri $uri/ /index.html;",
        "    }",
        "}",
        "' > '/etc/nginx/conf.d/nostromo.conf.new' && mv -f '/etc/nginx/conf.d/nostromo.conf.new' '/etc/nginx/conf.d/nostromo.conf'",
        `if ! nginx -t -q >"$nostromo_tmp/nginx" 2>&1; then`,
        `  cat "$nostromo_tmp/nginx" >&2`,
        "  if [ -f '/etc/nginx/conf.d/nostromo.conf.previous' ]; then mv -f '/etc/nginx/conf.d/nostromo.conf.previous' '/etc/nginx/conf.d/nostromo.conf'; else rm -f '/etc/nginx/conf.d/nostromo.conf'; fi",
        `  echo "nginx rejected the site; the previous one was put back" >&2; exit 1`,
        "fi",
        "systemctl reload nginx",
        `echo "nginx site installed: /etc/nginx/conf.d/nostromo.conf"`,
        "nostromo_result site='/etc/nginx/conf.d/nostromo.conf'",
      ]),
    );
  });
});
