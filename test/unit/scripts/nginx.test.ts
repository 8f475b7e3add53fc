import * as assert from "assert";
import { DeployConfig, parseDeployConfig } from "../../../lib/config";
import { bakeLogFormat, nginxSite, nginxSiteScript } from "../../../lib/scripts";
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

/** The upstreams of an app's two slots. */
const slotUpstreams = (name: string, blue: number, green: number) => [
  `upstream ${name}_blue {`,
  `    server 127.0.0.1:${blue};`,
  "    keepalive 16;",
  "}",
  `upstream ${name}_green {`,
  `    server 127.0.0.1:${green};`,
  "    keepalive 16;",
  "}",
];

/** The live slot of an app, read per request from its link (green when it leads to `green`). */
const liveSlot = (app: string, name: string) => [
  `    set $${name} ${name}_blue;`,
  `    if (-e /srv/nostromo/nginx-upstreams/${app}/green) {`,
  `        set $${name} ${name}_green;`,
  "    }",
];

/** Where nginx answers this machine which upstream it picks for the app (the cutover asks it). */
const liveAnswer = (app: string, name: string) => [
  `    location = /.nostromo/live/${app} {`,
  "        allow 127.0.0.1;",
  "        allow ::1;",
  "        deny all;",
  "        default_type text/plain;",
  `        return 200 "$${name}\\n";`,
  "    }",
];

/** The site file of `config()`. */
const SITE = [
  "# Written by nostromo-deploy (stack unit); the live slot is the link /srv/nostromo/nginx-upstreams/api-core",
  ...slotUpstreams("nostromo_api_core", 8001, 8002),
  "server {",
  "    listen 127.0.0.1:8080;",
  ...liveSlot("api-core", "nostromo_api_core"),
  "    root /srv/nostromo/current/web/public;",
  "    location /api/ {",
  "        proxy_pass http://$nostromo_api_core;",
  "        proxy_http_version 1.1;",
  `        proxy_set_header Connection "";`,
  "        proxy_set_header Host $host;",
  "        proxy_next_upstream error timeout;",
  "    }",
  "    location = /health {",
  "        proxy_pass http://$nostromo_api_core;",
  "        proxy_http_version 1.1;",
  `        proxy_set_header Connection "";`,
  "    }",
  "    location / {",
  "        try_files $uri $uri/ /index.html;",
  "    }",
  ...liveAnswer("api-core", "nostromo_api_core"),
  "}",
];

describe("unit: scripts/nginx (exact text)", () => {
  it("site: the static app at /, the API app's live slot (by its link, no reload to switch) at /api/ and /health", () => {
    assert.strictEqual(nginxSite(config()), [...SITE, ""].join("\n"));
  });

  it("site with a bake window (issue 11): our access log format (end time, status, upstream, request time), per stack, and its log", () => {
    const cfg = { ...config(), bake: { seconds: 5 } } as DeployConfig;
    const lines = [...SITE];
    lines.splice(
      9,
      2,
      "log_format nostromo_bake_unit '$msec $status $upstream_addr $request_time';",
      "server {",
      "    listen 127.0.0.1:8080;",
      "    access_log /srv/nostromo/logs/access.log nostromo_bake_unit;",
    );
    assert.strictEqual(nginxSite(cfg), [...lines, ""].join("\n"));
    assert.match(nginxSiteScript(cfg), /^mkdir -p '\/srv\/nostromo\/nginx-upstreams' '\/etc\/nginx\/conf\.d' '\/srv\/nostromo\/logs'$/m);
    assert.strictEqual(bakeLogFormat("iact-staging"), "nostromo_bake_iact_staging");
  });

  it("site step: each web app's slot folders and live link (kept if there; else the slot its live file names, or blue), site written beside the previous one, tested (put back if refused), reloaded, old includes removed", () => {
    const cfg = config();
    assert.strictEqual(
      nginxSiteScript(cfg),
      stepText(cfg, [
        "mkdir -p '/srv/nostromo/nginx-upstreams' '/etc/nginx/conf.d'",
        ...liveLinkLines("api-core"),
        "[ -f '/etc/nginx/conf.d/nostromo.conf' ] && cp -p '/etc/nginx/conf.d/nostromo.conf' '/etc/nginx/conf.d/nostromo.conf.previous' || true",
        `printf '%s' '${SITE.join("\n")}`,
        "' > '/etc/nginx/conf.d/nostromo.conf.new' && mv -f '/etc/nginx/conf.d/nostromo.conf.new' '/etc/nginx/conf.d/nostromo.conf'",
        `if ! nginx -t -q >"$nostromo_tmp/nginx" 2>&1; then`,
        `  cat "$nostromo_tmp/nginx" >&2`,
        "  if [ -f '/etc/nginx/conf.d/nostromo.conf.previous' ]; then mv -f '/etc/nginx/conf.d/nostromo.conf.previous' '/etc/nginx/conf.d/nostromo.conf'; else rm -f '/etc/nginx/conf.d/nostromo.conf'; fi",
        `  echo "nginx rejected the site; the previous one was put back" >&2; exit 1`,
        "fi",
        "systemctl reload nginx",
        "rm -f '/srv/nostromo/nginx-upstreams/api-core.conf' '/srv/nostromo/nginx-upstreams/api-core.conf.previous'",
        `echo "nginx site installed: /etc/nginx/conf.d/nostromo.conf"`,
        "nostromo_result site='/etc/nginx/conf.d/nostromo.conf'",
      ]),
    );
  });
});

