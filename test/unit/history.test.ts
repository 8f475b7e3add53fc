import * as assert from "assert";
import {
  CHART_COLORS,
  commitKey,
  deployMetrics,
  deployRows,
  durationChartSvg,
  formatDuration,
  formatTable,
  HistoryEntry,
  lastSuccessful,
  pickRollbackTarget,
  refsOf,
  RollbackRefusal,
} from "../../lib/history";

const apps = (orch: string, sev: string) => ({
  orchestrator: { repo: "/repos/orchestrator", ref: orch, kind: "node", migrate: "npm run migrate:production" },
  sevastopol: { repo: "/repos/sevastopol", ref: sev, kind: "static" },
});
/** `apps` as the Automation API reports it: JSON text, or (newer CLIs) an objectValue too. */
const cfg = (orch: string, sev: string, asObject = false) => ({
  "nostromo-deploy:apps": asObject
    ? { value: JSON.stringify(apps(orch, sev)), secret: false, objectValue: apps(orch, sev) }
    : { value: JSON.stringify(apps(orch, sev)), secret: false },
  "nostromo-deploy:databaseUrl": { value: "[secret]", secret: true },
});

/** Six updates over four days: two deploys, a failed one, a refresh, a rollback, a fix. */
function history(): HistoryEntry[] {
  return [
    // Newest first, as `pulumi stack history` lists them.
    {
      version: 6,
      kind: "update",
      result: "succeeded",
      message: "",
      startTime: new Date("2024-03-04T10:00:00Z"),
      endTime: new Date("2024-03-04T10:02:00Z"),
      config: cfg("v1.2.4", "v1.2.3"),
      resourceChanges: { update: 5, same: 20 },
    },
    {
      version: 5,
      kind: "update",
      result: "succeeded",
      message: "rollback to update 2",
      startTime: "2024-03-03T12:00:00Z",
      endTime: "2024-03-03T12:00:30Z",
      config: cfg("v1.2.3", "v1.2.3", true),
    },
    {
      version: 4,
      kind: "refresh",
      result: "succeeded",
      message: "",
      startTime: "2024-03-03T11:00:00Z",
      endTime: "2024-03-03T11:00:10Z",
      config: cfg("v1.2.4", "v1.2.3"),
    },
    {
      version: 3,
      kind: "update",
      result: "failed",
      message: "",
      startTime: "2024-03-03T10:00:00Z",
      endTime: "2024-03-03T10:01:00Z",
      config: cfg("v1.2.4", "v1.2.3"),
    },
    {
      version: 2,
      kind: "update",
      result: "succeeded",
      message: "",
      startTime: "2024-03-02T10:00:00Z",
      endTime: "2024-03-02T10:03:00Z",
      config: cfg("v1.2.3", "v1.2.3"),
    },
    {
      version: 1,
      kind: "update",
      result: "succeeded",
      message: "first deploy",
      startTime: "2024-03-01T10:00:00Z",
      endTime: "2024-03-01T10:02:00Z",
      config: cfg("v1.2.2", "v1.2.2"),
    },
  ];
}
const SHA6 = "0123456789abcdef0123456789abcdef01234567";
const outputs6 = {
  apps: { orchestrator: { ref: "v1.2.4", sha: SHA6, version: "1.2.4" }, sevastopol: { ref: "v1.2.3", sha: "f".repeat(40) } },
};

describe("lib/history: deploy rows from stack history", () => {
  it("orders rows oldest first with results, durations, refs, rollbacks and known SHAs", () => {
    const rows = deployRows(history(), { 6: outputs6 });
    assert.deepStrictEqual(
      rows.map((r) => r.version),
      [1, 2, 3, 4, 5, 6],
    );
    assert.deepStrictEqual(
      rows.map((r) => r.result),
      ["succeeded", "succeeded", "failed", "succeeded", "succeeded", "succeeded"],
    );
    assert.deepStrictEqual(
      rows.map((r) => r.kind),
      ["update", "update", "update", "refresh", "update", "update"],
    );
    assert.deepStrictEqual(
      rows.map((r) => r.durationSeconds),
      [120, 180, 60, 10, 30, 120],
    );
    assert.deepStrictEqual(
      rows.map((r) => r.rollbackTo),
      [undefined, undefined, undefined, undefined, 2, undefined],
    );
    assert.deepStrictEqual(rows[0].apps, { orchestrator: { ref: "v1.2.2" }, sevastopol: { ref: "v1.2.2" } });
    assert.deepStrictEqual(rows[4].apps, { orchestrator: { ref: "v1.2.3" }, sevastopol: { ref: "v1.2.3" } });
    assert.deepStrictEqual(rows[5].apps, {
      orchestrator: { ref: "v1.2.4", sha: SHA6, version: "1.2.4" },
      sevastopol: { ref: "v1.2.3", sha: "f".repeat(40) },
    });
    assert.deepStrictEqual(rows[5].appsConfig, apps("v1.2.4", "v1.2.3"));
    assert.deepStrictEqual(rows[5].changes, { update: 5, same: 20 });
    assert.strictEqual(rows[0].start.toISOString(), "2024-03-01T10:00:00.000Z");
    assert.strictEqual(lastSuccessful(rows)?.version, 6);
  });

  it("an update still running has no end and no duration; secret or broken apps config gives no refs", () => {
    const rows = deployRows([
      {
        version: 1,
        result: "in-progress",
        startTime: "2024-03-01T10:00:00Z",
        config: { "nostromo-deploy:apps": { value: "[secret]", secret: true } },
      },
      {
        version: 2,
        result: "failed",
        startTime: "2024-03-01T11:00:00Z",
        endTime: "",
        config: { "nostromo-deploy:apps": { value: "{not json", secret: false } },
      },
    ]);
    assert.deepStrictEqual(
      rows.map((r) => [r.end, r.durationSeconds, r.apps, r.appsConfig, r.kind]),
      [
        [undefined, undefined, {}, undefined, "update"],
        [undefined, undefined, {}, undefined, "update"],
      ],
    );
    assert.deepStrictEqual(refsOf({ a: { ref: "main" }, b: { ref: 3 }, c: null }), { a: "main" });
  });
});

