import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseDeployConfig } from "../../../lib/config";
import { RESULT_FUNCTION, eventFunction, recordScript, workersRetireLines } from "../../../lib/scripts";
import { validRaw } from "../../support/validConfig";
import { stepText } from "./fixture";

describe("unit: scripts/journal (exact text)", () => {
  it("retires the recorded workers of an app with none left, appends the deploy's line with lease and duration, prunes each app's old releases (not serving, previous or slot), releases the lock", () => {
    const cfg = parseDeployConfig("unit", validRaw(), { sshPrivateKey: true, databaseUrl: true });
    const entry = {
      stack: "unit",
      result: "succeeded",
      apps: { orchestrator: { sha: "0123456789abcdef0123456789abcdef01234567" } },
      note: "it's done",
    };
    assert.strictEqual(
      recordScript(cfg, entry, 5),
      stepText(cfg, [
        // orchestrator has no workers step (no worker in its config): the record step retires any it had.
        eventFunction("/srv/nostromo"),
        ...workersRetireLines(cfg, cfg.apps[0]),
        `started=$(cat "$lock/started")`,
        "finished=$(date +%s)",
        `line='{"stack":"unit","result":"succeeded","apps":{"orchestrator":{"sha":"0123456789abcdef0123456789abcdef01234567"}},"note":"it'\\''s done"}'`,
        `printf '%s,"lease":"%s","durationSeconds":%s,"finishedAt":"%s"}\\n' "\${line%\\}}" "$NOSTROMO_LEASE" "$((finished - started))" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> '/srv/nostromo/deploys.jsonl'`,
        `keep=" $(basename "$(readlink '/srv/nostromo/current/orchestrator')" 2>/dev/null) $(basename "$(cat '/srv/nostromo/releases/orchestrator/.previous' 2>/dev/null)" 2>/dev/null) $(for s in blue green; do basename "$(readlink '/srv/nostromo/slots/orchestrator'/$s 2>/dev/null)" 2>/dev/null; done | tr '\\n' ' ') "`,
        `ls -1t '/srv/nostromo/releases/orchestrator' 2>/dev/null | tail -n +6 | while IFS= read -r r; do case "$keep" in *" $r "*) ;; *) rm -rf '/srv/nostromo/releases/orchestrator'/"$r"; echo "pruned release orchestrator/$r";; esac; done`,
        `keep=" $(basename "$(readlink '/srv/nostromo/current/sevastopol')" 2>/dev/null) $(basename "$(cat '/srv/nostromo/releases/sevastopol/.previous' 2>/dev/null)" 2>/dev/null) $(for s in blue green; do basename "$(readlink '/srv/nostromo/slots/sevastopol'/$s 2>/dev/null)" 2>/dev/null; done | tr '\\n' ' ') "`,
        `ls -1t '/srv/nostromo/releases/sevastopol' 2>/dev/null | tail -n +6 | while IFS= read -r r; do case "$keep" in *" $r "*) ;; *) rm -rf '/srv/nostromo/releases/sevastopol'/"$r"; echo "pruned release sevastopol/$r";; esac; done`,
        `echo "deploy recorded in /srv/nostromo/deploys.jsonl"`,
        `rm -rf "$lock"`,
        `nostromo_held=""`,
        `echo "lock released"`,
        `nostromo_result durationSeconds="$((finished - started))"`,
      ]),
    );
  });

  it("an app with workers retires its own in its workers step; a static app has none: neither adds lines to the record", () => {
    const raw = validRaw();
    raw.apps.orchestrator.workers = { mailer: { command: "node mailer.js" } };
    const cfg = parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
    assert.doesNotMatch(recordScript(cfg, { stack: "unit" }, 5), /nostromo_event|slots\/[a-z]+\/workers/);
  });

  it("eventFunction: an event of strings only is written by bash (no node start), escaped as JSON, with the time in milliseconds", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-event-"));
    try {
      const script = [
        RESULT_FUNCTION,
        eventFunction(root),
        // Any node start fails the script: the bash path must not need it.
        `node() { echo "node ran" >&2; return 1; }`,
        `nostromo_event migration app=orchestrator sha=abc backup="/b/it's \\"q\\".dump" note=$'two\\nlines\\tand\\x01' status=succeeded`,
      ].join("\n");
      const r = spawnSync("bash", ["-c", `set -euo pipefail\n${script}`], {
        encoding: "utf8",
        env: { ...process.env, NOSTROMO_LEASE: "unit/lease-8" },
      });
      assert.strictEqual(r.status, 0, r.stderr);
      const [line, ...more] = fs.readFileSync(path.join(root, "deploys.jsonl"), "utf8").trim().split("\n");
      assert.deepStrictEqual(more, []);
      const { time, ...rest } = JSON.parse(line);
      assert.match(time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      assert.ok(Math.abs(Date.parse(time) - Date.now()) < 60_000, time);
      assert.deepStrictEqual(rest, {
        event: "migration",
        lease: "unit/lease-8",
        app: "orchestrator",
        sha: "abc",
        backup: `/b/it's "q".dump`,
        note: "two\nlines\tand\u0001",
        status: "succeeded",
      });
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it("eventFunction: one JSON line per event, strings, raw JSON and nested keys, with the server time and the update's lease", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "nostromo-event-"));
    try {
      const r = spawnSync(
        "bash",
        [
          "-c",
          `${eventFunction(root)}\nnostromo_event backup path="/b/it's.dump" size:=42 stats:='{"public.items":[1,2,3,4]}' from.api=abc to.api=def`,
        ],
        {
          encoding: "utf8",
          env: { ...process.env, NOSTROMO_LEASE: "unit/lease-7" },
        },
      );
      assert.strictEqual(r.status, 0, r.stderr);
      const lines = fs
        .readFileSync(path.join(root, "deploys.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      assert.strictEqual(lines.length, 1);
      const { time, ...rest } = lines[0];
      assert.ok(!Number.isNaN(Date.parse(time)), time);
      assert.deepStrictEqual(rest, {
        event: "backup",
        lease: "unit/lease-7",
        path: "/b/it's.dump",
        size: 42,
        stats: { "public.items": [1, 2, 3, 4] },
        from: { api: "abc" },
        to: { api: "def" },
      });
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