/**
 * `nginx.routes` (issue 10), listed out of order: a python app at /api/ and its shared static
 * folder at /static/, a node app at /orchestrator/, a static app at / and another at /docs/.
 */
function routesConfig(): DeployConfig {
  const raw = validRaw();
  raw.apps.iact = {
    ...raw.apps.orchestrator,
    repo: "/tmp/repos/iact",
    ref: "v1.0.0",
    kind: "python",
    manager: "systemd",
    start: "gunicorn iact.wsgi --bind 127.0.0.1:$PORT",
    ports: { blue: 8101, green: 8102 },
  };
  raw.apps.docs = { repo: "/tmp/repos/docs", ref: "v1.0.0", kind: "static", output: "site" };
  raw.apps.sevastopol.output = "public";
  delete raw.nginx.site;
  raw.nginx.listen = "127.0.0.1:8080";
  raw.nginx.routes = [
    { path: "/static/", app: "iact", static: "static" },
    { path: "/", app: "sevastopol" },
    { path: "/orchestrator/", app: "orchestrator" },
    { path: "/api/", app: "iact" },
    { path: "/docs/", app: "docs" },
  ];
  return parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
}

/** The site step's lines making an app's slot folders and live link. */
const liveLinkLines = (app: string) => [
  `mkdir -p '/srv/nostromo/nginx-upstreams/${app}.blue' '/srv/nostromo/nginx-upstreams/${app}.green' && : > '/srv/nostromo/nginx-upstreams/${app}.blue/blue' && : > '/srv/nostromo/nginx-upstreams/${app}.green/green'`,
  `if [ ! -L '/srv/nostromo/nginx-upstreams/${app}' ]; then`,
  `  live=$(cat '/srv/nostromo/slots/${app}/live' 2>/dev/null || true); [ "$live" = green ] || live=blue`,
  `  ln -sfn '${app}.'"$live" '/srv/nostromo/nginx-upstreams/${app}'`,
  "fi",
];

/** A proxied location to `upstream`. */
const proxied = (path: string, upstream: string) => [
  `    location ${path} {`,
  `        proxy_pass http://${upstream};`,
  "        proxy_http_version 1.1;",
  `        proxy_set_header Connection "";`,
  "        proxy_set_header Host $host;",
  "        proxy_next_upstream error timeout;",
  "    }",
];

const ROUTES_SITE = [
  "# Written by nostromo-deploy (stack unit); the live slots are the links /srv/nostromo/nginx-upstreams/iact, /srv/nostromo/nginx-upstreams/orchestrator",
  ...slotUpstreams("nostromo_iact", 8101, 8102),
  ...slotUpstreams("nostromo_orchestrator", 8001, 8002),
  "server {",
  "    listen 127.0.0.1:8080;",
  ...liveSlot("iact", "nostromo_iact"),
  ...liveSlot("orchestrator", "nostromo_orchestrator"),
  "    root /srv/nostromo/current/sevastopol/public;",
  ...proxied("/api/", "$nostromo_iact"),
  "    location /docs/ {",
  "        alias /srv/nostromo/current/docs/site/;",
  "        try_files $uri $uri/ /docs/index.html;",
  "    }",
  ...proxied("/orchestrator/", "$nostromo_orchestrator"),
  "    location /static/ {",
  "        alias /srv/nostromo/shared/iact/static/;",
  "    }",
  "    location / {",
  "        try_files $uri $uri/ /index.html;",
  "    }",
  ...liveAnswer("iact", "nostromo_iact"),
  ...liveAnswer("orchestrator", "nostromo_orchestrator"),
  "}",
];

