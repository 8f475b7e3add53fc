import * as assert from "assert";
import * as http from "http";
import { Client } from "ssh2";
import { accepts, freePort, LocalTarget, startLocalTarget } from "../../local/target";

interface Exec {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Connects with the target's key, accepting only the host key blob of `pinned`. */
function connect(t: LocalTarget, pinned = t.ssh.hostKey): Promise<Client> {
  const pinnedBlob = pinned.split(" ")[1];
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.once("ready", () => resolve(c));
    c.once("error", reject);
    c.connect({
      host: t.ssh.host,
      port: t.ssh.port,
      username: t.ssh.user,
      privateKey: t.ssh.privateKey,
      readyTimeout: 10_000,
      // Without hostHash, ssh2 hands over the raw key blob: the base64 field of the .pub line.
      hostVerifier: (key: Buffer) => key.toString("base64") === pinnedBlob,
    });
  });
}

function exec(c: Client, cmd: string, stdin?: string): Promise<Exec> {
  return new Promise((resolve, reject) => {
    c.exec(cmd, (err, stream) => {
      if (err) return reject(err);
      let stdout = "";
      let stderr = "";
      stream.on("data", (d: Buffer) => (stdout += d));
      stream.stderr.on("data", (d: Buffer) => (stderr += d));
      stream.on("close", (code: number | null) => resolve({ code, stdout, stderr }));
      stream.end(stdin);
    });
  });
}

async function execOk(c: Client, cmd: string, stdin?: string): Promise<string> {
  const r = await exec(c, cmd, stdin);
  assert.strictEqual(r.code, 0, `remote \`${cmd}\` exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/", agent: false, timeout: 5000 }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once("error", reject);
    req.once("timeout", () => req.destroy(new Error("timeout")));
  });
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

describe("integration: local target (sshd, nginx, pm2 on loopback)", () => {
  let t: LocalTarget | undefined;
  let conn: Client | undefined;

  after(async () => {
    conn?.end();
    await t?.stop();
  });

  it("deploys a probe over SSH under pm2 behind nginx, then stops cleanly", async () => {
    t = await startLocalTarget();
    const target = t;
    assert.match(target.ssh.hostKey, /^ssh-ed25519 AAAA[0-9A-Za-z+/=]+$/);

    // A different pinned key must be refused before any login.
    const other = Buffer.from(target.ssh.hostKey.split(" ")[1], "base64");
    other[other.length - 1] ^= 1;
    await assert.rejects(connect(target, `ssh-ed25519 ${other.toString("base64")}`), /verif/i);

    conn = await connect(target);
    // sshd gives sessions its own minimal PATH: every remote script sets binPath and env.
    const envs = Object.entries(target.env).map(([k, v]) => `${k}=${q(v)}`);
    const prelude = `export PATH=${q(target.binPath.join(":"))}:"$PATH" ${envs.join(" ")}; `;
    const versions = await execOk(conn, prelude + "pm2 --version && nginx -v 2>&1 && node --version");
    assert.match(versions, /nginx version: nginx\//);
    assert.match(versions, /^v2[2-9]\./m);

    // A tiny app under pm2, started remotely.
    const appPort = await freePort();
    const app = `${target.root}/probe.js`;
    await execOk(
      conn,
      `cat > ${q(app)}`,
      `require("http").createServer((q, s) => s.end("probe ok\\n")).listen(+process.env.PORT, "127.0.0.1");\n`,
    );
    await execOk(conn, `${prelude}PORT=${appPort} pm2 start ${q(app)} --name probe`);
    const direct = await execOk(
      conn,
      `curl -fsS --retry 50 --retry-delay 0 --retry-max-time 10 --retry-connrefused http://127.0.0.1:${appPort}/`,
    );
    assert.strictEqual(direct, "probe ok\n");

    // Before any deploy, nginx serves the placeholder.
    assert.deepStrictEqual(await get(target.nginx.port), { status: 503, body: "no release yet\n" });

    // The deploy's way: write the site config, reload over SSH; one GET must see the new config.
    const site = `server {\n  listen 127.0.0.1:${target.nginx.port};\n  location / { proxy_pass http://127.0.0.1:${appPort}; }\n}\n`;
    await execOk(conn, `cat > ${q(target.nginx.sitesDir + "/nostromo.conf")}`, site);
    await execOk(conn, target.nginx.reloadCommand);
    assert.deepStrictEqual(await get(target.nginx.port), { status: 200, body: "probe ok\n" });

    conn.end();
    conn = undefined;
    await target.stop();
    for (const [what, port] of [
      ["sshd", target.ssh.port],
      ["nginx", target.nginx.port],
      ["pm2 app", appPort],
    ] as const) {
      assert.strictEqual(await accepts(port), false, `${what} still accepts on ${port} after stop()`);
    }
  });
});
