/** The nginx site file. */
import { DeployConfig } from "../config";
import { quote } from "../shell";
import { layout } from "./layout";
import { stepScript } from "./lock";

/** The nginx site: the static app at /, the API app's live slot at /api/ and /health. */
export function nginxSite(cfg: DeployConfig): string {
  const site = cfg.nginx.site!;
  const api = cfg.apps.find((a) => a.name === site.apiApp)!;
  const web = cfg.apps.find((a) => a.name === site.staticApp)!;
  const up = layout(cfg.server.root).upstreams;
  return [
    `# Written by nostromo-deploy (stack ${cfg.stack}); the live slot is in ${up}/${api.name}.conf`,
    `upstream nostromo_${api.name.replace(/-/g, "_")} {`,
    `    include ${up}/${api.name}.conf;`,
    `    keepalive 16;`,
    `}`,
    `server {`,
    `    listen ${cfg.nginx.listen};`,
    `    root ${cfg.server.root}/current/${web.name}/${web.output};`,
    `    location /api/ {`,
    `        proxy_pass http://nostromo_${api.name.replace(/-/g, "_")};`,
    `        proxy_http_version 1.1;`,
    `        proxy_set_header Connection "";`,
    `        proxy_set_header Host $host;`,
    `        proxy_next_upstream error timeout;`,
    `    }`,
    `    location = /health {`,
    `        proxy_pass http://nostromo_${api.name.replace(/-/g, "_")};`,
    `        proxy_http_version 1.1;`,
    `        proxy_set_header Connection "";`,
    `    }`,
    `    location / {`,
    `        try_files $uri $uri/ /index.html;`,
    `    }`,
    `}`,
    ``,
  ].join("\n");
}

/** Installs the nginx site (kept if unchanged) with a first upstream, tested before reload. */
export function nginxSiteScript(cfg: DeployConfig): string {
  const api = cfg.apps.find((a) => a.name === cfg.nginx.site!.apiApp)!;
  const up = `${layout(cfg.server.root).upstreams}/${api.name}.conf`;
  const site = `${cfg.nginx.sitesDir}/nostromo.conf`;
  return stepScript(
    cfg,
    `mkdir -p ${quote(layout(cfg.server.root).upstreams)} ${quote(cfg.nginx.sitesDir)}`,
    `[ -f ${quote(up)} ] || printf 'server 127.0.0.1:%s;\\n' ${api.ports!.blue} > ${quote(up)}`,
    `[ -f ${quote(site)} ] && cp -p ${quote(site)} ${quote(`${site}.previous`)} || true`,
    `printf '%s' ${quote(nginxSite(cfg))} > ${quote(`${site}.new`)} && mv -f ${quote(`${site}.new`)} ${quote(site)}`,
    `if ! ${cfg.nginx.testCommand} >"$nostromo_tmp/nginx" 2>&1; then`,
    `  cat "$nostromo_tmp/nginx" >&2`,
    `  if [ -f ${quote(`${site}.previous`)} ]; then mv -f ${quote(`${site}.previous`)} ${quote(site)}; else rm -f ${quote(site)}; fi`,
    `  echo "nginx rejected the site; the previous one was put back" >&2; exit 1`,
    `fi`,
    cfg.nginx.reloadCommand,
    `echo "nginx site installed: ${site}"`,
    `nostromo_result site=${quote(site)}`,
  );
}