describe("lib/history: update numbers", () => {
  it("a file backend's history (version 0, newest first) is numbered 1..n, oldest first", () => {
    const unnumbered = history().map((h) => ({ ...h, version: 0 }));
    const rows = deployRows(unnumbered, { 6: outputs6 });
    assert.deepStrictEqual(
      rows.map((r) => [r.version, r.durationSeconds]),
      [
        [1, 120],
        [2, 180],
        [3, 60],
        [4, 10],
        [5, 30],
        [6, 120],
      ],
    );
    assert.deepStrictEqual(rows[5].apps.orchestrator, { ref: "v1.2.4", sha: SHA6, version: "1.2.4" });
    assert.deepStrictEqual(
      deployRows(unnumbered.reverse()).map((r) => r.message),
      ["first deploy", "", "", "", "rollback to update 2", ""],
    );
  });
});

describe("lib/history: pickRollbackTarget", () => {
  const rows = deployRows(history());
  const current = { orchestrator: "v1.2.4", sevastopol: "v1.2.3" };

  it("by default picks the newest successful deploy whose refs differ from the current ones", () => {
    assert.strictEqual(pickRollbackTarget(rows, current).version, 5);
    // After a rollback to 2 (refs v1.2.3), "back" is the newest other deploy: 6.
    assert.strictEqual(pickRollbackTarget(rows, { orchestrator: "v1.2.3", sevastopol: "v1.2.3" }).version, 6);
    assert.strictEqual(pickRollbackTarget(rows.slice(0, 2), { orchestrator: "v1.2.3", sevastopol: "v1.2.3" }).version, 1);
    // A failed update is never picked, though its refs (v1.2.4) differ: the newest success is.
    assert.strictEqual(pickRollbackTarget(rows.slice(0, 4), { orchestrator: "v1.2.4", sevastopol: "v1.2.3" }).version, 2);
  });

  it("--to N picks update N", () => {
    assert.strictEqual(pickRollbackTarget(rows, current, 1).version, 1);
    assert.strictEqual(pickRollbackTarget(rows, current, 2).version, 2);
  });

  const refused = (fn: () => unknown, message: string) =>
    assert.throws(fn, (err: Error) => {
      assert.ok(err instanceof RollbackRefusal, String(err));
      assert.strictEqual(err.message, message);
      return true;
    });

  it("refuses a failed target, an unknown one, a refresh and the same refs", () => {
    refused(() => pickRollbackTarget(rows, current, 3), "update 3 failed: only a successful update can be rolled back to");
    refused(() => pickRollbackTarget(rows, current, 9), "update 9 not found in the stack's history (versions 1 to 6)");
    refused(() => pickRollbackTarget(rows, current, 4), "update 4 was a refresh, not a deploy: nothing to roll back to");
    refused(
      () => pickRollbackTarget(rows, current, 6),
      "update 6 deployed the same app refs as the current config (orchestrator@v1.2.4, sevastopol@v1.2.3): nothing to roll back",
    );
  });

  it("refuses when nothing earlier deployed other refs (a single deploy)", () => {
    const one = deployRows(history().filter((h) => h.version === 1));
    refused(
      () => pickRollbackTarget(one, { orchestrator: "v1.2.2", sevastopol: "v1.2.2" }),
      "nothing to roll back to: no successful update in the stack's history (1 deploy) deployed app refs other than the current ones (orchestrator@v1.2.2, sevastopol@v1.2.2)",
    );
    refused(
      () => pickRollbackTarget([], { a: "x" }),
      "nothing to roll back to: no successful update in the stack's history (0 deploys) deployed app refs other than the current ones (a@x)",
    );
  });
});

