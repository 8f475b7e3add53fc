import * as assert from "assert";
import {
  CHART_COLORS,
  commitKey,
  deployMetrics,
  deployRows,
  durationChartSvg,
  formatDuration,
  formatMetrics,
  formatTable,
  HistoryEntry,
  lastSuccessful,
  pickRollbackTarget,
  refsOf,
  readAllHistory,
  RollbackRefusal,
} from "../../lib/history";
import { loadHistory } from "../../tools/common";
import type { Stack } from "@pulumi/pulumi/automation";

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
      unchanged: 0,
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

// --- More than 10 updates, as a file backend reports them (version 0, newest first).

/** Update i (1-based) started at day i, 10:00 UTC. */
const startOf = (i: number) => new Date(Date.UTC(2024, 3, i, 10, 0, 0));
interface Spec {
  orch: string;
  result?: string;
  message?: string;
  kind?: string;
  changes?: Record<string, number>;
}
/** Entries for the specs (oldest first in `specs`), listed newest first with version 0. */
function fileHistory(specs: Spec[]): HistoryEntry[] {
  return specs
    .map((s, i) => ({
      version: 0,
      kind: s.kind ?? "update",
      result: s.result ?? "succeeded",
      message: s.message ?? `update #${i + 1}`,
      startTime: startOf(i + 1),
      endTime: new Date(startOf(i + 1).getTime() + 60_000),
      config: cfg(s.orch, "v1.2.3"),
      resourceChanges: s.changes ?? { update: 2, same: 10 },
    }))
    .reverse();
}

/** A Stack stand-in answering like the CLI: `history()` without a page size gives the newest 10. */
function fakeStack(entries: HistoryEntry[], outputs: Record<string, unknown> = {}) {
  const calls: (number | undefined)[][] = [];
  const stack = {
    async history(pageSize?: number, page?: number) {
      calls.push([pageSize, page]);
      if (!pageSize) return entries.slice(0, 10);
      const p = Math.max(1, page ?? 1);
      return entries.slice((p - 1) * pageSize, p * pageSize);
    },
  };
  return { stack: stack as unknown as Stack, calls, outputsOf: async () => outputs };
}

/** loadHistory of a fake stack. */
const loaded = (f: ReturnType<typeof fakeStack>) => loadHistory(f.stack, f.outputsOf);

/** 12 updates: 1 deployed v1.2.2; the 11 after it v1.2.3 (two failed, four changed nothing, a refresh). */
function twelve(): Spec[] {
  return [
    { orch: "v1.2.2", message: "first deploy" },
    { orch: "v1.2.3" },
    { orch: "v1.2.3", result: "failed", changes: { update: 1, same: 5 } },
    { orch: "v1.2.3", changes: { same: 12 } },
    { orch: "v1.2.3", kind: "refresh", changes: { same: 12 } },
    { orch: "v1.2.3", changes: { same: 12 } },
    { orch: "v1.2.3", result: "failed", changes: { same: 3 } },
    { orch: "v1.2.3" },
    { orch: "v1.2.3", changes: { same: 12 } },
    { orch: "v1.2.3", changes: { create: 1, same: 12 } },
    { orch: "v1.2.3", changes: { same: 13 } },
    { orch: "v1.2.3", changes: { delete: 1, same: 12 } },
  ];
}

