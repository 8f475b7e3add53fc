import { AddressInfo } from "net";
import { Server, utils } from "ssh2";

/**
 * An ed25519 key pair ssh2 can read back: about 1 in 150 of those its generateKeyPairSync makes
 * fails its own parser ("Malformed OpenSSH private key"). Bounded: 20 tries.
 */
function parsableKeyPair(): { private: string; public: string } {
  for (let i = 0; i < 20; i++) {
    const pair = utils.generateKeyPairSync("ed25519");
    if (!(utils.parseKey(pair.private) instanceof Error)) return pair;
  }
  throw new Error("ssh2 made 20 ed25519 keys in a row that it cannot parse");
}

/**
 * An SSH server (ssh2's) that misbehaves on purpose at one point of a session, for the moments a
 * real sshd cannot be made to fail at: `onSession` is called for each session channel opened.
 */
export async function oddServer(onSession: (n: number, accept: () => import("ssh2").Session, reject: () => void, end: () => void) => void) {
  const hostKey = parsableKeyPair();
  let sessions = 0;
  const clients = new Set<import("ssh2").Connection>();
  const server = new Server({ hostKeys: [hostKey.private] }, (client) => {
    clients.add(client);
    client.on("close", () => clients.delete(client));
    client.on("authentication", (ctx) => ctx.accept());
    client.on("ready", () => client.on("session", (accept, reject) => onSession(++sessions, accept, reject, () => client.end())));
    client.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  // Closing ends the connections the runner keeps for later execs too.
  const close = () => (server.close(), clients.forEach((c) => c.end()));
  return { port, hostKey: hostKey.public, sessions: () => sessions, close };
}