describe("lib/history: table, metrics, chart", () => {
  it("formats durations", () => {
    assert.deepStrictEqual([undefined, 0, 59.4, 60, 125, 3600, 3725, 90000].map(formatDuration), [
      "-",
      "0s",
      "59s",
      "1m00s",
      "2m05s",
      "1h00m",
      "1h02m",
      "1d01h",
    ]);
  });

  it("prints one aligned line per update, rollbacks marked", () => {
    const rows = deployRows(history(), { 6: outputs6 }).filter((r) => [1, 3, 5, 6].includes(r.version));
    assert.strictEqual(
      formatTable(rows),
      [
        "VERSION  RESULT     STARTED (UTC)         DURATION  APPS                                                                  NOTE",
        "1        succeeded  2024-03-01 10:00:00Z  2m00s     orchestrator@v1.2.2, sevastopol@v1.2.2                                first deploy",
        "3        failed     2024-03-03 10:00:00Z  1m00s     orchestrator@v1.2.4, sevastopol@v1.2.3",
        "5        succeeded  2024-03-03 12:00:00Z  30s       orchestrator@v1.2.3, sevastopol@v1.2.3                                ROLLBACK to update 2",
        "6        succeeded  2024-03-04 10:00:00Z  2m00s     orchestrator@v1.2.4 (0123456789ab), sevastopol@v1.2.3 (ffffffffffff)",
        "",
      ].join("\n"),
    );
  });

  it("computes frequency, lead time, change failure rate and MTTR", () => {
    const rows = deployRows(history());
    const t = (iso: string) => Date.parse(iso) / 1000;
    const commitTimes = {
      [commitKey("orchestrator", "v1.2.2")]: t("2024-03-01T09:00:00Z"), // 3720 s before update 1 ended
      [commitKey("sevastopol", "v1.2.2")]: t("2024-03-01T08:02:00Z"), // 7200 s
      [commitKey("orchestrator", "v1.2.3")]: t("2024-03-02T09:03:00Z"), // 3600 s before update 2 ended
      [commitKey("orchestrator", "v1.2.4")]: t("2024-03-03T09:00:00Z"), // 90120 s before update 6 ended (update 3 failed)
    };
    const m = deployMetrics(rows, commitTimes);
    const { deploysPerDay, ...rest } = m;
    assert.deepStrictEqual(rest, {
      deploys: 5,
      succeeded: 4,
      failed: 1,
      rollbacks: 1,
      window: { from: "2024-03-01T10:00:00.000Z", to: "2024-03-04T10:02:00.000Z", days: (3 * 86400 + 120) / 86400 },
      changeFailureRate: 0.2,
      mttrSeconds: 7170, // update 3 ended 10:01:00, update 5 (the rollback) ended 12:00:30
      incidents: 1,
      unrecovered: 0,
      leadTime: { meanSeconds: 26160, medianSeconds: 5460, samples: 4 },
    });
    assert.ok(Math.abs(deploysPerDay - 5 / ((3 * 86400 + 120) / 86400)) < 1e-12, String(deploysPerDay));
    assert.strictEqual(deployMetrics(rows).leadTime, null);
  });

  it("a short window counts as one day; trailing failures are unrecovered; no deploys gives nulls", () => {
    const rows = deployRows([
      { version: 1, result: "succeeded", startTime: "2024-03-01T10:00:00Z", endTime: "2024-03-01T10:01:00Z" },
      { version: 2, result: "failed", startTime: "2024-03-01T11:00:00Z", endTime: "2024-03-01T11:01:00Z" },
      { version: 3, result: "failed", startTime: "2024-03-01T12:00:00Z", endTime: "2024-03-01T12:01:00Z" },
    ]);
    const m = deployMetrics(rows);
    assert.deepStrictEqual(
      [m.deploys, m.window.days, m.deploysPerDay, m.changeFailureRate, m.mttrSeconds, m.incidents, m.unrecovered],
      [3, 1, 3, 2 / 3, null, 1, 1],
    );
    const none = deployMetrics([]);
    assert.deepStrictEqual(
      [none.deploys, none.deploysPerDay, none.changeFailureRate, none.mttrSeconds, none.leadTime],
      [0, 0, null, null, null],
    );
  });

  it("draws one bar per update, height by duration, colour by outcome", () => {
    const rows = deployRows(history()).filter((r) => [2, 3, 5].includes(r.version)); // 180 s ok, 60 s failed, 30 s rollback
    const svg = durationChartSvg(rows);
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="176" height="236" /);
    const bars = [
      ...svg.matchAll(/<rect x="(\d+)" y="(\d+)" width="24" height="(\d+)" fill="(#[0-9a-f]{6})"><title>([^<]*)<\/title><\/rect>/g),
    ].map((m) => m.slice(1));
    assert.deepStrictEqual(bars, [
      ["64", "28", "160", CHART_COLORS.succeeded, "update 2: succeeded, 3m00s"],
      ["96", "135", "53", CHART_COLORS.failed, "update 3: failed, 1m00s"],
      ["128", "161", "27", CHART_COLORS.rollback, "update 5: succeeded (rollback to 2), 30s"],
    ]);
    assert.ok(svg.trimEnd().endsWith("</svg>"));
    assert.strictEqual((svg.match(/<text /g) ?? []).length, 1 + 2 + 3 + 4);
  });
});
