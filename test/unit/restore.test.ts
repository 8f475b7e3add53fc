import * as assert from "assert";
import { DatabaseSurvey, describeDiscard, parseJournal, pickRestoreBackup, RestoreRefusal, updateAt } from "../../lib/restore";

const deploy = (ref: string, finishedAt = "t") => ({
  stack: "s",
  result: "succeeded",
  apps: { api: { ref, sha: `${ref}-sha` }, web: { ref } },
  finishedAt,
});
const backup = (path: string) => ({ event: "backup", time: `time-${path}`, lease: `lease-${path}`, path, size: 1, sha256: `sum-${path}` });
const migration = (sha: string, backupPath: string, status = "succeeded") => ({
  event: "migration",
  time: `m-${sha}`,
  lease: "l",
  app: "api",
  sha,
  backup: backupPath,
  status,
});

describe("unit: restore plan (which backup a rollback restores; issue 9, observation 1)", () => {
  it("after a failed migration: the backup that migration ran after, not the last successful deploy's", () => {
    const journal = [
      backup("b1"),
      migration("v1-sha", "b1"),
      deploy("v1"),
      backup("b2"),
      migration("v2-sha", "b2"),
      deploy("v2"),
      backup("b3"),
      migration("v3-sha", "b3", "failed"),
    ];
    const choice = pickRestoreBackup(journal, { api: "v2", web: "v2" }, "update 2");
    assert.strictEqual(choice.backup.path, "b3");
    assert.deepStrictEqual(
      choice.migrations.map((m) => [m.sha, m.status]),
      [["v3-sha", "failed"]],
    );
  });

  it("back over several migrating deploys: the backup before the first migration since the target; twice in a row goes further", () => {
    const journal = [
      deploy("v1"),
      backup("b2"),
      migration("v2-sha", "b2"),
      deploy("v2"),
      backup("b3"),
      migration("v3-sha", "b3"),
      deploy("v3"),
    ];
    assert.strictEqual(pickRestoreBackup(journal, { api: "v1", web: "v1" }, "update 1").backup.path, "b2");
    assert.strictEqual(pickRestoreBackup(journal, { api: "v2", web: "v2" }, "update 2").backup.path, "b3");
    // The first rollback (to v2) ran v2's migrate again (a no-op) after a backup of its own, then
    // restored b3; the second (to v1) still restores b2, the one from before v2's migrations.
    journal.push(backup("b4"), migration("v2-sha", "b4"), deploy("v2"), { event: "restore", backup: "b3" } as never);
    assert.strictEqual(pickRestoreBackup(journal, { api: "v1", web: "v1" }, "update 1").backup.path, "b2");
  });

  it("after a rollback and a roll-forward: the backup taken while the target served again, not an older dump with the newer schema", () => {
    const journal = [
      deploy("v1"),
      backup("b2"),
      migration("v2-sha", "b2"),
      deploy("v2"),
      backup("b3"), // the rollback to v1 (its own migrate run), then b2 restored
      migration("v1-sha", "b3"),
      deploy("v1"),
      backup("b4"), // roll forward to v2: b4 holds v1's schema
      migration("v2-sha", "b4"),
      deploy("v2"),
    ];
    assert.strictEqual(pickRestoreBackup(journal, { api: "v1", web: "v1" }, "update 3").backup.path, "b4");
  });

  it("refuses, saying why: no migration since the target, a migration without a backup, no deploy of the target, a backup the journal lacks", () => {
    const refusal = (journal: unknown[], re: RegExp) =>
      assert.throws(
        () => pickRestoreBackup(journal as never, { api: "v1", web: "v1" }, "update 1"),
        (e: Error) => e instanceof RestoreRefusal && re.test(e.message),
      );
    refusal(
      [deploy("v1", "2026-01-01T00:00:00Z"), deploy("v2")],
      /^no migration ran on the server since update 1 \(api@v1, web@v1\) was deployed at 2026-01-01T00:00:00Z: .*name it with --backup PATH$/,
    );
    refusal(
      [deploy("v1"), migration("v2-sha", "")],
      /the migration of api@v2-sha \(m-v2-sha\) ran without a database backup \(backup\.enabled is false\)/,
    );
    refusal([deploy("v2")], /the server's journal has no deploy of update 1 \(api@v1, web@v1\)/);
    refusal([deploy("v1"), migration("v2-sha", "gone")], /names the backup gone, which the journal does not record/);
  });

  it("parseJournal skips a torn line (a crash mid-write)", () => {
    assert.deepStrictEqual(parseJournal('{"a":1}\n{"b":\n\n{"c":3}\n'), [{ a: 1 }, { c: 3 }]);
  });

  it("describeDiscard: the backup's age, tables created and dropped since, rows per table from the counters; a counter reset is said", () => {
    const survey: DatabaseSurvey = {
      sha256: "x",
      recorded: "x",
      size: 10,
      backupTables: ["public.items", "public.old"],
      tables: ["public.items", "public.users", "public.widgets"],
      stats: { "public.items": [30, 2, 1, 33], "public.users": [0, 0, 0, 2] },
    };
    const lines = describeDiscard(
      "2026-12-01T10:00:00.000Z",
      { "public.items": [5, 0, 0, 5], "public.users": [3, 0, 0, 3] },
      survey,
      new Date("2026-12-01T13:00:00Z"),
    );
    assert.deepStrictEqual(lines, [
      "everything written to the database since the backup was taken, 2026-12-01T10:00:00.000Z (3 hours ago), is discarded",
      "tables created since the backup, dropped by the restore: public.users, public.widgets",
      "tables dropped since the backup, brought back by the restore: public.old",
      "rows written since the backup (PostgreSQL's counters, approximate), lost by the restore:",
      "  public.items: 25 inserted, 2 updated, 1 deleted (33 rows now, 5 in the backup)",
    ]);
    const reset = describeDiscard(undefined, { "public.items": [50, 0, 0, 50] }, survey, new Date());
    assert.strictEqual(reset[0], "everything written to the database since the backup was taken is discarded (its time is not recorded)");
    assert.ok(
      reset.includes("some tables' counters were reset since the backup: their rows written since are not known"),
      reset.join("\n"),
    );
    assert.ok(
      describeDiscard(undefined, undefined, survey, new Date()).includes(
        "rows written since: not known (the backup has no recorded counters)",
      ),
    );
  });

  it("updateAt: a backup's time names the update running then, not one that ended seconds before", () => {
    const d = (s: string) => new Date(`2026-12-01T07:29:${s}Z`);
    const rows = [
      { version: 2, start: d("03"), end: d("15") },
      { version: 3, start: d("15"), end: d("20") },
    ];
    assert.strictEqual(updateAt(rows, "2026-12-01T07:29:19.514Z"), 3);
    assert.strictEqual(updateAt(rows, "2026-12-01T07:29:10.000Z"), 2);
    assert.strictEqual(updateAt(rows, "2026-12-01T07:29:40.000Z"), undefined);
    assert.strictEqual(updateAt(rows, "2026-12-01T07:28:00.000Z"), undefined);
  });
});