describe("lib/history: the whole history, numbered stably (more than 10 updates)", () => {
  it("reads every page until a short one; numbers by start time, oldest = 1", async () => {
    const { stack, calls, outputsOf } = fakeStack(fileHistory(twelve()));
    const { rows } = await loadHistory(stack, outputsOf);
    assert.deepStrictEqual(
      rows.map((r) => r.version),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    );
    assert.deepStrictEqual(
      rows.map((r) => r.start.getTime()),
      twelve().map((_, i) => startOf(i + 1).getTime()),
    );
    assert.strictEqual(rows[0].message, "first deploy");
    assert.ok(
      calls.every(([size]) => size !== undefined),
      `history() read without a page size: ${JSON.stringify(calls)}`,
    );

    // A backend that pages in 5s, and a managed backend's own numbers (used as they are).
    const entries = fileHistory(twelve()).map((h, i) => ({ ...h, version: 112 - i }));
    assert.deepStrictEqual(
      (await readAllHistory(async (_size, page) => entries.slice((page - 1) * 5, page * 5), 5)).map((h) => h.version),
      entries.map((h) => h.version),
    );
    assert.deepStrictEqual(
      deployRows(entries).map((r) => r.version),
      Array.from({ length: 12 }, (_, i) => 101 + i),
    );
    // A backend that ignores paging (the whole list each time) is read once, not forever.
    let pages = 0;
    const all = await readAllHistory(async () => (pages++, entries), 5);
    assert.deepStrictEqual([all.length, pages], [12, 1]);
  });

  it("numbers never shift when new updates arrive", async () => {
    const before = (await loaded(fakeStack(fileHistory(twelve())))).rows;
    const more = [...twelve(), { orch: "v1.2.4" }, { orch: "v1.2.4", result: "failed" }, { orch: "v1.2.5" }];
    const after = (await loaded(fakeStack(fileHistory(more)))).rows;
    assert.strictEqual(after.length, 15);
    for (const row of before) {
      const same = after.find((r) => r.version === row.version)!;
      assert.deepStrictEqual([same.start, same.result, same.message], [row.start, row.result, row.message], `update ${row.version}`);
    }
    assert.deepStrictEqual(
      after.slice(12).map((r) => [r.version, r.apps.orchestrator.ref, r.result]),
      [
        [13, "v1.2.4", "succeeded"],
        [14, "v1.2.4", "failed"],
        [15, "v1.2.5", "succeeded"],
      ],
    );
  });

  const current = { orchestrator: "v1.2.3", sevastopol: "v1.2.3" };

  it("after 12 updates the target is update 1 (the only other release)", async () => {
    const { rows } = await loaded(fakeStack(fileHistory(twelve())));
    const target = pickRollbackTarget(rows, current);
    assert.deepStrictEqual([target.version, target.apps.orchestrator.ref, target.message], [1, "v1.2.2", "first deploy"]);
  });

  it("--to N is exactly update N of the whole history", async () => {
    const { rows } = await loaded(fakeStack(fileHistory(twelve())));
    // --to 2: the second update ever (day 2), not the second of the newest ten.
    const two = pickRollbackTarget(rows, { orchestrator: "v1.2.4", sevastopol: "v1.2.3" }, 2);
    assert.deepStrictEqual([two.version, two.start.getTime(), two.message], [2, startOf(2).getTime(), "update #2"]);
    const first = pickRollbackTarget(rows, current, 1);
    assert.deepStrictEqual([first.version, first.start.getTime()], [1, startOf(1).getTime()]);
    assert.throws(() => pickRollbackTarget(rows, current, 3), /^RollbackRefusal: update 3 failed: only a successful update/);
    assert.throws(() => pickRollbackTarget(rows, current, 13), /update 13 not found in the stack's history \(versions 1 to 12\)/);
  });

  it("two rollbacks in a row: the second goes further back, not to the release just rolled back from", () => {
    // 1..12 as above, 13 v1.2.4, 14 v1.2.5, then the tool's rollback (to 13, from 14).
    const specs: Spec[] = [...twelve(), { orch: "v1.2.4" }, { orch: "v1.2.5" }, { orch: "v1.2.4", message: "rollback to update 13" }];
    let rows = deployRows(fileHistory(specs));
    const second = pickRollbackTarget(rows, { orchestrator: "v1.2.4", sevastopol: "v1.2.3" });
    assert.strictEqual(second.version, 12, "the second rollback redeploys v1.2.5, the release just rolled back from");
    assert.strictEqual(second.apps.orchestrator.ref, "v1.2.3");
    assert.deepStrictEqual([rows[14].rollbackTo, rows[14].rollbackFrom, rows[13].rolledBackBy], [13, 14, 15]);

    // It runs (16: rollback to 12, from 15, itself a rollback to 13): 14 and 13 are both behind us,
    // and the third goes back to update 1's v1.2.2.
    specs.push({ orch: "v1.2.3", message: "rollback to update 12" });
    rows = deployRows(fileHistory(specs));
    assert.deepStrictEqual(
      rows.filter((r) => r.rolledBackBy !== undefined).map((r) => [r.version, r.rolledBackBy]),
      [
        [13, 16],
        [14, 15],
        [15, 16],
      ],
    );
    assert.strictEqual(pickRollbackTarget(rows, { orchestrator: "v1.2.3", sevastopol: "v1.2.3" }).version, 1);
    const table = formatTable(rows).split("\n");
    assert.match(table[14], /^14 +succeeded .*orchestrator@v1\.2\.5, sevastopol@v1\.2\.3 +rolled back by update 15: update #14$/);
    assert.match(table[15], /^15 +succeeded .* +ROLLBACK to update 13$/);

    // With nothing left that was not rolled back from, it refuses and says why; --to still works.
    const short: Spec[] = [{ orch: "v1.2.2" }, { orch: "v1.2.3" }, { orch: "v1.2.2", message: "rollback to update 1" }];
    const r3 = deployRows(fileHistory(short));
    assert.throws(
      () => pickRollbackTarget(r3, { orchestrator: "v1.2.2", sevastopol: "v1.2.3" }),
      (err: Error) => {
        assert.ok(err instanceof RollbackRefusal, String(err));
        assert.strictEqual(
          err.message,
          "nothing to roll back to: no successful update in the stack's history (3 deploys) deployed app refs other than the current ones (orchestrator@v1.2.2, sevastopol@v1.2.3) without having been rolled back from already: update 2 (rolled back by 3); name one with --to N to go back to it anyway",
        );
        return true;
      },
    );
    assert.strictEqual(pickRollbackTarget(r3, { orchestrator: "v1.2.2", sevastopol: "v1.2.3" }, 2).version, 2);
  });

  it("metrics count only updates that changed something (no-change ups are no deploys)", () => {
    const m = deployMetrics(deployRows(fileHistory(twelve())));
    // Deploys: 1, 2, 8, 10, 12 changed something; 3 and 7 failed; 4, 6, 9, 11 were all `same`; 5 a refresh.
    assert.deepStrictEqual([m.deploys, m.succeeded, m.failed, m.unchanged, m.changeFailureRate], [7, 5, 2, 4, 2 / 7]);
    assert.match(formatMetrics(m), /^deploys: +7 \(5 succeeded, 2 failed, 0 rollbacks\)\nnot counted: +4 updates that changed nothing$/m);
    // MTTR: 3 failed (ended day 3 10:01) → 8 the next change (ended day 8 10:01); a no-change up is no repair.
    assert.strictEqual(m.mttrSeconds, 5 * 86400);
    assert.strictEqual(m.incidents, 1);
  });
});
