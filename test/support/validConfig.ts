/** A valid local-style config; tests break one thing at a time. */
export function validRaw(): Record<string, any> {
  return {
    server: { host: "127.0.0.1", port: 2222, user: "deploy", root: "/srv/nostromo", hostKey: "ssh-ed25519 AAAAC3Nza" },
    apps: {
      orchestrator: {
        repo: "/tmp/repos/orchestrator",
        ref: "v1.2.2",
        kind: "node",
        migrate: "npm run migrate:production",
        build: "npm run build",
        start: "node dist/server.js",
        ports: { blue: 8001, green: 8002 },
        health: { path: "/health", expect: { status: "ok" } },
      },
      sevastopol: { repo: "/tmp/repos/sevastopol", ref: "v1.2.2", kind: "static", build: "npm run build" },
    },
    nginx: { port: 8080, site: { staticApp: "sevastopol", apiApp: "orchestrator" } },
  };
}