describe("unit: scripts/nginx routes (exact text, issue 10)", () => {
  it("site: an upstream per routed web app, locations sorted by path with / last, static apps by root or alias, a shared folder by alias", () => {
    assert.strictEqual(nginxSite(routesConfig()), [...ROUTES_SITE, ""].join("\n"));
  });

  it("the shorthand is the routes /, /api/ and the exact /health", () => {
    assert.deepStrictEqual(config().nginx.routes, [
      { path: "/", app: "web", serve: "release" },
      { path: "/api/", app: "api-core", serve: "slot" },
      { path: "/health", app: "api-core", serve: "slot", exact: true },
    ]);
  });

  it("without a static app at /: no root; without a web app: no upstream", () => {
    const raw = validRaw();
    delete raw.nginx.site;
    raw.nginx.routes = [{ path: "/", app: "orchestrator" }];
    const web = parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
    assert.strictEqual(
      nginxSite(web),
      [
        "# Written by nostromo-deploy (stack unit); the live slot is the link /srv/nostromo/nginx-upstreams/orchestrator",
        ...slotUpstreams("nostromo_orchestrator", 8001, 8002),
        "server {",
        "    listen 8080;",
        ...liveSlot("orchestrator", "nostromo_orchestrator"),
        ...proxied("/", "$nostromo_orchestrator"),
        ...liveAnswer("orchestrator", "nostromo_orchestrator"),
        "}",
        "",
      ].join("\n"),
    );
    raw.nginx.routes = [{ path: "/app/", app: "sevastopol" }];
    assert.strictEqual(
      nginxSite(parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true })),
      [
        "# Written by nostromo-deploy (stack unit)",
        "server {",
        "    listen 8080;",
        "    location /app/ {",
        "        alias /srv/nostromo/current/sevastopol/dist/;",
        "        try_files $uri $uri/ /app/index.html;",
        "    }",
        "}",
        "",
      ].join("\n"),
    );
  });

  it("site step: slot folders and a live link for every routed web app, by app name", () => {
    const cfg = routesConfig();
    assert.strictEqual(
      nginxSiteScript(cfg),
      stepText(cfg, [
        "mkdir -p '/srv/nostromo/nginx-upstreams' '/srv/nostromo/nginx'",
        ...liveLinkLines("iact"),
        ...liveLinkLines("orchestrator"),
        "[ -f '/srv/nostromo/nginx/nostromo.conf' ] && cp -p '/srv/nostromo/nginx/nostromo.conf' '/srv/nostromo/nginx/nostromo.conf.previous' || true",
        `printf '%s' '${ROUTES_SITE.join("\n")}`,
        "' > '/srv/nostromo/nginx/nostromo.conf.new' && mv -f '/srv/nostromo/nginx/nostromo.conf.new' '/srv/nostromo/nginx/nostromo.conf'",
        `if ! nginx -t >"$nostromo_tmp/nginx" 2>&1; then`,
        `  cat "$nostromo_tmp/nginx" >&2`,
        "  if [ -f '/srv/nostromo/nginx/nostromo.conf.previous' ]; then mv -f '/srv/nostromo/nginx/nostromo.conf.previous' '/srv/nostromo/nginx/nostromo.conf'; else rm -f '/srv/nostromo/nginx/nostromo.conf'; fi",
        `  echo "nginx rejected the site; the previous one was put back" >&2; exit 1`,
        "fi",
        "nginx -s reload",
        "rm -f '/srv/nostromo/nginx-upstreams/iact.conf' '/srv/nostromo/nginx-upstreams/iact.conf.previous'",
        "rm -f '/srv/nostromo/nginx-upstreams/orchestrator.conf' '/srv/nostromo/nginx-upstreams/orchestrator.conf.previous'",
        `echo "nginx site installed: /srv/nostromo/nginx/nostromo.conf"`,
        "nostromo_result site='/srv/nostromo/nginx/nostromo.conf'",
      ]),
    );
  });
});
