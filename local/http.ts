import * as http from "http";

/**
 * GET on a new connection, as a new visitor would; resolves with status and body (status 0 and
 * the socket error on a network failure).
 */
export function get(port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: p, agent: false, timeout: 5000 }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", (err) => resolve({ status: 0, body: String(err) }));
    });
    req.on("timeout", () => req.destroy(new Error("timed out after 5 s")));
    req.on("error", (err) => resolve({ status: 0, body: String(err) }));
  });
}
