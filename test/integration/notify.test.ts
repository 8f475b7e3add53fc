import * as assert from "assert";
import { bakeSummary, parseBakeVerdict } from "../../lib/scripts/bake";
import * as http from "http";
import { AddressInfo } from "net";
import { notificationPayload, postNotification, WebhookError } from "../../lib/notify";

interface Received {
  method: string;
  url: string;
  contentType: string;
  body: string;
}

/** An incoming-webhook stand-in on 127.0.0.1: records each request, answers `status`. */
async function receiver(status = 200): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      received.push({ method: req.method ?? "", url: req.url ?? "", contentType: String(req.headers["content-type"] ?? ""), body });
      res.writeHead(status, { "content-type": "text/plain" });
      res.end(status === 200 ? "ok" : "invalid_payload");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/services/T000/B000/s3cr3tT0ken`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe("integration: deploy notifications to an incoming webhook", () => {
  it("payloads for start, success, failure and rollback carry versions, duration and changelog", () => {
    const start = notificationPayload({
      kind: "start",
      stack: "production",
      versions: { orchestrator: "1.2.3", sevastopol: "1.2.3" },
      previous: { orchestrator: "1.2.2", sevastopol: "1.2.2" },
    });
    assert.strictEqual(
      start.text,
      "Deploy started: production: orchestrator 1.2.3, sevastopol 1.2.3 (was orchestrator 1.2.2, sevastopol 1.2.2)",
    );

    const success = notificationPayload({
      kind: "success",
      stack: "production",
      update: 7,
      versions: { orchestrator: "1.2.3" },
      previous: { orchestrator: "1.2.2" },
      durationSeconds: 95,
      changelog: { orchestrator: ["abc1234 Feature: admin indexes", "def5678 Fix <script> & stuff"] },
      by: "ops@deploy-host",
      url: "http://127.0.0.1:8080/",
    });
    assert.strictEqual(success.text, "Deploy succeeded (update 7): production: orchestrator 1.2.3 (was orchestrator 1.2.2) in 1m35s");
    assert.deepStrictEqual(success.blocks, [
      { type: "header", text: { type: "plain_text", text: "Deploy succeeded (update 7): production", emoji: false } },
      {
        type: "section",
        fields: [
          { type: "mrkdwn", text: "*Stack*\nproduction" },
          { type: "mrkdwn", text: "*Versions*\norchestrator 1.2.3" },
          { type: "mrkdwn", text: "*Previous*\norchestrator 1.2.2" },
          { type: "mrkdwn", text: "*Duration*\n1m35s" },
        ],
      },
      {
        type: "section",
        text: {
          type: "mrkdwn",
          text: "*Changelog*\n*orchestrator*\n• abc1234 Feature: admin indexes\n• def5678 Fix &lt;script&gt; &amp; stuff",
        },
      },
      { type: "context", elements: [{ type: "mrkdwn", text: "by ops@deploy-host · <http://127.0.0.1:8080/|http://127.0.0.1:8080/>" }] },
    ]);

    const failure = notificationPayload({
      kind: "failure",
      stack: "staging",
      versions: { orchestrator: "1.2.4" },
      durationSeconds: 12,
      error: "\nhealth check failed for orchestrator: expected 200, got 502\nmore",
    });
    assert.strictEqual(
      failure.text,
      "Deploy FAILED: staging: orchestrator 1.2.4 in 12s - health check failed for orchestrator: expected 200, got 502",
    );
    assert.deepStrictEqual(failure.blocks![2], {
      type: "section",
      text: { type: "mrkdwn", text: "```\nhealth check failed for orchestrator: expected 200, got 502\nmore```" },
    });

    const rollback = notificationPayload({
      kind: "rollback",
      stack: "production",
      versions: { orchestrator: "v1.2.2" },
      previous: { orchestrator: "v1.2.3" },
      durationSeconds: 20.4,
      update: 9,
      rollbackTo: 6,
    });
    assert.strictEqual(rollback.text, "Rolled back to update 6: production: orchestrator v1.2.2 (was orchestrator v1.2.3) in 20s");

    const long = notificationPayload({
      kind: "success",
      stack: "s",
      versions: { a: "1" },
      changelog: { a: Array.from({ length: 20 }, (_, i) => `c${i}`) },
    });
    const text = long.blocks!.find((b) => b.text?.text.startsWith("*Changelog*"))!.text!.text;
    assert.strictEqual(text.split("\n").length, 2 + 15 + 1);
    assert.ok(text.endsWith("… and 5 more"));
  });

  it("a success after a bake carries its verdict and figures in one line (issue 11)", () => {
    const verdict = parseBakeVerdict(
      JSON.stringify({
        verdict: "passed",
        seconds: 120,
        apps: { orchestrator: { requests: 412, errors: 1, errorPercent: 0.2, p95Ms: 4, requestsBefore: 380, p95BeforeMs: 3 } },
      }),
    )!;
    assert.strictEqual(bakeSummary(verdict), "passed (120 s): orchestrator 412 requests, 0.2% 5xx, p95 4 ms (before 3 ms)");
    const payload = notificationPayload({
      kind: "success",
      stack: "production",
      versions: { orchestrator: "1.2.3" },
      bake: bakeSummary(verdict),
    });
    const fields = JSON.stringify(payload.blocks);
    assert.match(fields, /\*Bake\*\\npassed \(120 s\): orchestrator 412 requests, 0\.2% 5xx, p95 4 ms \(before 3 ms\)/);
    assert.strictEqual(parseBakeVerdict("not json"), undefined);
    assert.strictEqual(parseBakeVerdict(""), undefined);
  });

  it("POSTs JSON to the webhook", async () => {
    const hook = await receiver();
    try {
      const payload = notificationPayload({
        kind: "rollback",
        stack: "local",
        versions: { orchestrator: "v1.2.2" },
        rollbackTo: 1,
        durationSeconds: 8,
      });
      await postNotification(hook.url, payload);
      assert.strictEqual(hook.received.length, 1);
      const [r] = hook.received;
      assert.strictEqual(r.method, "POST");
      assert.strictEqual(r.url, "/services/T000/B000/s3cr3tT0ken");
      assert.strictEqual(r.contentType, "application/json");
      assert.deepStrictEqual(JSON.parse(r.body), payload);
      assert.strictEqual(JSON.parse(r.body).text, "Rolled back to update 1: local: orchestrator v1.2.2 in 8s");
    } finally {
      await hook.close();
    }
  });

  it("a refused notification throws with the status, never the secret URL", async () => {
    const hook = await receiver(400);
    try {
      await assert.rejects(postNotification(hook.url, { text: "x" }), (err: Error) => {
        assert.ok(err instanceof WebhookError);
        assert.strictEqual(err.status, 400);
        assert.match(err.message, /^notification to 127\.0\.0\.1:\d+ failed: HTTP 400 invalid_payload$/);
        assert.doesNotMatch(err.message, /s3cr3t/);
        return true;
      });
    } finally {
      await hook.close();
    }
    // Nobody listening any more: a network error, again without the URL's path.
    await assert.rejects(
      postNotification(hook.url, { text: "x" }, 2000),
      (err: Error) => err instanceof WebhookError && !/s3cr3t/.test(err.message),
    );
    await assert.rejects(postNotification("not a url", { text: "x" }), /notifyWebhookUrl is not a valid URL/);
  });
});
