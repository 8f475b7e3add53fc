import * as assert from "assert";
import { layout, prelude, sha256 } from "../../../lib/scripts";
import { parse } from "./fixture";

describe("unit: scripts/layout (exact text)", () => {
  it("places every artefact of an app under the deploy root", () => {
    assert.deepStrictEqual(layout("/srv/nostromo", "orchestrator"), {
      releases: "/srv/nostromo/releases/orchestrator",
      current: "/srv/nostromo/current/orchestrator",
      shared: "/srv/nostromo/shared/orchestrator",
      slots: "/srv/nostromo/slots/orchestrator",
      workers: "/srv/nostromo/slots/orchestrator/workers",
      mirror: "/srv/nostromo/repos/orchestrator.git",
      backups: "/srv/nostromo/backups",
      lock: "/srv/nostromo/.lock",
      journal: "/srv/nostromo/deploys.jsonl",
      upstreams: "/srv/nostromo/nginx-upstreams",
      liveLink: "/srv/nostromo/nginx-upstreams/orchestrator",
      accessLog: "/srv/nostromo/logs/access.log",
      drain: "/srv/nostromo/.drain",
    });
  });

  it("hashes text as hex sha256", () => {
    assert.strictEqual(sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("starts every script with the umask and the result function only, without server.path or server.env", () => {
    assert.strictEqual(
      prelude(parse().server),
      [
        "umask 022",
        `nostromo_result() { node -e 'const o={};for(const a of process.argv.slice(1)){const i=a.indexOf("=");o[a.slice(0,i)]=a.slice(i+1)}console.log("nostromo-result "+JSON.stringify(o))' lease="\${NOSTROMO_LEASE:-}" "$@"; }`,
      ].join("\n"),
    );
  });

  it("puts server.path before $PATH and exports server.env, every value quoted", () => {
    const cfg = parse((raw) => {
      raw.server.path = ["/opt/node/bin", "/usr/local/pm2/bin"];
      raw.server.env = { PM2_HOME: "/var/pm2", GREETING: "it's $HOME `x`" };
    });
    assert.strictEqual(
      prelude(cfg.server),
      [
        "umask 022",
        `export PATH='/opt/node/bin':'/usr/local/pm2/bin':"$PATH"`,
        "export PM2_HOME='/var/pm2'",
        `export GREETING='it'\\''s $HOME \`x\`'`,
        `nostromo_result() { node -e 'const o={};for(const a of process.argv.slice(1)){const i=a.indexOf("=");o[a.slice(0,i)]=a.slice(i+1)}console.log("nostromo-result "+JSON.stringify(o))' lease="\${NOSTROMO_LEASE:-}" "$@"; }`,
      ].join("\n"),
    );
  });
});
