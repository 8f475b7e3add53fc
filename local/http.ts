import * as http from "http";

export interface HttpAnswer {
  status: number;
  body: string;
}

/**
 * One request on a new connection, as a new visitor would make it (or on `agent`'s connections,
 * as a keep-alive client would); resolves with status and body (status 0 and the socket error on
 * a network failure). A `json` body is sent as JSON.
 */
export function request(
  port: number,
  method: string,
  p: string,
  opts: { json?: unknown; headers?: Record<string, string>; agent?: http.Agent; host?: string } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve) => {
    const body = opts.json === undefined ? undefined : JSON.stringify(opts.json);
    const headers = { ...(body === undefined ? {} : { "content-type": "application/json" }), ...opts.headers };
    const host = opts.host ?? "127.0.0.1";
    const req = http.request({ host, port, path: p, method, headers, agent: opts.agent ?? false, timeout: 5000 }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on("error", (err) => resolve({ status: 0, body: String(err) }));
    });
    req.on("timeout", () => req.destroy(new Error("timed out after 5 s")));
    req.on("error", (err) => resolve({ status: 0, body: String(err) }));
    req.end(body);
  });
}

/** GET on a new connection (see `request`), to 127.0.0.1 unless `host` says otherwise (a fleet host's address). */
export function get(port: number, p: string, opts: { host?: string } = {}): Promise<HttpAnswer> {
  return request(port, "GET", p, opts);
}
