import * as assert from "assert";
import { layout, prelude, sha256 } from "../../../lib/scripts";
import { parse } from "./fixture";

/** The result function as the servers get it, byte for byte (JSON escaping in bash, node past 4 KB). */
const RESULT_LINES = `nostromo_json_string() {
  local s=$1 i c hex
  s=\${s//\\\\/\\\\\\\\}; s=\${s//\\"/\\\\\\"}; s=\${s//$'\\n'/\\\\n}; s=\${s//$'\\r'/\\\\r}; s=\${s//$'\\t'/\\\\t}
  case $s in *[$'\\001'-$'\\037']*)
    for i in 1 2 3 4 5 6 7 8 11 12 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31; do
      printf -v c "\\\\$(printf '%03o' "$i")"; printf -v hex '\\\\u%04x' "$i"; s=\${s//"$c"/$hex}
    done;;
  esac
  nostromo_json="\\"$s\\""
}
nostromo_result() {
  local out="" a k all="$*"
  if [ "\${#all}" -gt 4096 ]; then
    node -e 'const o={};for(const a of process.argv.slice(1)){const i=a.indexOf("=");o[a.slice(0,i)]=a.slice(i+1)}console.log("nostromo-result "+JSON.stringify(o))' lease="\${NOSTROMO_LEASE:-}" "$@"
    return
  fi
  for a in lease="\${NOSTROMO_LEASE:-}" "$@"; do
    nostromo_json_string "\${a%%=*}"; k=$nostromo_json
    nostromo_json_string "\${a#*=}"; out="$out\${out:+,}$k:$nostromo_json"
  done
  printf 'nostromo-result {%s}\\n' "$out"
}`;

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
    assert.strictEqual(prelude(parse().server), ["umask 022", RESULT_LINES].join("\n"));
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
        RESULT_LINES,
      ].join("\n"),
    );
  });
});
