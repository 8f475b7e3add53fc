// Git repository of the IACT example (examples/iact, Django + Celery), made on the spot with two
// tagged versions: v1.0.0 is the folder as committed, v1.1.0 adds a migration and bumps VERSION.
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import { EXAMPLES_DIR, addCommit } from "./exampleRepos";

const execFileAsync = promisify(execFile);

export const IACT_DIR = path.join(EXAMPLES_DIR, "iact");
export const IACT_V1 = { tag: "v1.0.0", version: "1.0.0" } as const;
export const IACT_V2 = { tag: "v1.1.0", version: "1.1.0", migration: "0002_taskrecord_note" } as const;

/** What a developer would commit: no virtualenv, collected static files, .env or bytecode. */
const NOT_COMMITTED = new Set([".env", ".venv", "venv", "staticfiles", "__pycache__"]);

// v1.1.0: task records gain an optional note. `db_default` keeps a default in the database
// itself, so v1.0.0 (still serving while v1.1.0 starts beside it) can insert rows without the
// column: the migration is backward compatible.
const NOTE_FIELD = `    note = models.CharField(max_length=200, blank=True, db_default="")\n`;
const NOTE_MIGRATION = `from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="taskrecord",
            name="note",
            field=models.CharField(blank=True, db_default="", max_length=200),
        ),
    ]
`;

/** core/models.py with the v1.1.0 field added after `completed_at`. */
function withNoteField(models: string): string {
  const anchor = /^ {4}completed_at = .*\n/m;
  if (!anchor.test(models)) throw new Error("iactRepo: core/models.py has no completed_at field to add the note after");
  return models.replace(anchor, (line) => line + NOTE_FIELD);
}

/**
 * Builds a git repository `<dir>/iact` from examples/iact: the files as they are, tagged
 * v1.0.0, then "Task records keep a note" tagged v1.1.0 (VERSION 1.1.0, the `note` field in
 * core/models.py, core/migrations/0002_taskrecord_note.py). Returns its path (a git URL too).
 */
export async function makeIactRepo(dir: string): Promise<string> {
  const repo = path.join(dir, "iact");
  fs.cpSync(IACT_DIR, repo, {
    recursive: true,
    filter: (src) =>
      !path
        .relative(IACT_DIR, src)
        .split(path.sep)
        .some((part) => NOT_COMMITTED.has(part) || part.endsWith(".pyc")),
  });
  const committed = fs.readFileSync(path.join(repo, "VERSION"), "utf8").trim();
  if (committed !== IACT_V1.version) throw new Error(`iactRepo: examples/iact/VERSION is ${committed}, expected ${IACT_V1.version}`);
  await execFileAsync("git", ["-c", "init.defaultBranch=main", "init", "-q", repo]);
  await addCommit(repo, `iact ${IACT_V1.version}`, {}, IACT_V1.tag);

  const models = fs.readFileSync(path.join(repo, "core", "models.py"), "utf8");
  await addCommit(
    repo,
    "Task records keep a note",
    {
      VERSION: `${IACT_V2.version}\n`,
      "core/models.py": withNoteField(models),
      [`core/migrations/${IACT_V2.migration}.py`]: NOTE_MIGRATION,
    },
    IACT_V2.tag,
  );
  return repo;
}

/** The ways a release can be broken that the IACT tests deploy (each a commit on top of v1.1.0). */
export const IACT_BROKEN = {
  /** A migration whose RunPython raises: `migrate` fails (in its transaction) after the backup. */
  migrate: { tag: "v1.1.1", version: "1.1.1", migration: "0003_fails", error: "iact test: this migration fails on purpose" },
  /** The stylesheet names a file that does not exist: ManifestStaticFilesStorage fails collectstatic. */
  collectstatic: { tag: "v1.1.2", version: "1.1.2", missing: "core/missing-logo.png" },
  /** The WSGI module never finishes importing: gunicorn listens but no request is ever answered. */
  hang: { tag: "v1.1.3", version: "1.1.3" },
} as const;

/**
 * Commits the three broken releases of IACT_BROKEN, each on its own branch from v1.1.0 (so each
 * carries only its own fault) and tagged; the repository's HEAD stays where it was.
 */
export async function addBrokenIactReleases(repo: string): Promise<void> {
  const read = (rel: string) => fs.readFileSync(path.join(repo, rel), "utf8");
  const git = (args: string[]) => execFileAsync("git", ["-C", repo, ...args]);
  const { migrate, collectstatic, hang } = IACT_BROKEN;
  const variants: { tag: string; version: string; message: string; files: () => Record<string, string> }[] = [
    {
      ...migrate,
      message: "A migration that fails",
      files: () => ({
        [`core/migrations/${migrate.migration}.py`]:
          `from django.db import migrations\n\n\ndef fail(apps, schema_editor):\n    raise RuntimeError(${JSON.stringify(migrate.error)})\n\n\n` +
          `class Migration(migrations.Migration):\n    dependencies = [("core", "${IACT_V2.migration}")]\n\n    operations = [migrations.RunPython(fail)]\n`,
      }),
    },
    {
      ...collectstatic,
      message: "A stylesheet that names a missing file",
      files: () => ({
        "core/static/core/site.css": `${read("core/static/core/site.css")}.logo {\n  background: url("missing-logo.png");\n}\n`,
      }),
    },
    {
      ...hang,
      message: "A WSGI module that never finishes loading",
      files: () => ({
        "iact/wsgi.py": read("iact/wsgi.py").replace(/^application = /m, "import time\n\ntime.sleep(86400)\napplication = "),
      }),
    },
  ];
  const head = (await git(["symbolic-ref", "-q", "--short", "HEAD"])).stdout.trim();
  try {
    for (const v of variants) {
      await git(["checkout", "-q", "-b", `broken-${v.version}`, IACT_V2.tag]);
      await addCommit(repo, v.message, { VERSION: `${v.version}\n`, ...v.files() }, v.tag);
    }
  } finally {
    await git(["checkout", "-q", head]);
  }
}
