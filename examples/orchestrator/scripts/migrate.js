"use strict";
// Applies migrations/*.sql in name order, one transaction each, and records
// them in schema_migrations so a rerun (every deploy runs it) is a no-op.
// `--check`: changes nothing; exits 1 naming the pending ones when a migration
// of this release is not applied (as Django's `migrate --check`), 0 otherwise.
// Migrations recorded but not in this release (the database is ahead, as after
// a rollback of the code alone) are named but do not fail the check.
const fs = require("fs");
const path = require("path");
const { Client } = require("pg");
const { loadDotEnv } = require("../src/env");

loadDotEnv();

async function main() {
  if (!process.env.DATABASE_URL) {
    console.error("DATABASE_URL is not defined");
    return 1;
  }
  const dir = path.join(__dirname, "..", "migrations");
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort();

  const client = new Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  if (process.argv.includes("--check")) {
    try {
      const exists = (await client.query("select to_regclass('schema_migrations') is not null as e")).rows[0].e;
      const recorded = exists ? (await client.query("select name from schema_migrations order by name")).rows.map((r) => r.name) : [];
      const pending = files.filter((f) => !recorded.includes(f));
      const unknown = recorded.filter((f) => !files.includes(f));
      if (pending.length) {
        console.log(`migrations differ: pending ${pending.join(", ")}; recorded but not in this release ${unknown.join(", ") || "none"}`);
        return 1;
      }
      if (unknown.length) {
        console.log(
          `migrations of this release applied: ${files.join(", ") || "none"}; the database is ahead of it: ${unknown.join(", ")} recorded but not in this release`,
        );
        return 0;
      }
      console.log(`migrations match this release: ${recorded.join(", ") || "none"}`);
      return 0;
    } finally {
      await client.end().catch(() => {});
    }
  }
  try {
    await client.query(
      "create table if not exists schema_migrations (name text primary key, applied_at timestamptz not null default now())",
    );
    // Two deploys migrating at once would race; serialise them on the server.
    await client.query("select pg_advisory_lock(hashtext('schema_migrations'))");
    const done = new Set((await client.query("select name from schema_migrations")).rows.map((r) => r.name));

    let applied = 0;
    for (const name of files.filter((f) => !done.has(f))) {
      const sql = fs.readFileSync(path.join(dir, name), "utf8");
      try {
        await client.query("begin");
        await client.query(sql); // simple-query protocol: multi-statement files are fine
        await client.query("insert into schema_migrations (name, applied_at) values ($1, now())", [name]);
        await client.query("commit");
      } catch (err) {
        // Postgres DDL is transactional: rollback leaves the schema as before this file.
        await client.query("rollback").catch(() => {});
        console.error(`migration ${name} failed: ${err.message}`);
        return 1;
      }
      console.log(`applied ${name}`);
      applied++;
    }
    console.log(applied ? `${applied} migration(s) applied` : "no pending migrations");
    return 0;
  } finally {
    await client.end().catch(() => {});
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`migrate failed: ${err.message}`);
    process.exit(1);
  },
);
