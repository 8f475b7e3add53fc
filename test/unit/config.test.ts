import * as assert from "assert";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import {
  ConfigError,
  DeploySecretsPresence,
  KNOWN_KEYS,
  parseDeployConfig,
  projectConfig,
  smokeSecretNames,
  smokeSecretRefs,
  smokeSecretsLine,
} from "../../lib/config";
import { REPO_ROOT } from "../../local/backend";
import { nginxSite } from "../../lib/scripts";
import { validRaw } from "../support/validConfig";

const secrets = { sshPrivateKey: true, databaseUrl: true };

function problems(raw: Record<string, any>, s: DeploySecretsPresence = secrets, stack = "local"): string[] {
  try {
    parseDeployConfig(stack, raw, s);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  return [];
}

describe("unit: config", () => {
  it("parses a valid config with defaults filled in", () => {
    const cfg = parseDeployConfig("local", validRaw(), secrets);
    const orch = cfg.apps.find((a) => a.name === "orchestrator")!;
    assert.strictEqual(orch.version, "1.2.2");
    assert.strictEqual(orch.manager, "pm2");
    assert.strictEqual(orch.install, "npm ci");
    assert.strictEqual(orch.usesDatabase, true);
    assert.deepStrictEqual(orch.health, {
      checks: [{ path: "/health", expect: { status: "ok" }, versionField: "version" }],
      timeoutSeconds: 60,
    });
    assert.strictEqual(cfg.apps.find((a) => a.name === "sevastopol")!.output, "dist");
    assert.strictEqual(cfg.nginx.sitesDir, "/srv/nostromo/nginx");
    assert.strictEqual(cfg.nginx.errorLog, "/var/log/nginx/error.log");
    assert.deepStrictEqual(cfg.backup, { keep: 10, enabled: true });
  });

  it("reads bake (issue 11): the window, the runbooks' thresholds and patterns by default, each bad value by its path", () => {
    const raw = validRaw();
    raw.bake = { seconds: 60, maxErrorPercent: 1 };
    assert.deepStrictEqual(parseDeployConfig("local", raw, secrets).bake, {
      seconds: 60,
      maxErrorPercent: 1,
      p95Factor: 3,
      p95FloorMs: 100,
      minRequests: 20,
      tooFew: "pass",
      logPatterns: ["ERROR", "FATAL", "UnhandledPromiseRejection", "Traceback"],
    });
    assert.strictEqual(parseDeployConfig("local", validRaw(), secrets).bake, undefined);
    raw.bake = { maxErrorPercent: 101, tooFew: "maybe", logPatterns: ["a\nb"], second: 5 };
    assert.deepStrictEqual(problems(raw), [
      'bake.second: unknown key (did you mean "seconds"?)',
      "bake.seconds: is required",
      "bake.maxErrorPercent: must be a whole number from 0 to 100",
      "bake.tooFew: must be one of pass, fail",
      "bake.logPatterns[0]: must be one line of text",
    ]);
  });

  it("takes nginx.errorLog (the log a failed check shows the end of) as an absolute path only (issue 11)", () => {
    const raw = validRaw();
    raw.nginx.errorLog = "/srv/logs/nginx-error.log";
    assert.strictEqual(parseDeployConfig("local", raw, secrets).nginx.errorLog, "/srv/logs/nginx-error.log");
    raw.nginx.errorLog = "logs/error.log";
    assert.deepStrictEqual(problems(raw), ["nginx.errorLog: must be an absolute path"]);
  });

  it("parses a python app (issue 10): its default install from the shared wheelhouse, its workers with a stop timeout", () => {
    const raw = validRaw();
    raw.apps.iact = {
      repo: "/tmp/repos/iact",
      ref: "v1.0.0",
      kind: "python",
      manager: "systemd",
      build: "python manage.py collectstatic --noinput",
      migrate: "python manage.py migrate --noinput",
      start: "gunicorn iact.wsgi --bind 127.0.0.1:$PORT",
      ports: { blue: 8101, green: 8102 },
      health: { path: "/api/health", expect: { status: "healthy" } },
      workers: {
        "celery-worker": { command: "celery -A iact worker --loglevel=INFO" },
        beat: { command: "celery -A iact beat", stopTimeoutSeconds: 5 },
      },
    };
    raw.nginx.site.apiApp = "iact";
    const iact = parseDeployConfig("local", raw, secrets).apps.find((a) => a.name === "iact")!;
    assert.strictEqual(iact.kind, "python");
    assert.strictEqual(iact.install, "nostromo_pip_install requirements.txt");
    assert.strictEqual(iact.version, "1.0.0");
    assert.deepStrictEqual(iact.workers, [
      { name: "celery-worker", command: "celery -A iact worker --loglevel=INFO", stopTimeoutSeconds: 60 },
      { name: "beat", command: "celery -A iact beat", stopTimeoutSeconds: 5 },
    ]);
    assert.deepStrictEqual(parseDeployConfig("local", validRaw(), secrets).apps[0].workers, []);
    raw.apps.iact.install = "pip install -r requirements.txt";
    assert.strictEqual(
      parseDeployConfig("local", raw, secrets).apps.find((a) => a.name === "iact")!.install,
      "pip install -r requirements.txt",
    );
  });

  it("refuses a python app without start, ports or health, and bad workers, each by its path (issue 10)", () => {
    const raw = validRaw();
    raw.apps.iact = {
      repo: "/tmp/repos/iact",
      ref: "v1.0.0",
      kind: "python",
      workers: { Celery: { command: "celery" }, blue: { command: "x" } },
    };
    raw.apps.orchestrator.workers = {
      mail: { command: "node mail.js # send", stopTimeout: 5 },
      jobs: { stopTimeoutSeconds: 0 },
      green: { command: "node g.js" },
    };
    raw.apps.sevastopol.workers = { x: { command: "true" } };
    raw.apps["orchestrator-x"] = {
      ...validRaw().apps.orchestrator,
      ports: { blue: 8011, green: 8012 },
      workers: { y: { command: "node y.js" } },
    };
    raw.apps.orchestrator.workers["x-y"] = { command: "node xy.js" };
    assert.deepStrictEqual(problems(raw), [
      'apps.orchestrator.workers.mail.stopTimeout: unknown key (did you mean "stopTimeoutSeconds"?)',
      "apps.orchestrator.workers.mail.command: must be one line without a # comment (it is run inside the deploy's scripts); found a # comment",
      "apps.orchestrator.workers.jobs.command: is required",
      "apps.orchestrator.workers.jobs.stopTimeoutSeconds: must be a whole number from 1 to 86400",
      "apps.orchestrator.workers.green: blue and green name the app's slots",
      "apps.sevastopol.workers: a static app has no processes",
      "apps.iact.workers.Celery: worker names are lower-case letters, digits and '-', starting with a letter",
      "apps.iact.workers.blue: blue and green name the app's slots",
      "apps.iact.start: is required for a python app",
      "apps.iact.ports: is required for a python app: { blue: <port>, green: <port> }",
      "apps.iact.ports.blue: is required",
      "apps.iact.ports.green: is required",
      "apps.iact.health: is required for a python app: nothing takes traffic unchecked",
      "apps.orchestrator-x.workers.y: its process name orchestrator-x-y is already used by apps.orchestrator.workers.x-y",
    ]);
  });

  it("names the path of each bad value, all at once", () => {
    const raw = validRaw();
    raw.apps.orchestrator.health.path = "health";
    raw.apps.orchestrator.ref = "--upload-pack=evil";
    raw.server.port = 70000;
    raw.apps.sevastopol.ports = { blue: 8001, green: 9000 };
    raw.nginx.port = 8002;
    assert.deepStrictEqual(problems(raw), [
      "server.port: must be a whole number from 1 to 65535",
      "apps.orchestrator.ref: must be a git tag, branch or commit SHA",
      'apps.orchestrator.health.path: must start with "/"',
      "apps.sevastopol.ports: a static app is served by nginx from its files: it has no ports",
      "nginx.port: port 8002 is already used by apps.orchestrator.ports.green",
    ]);
  });

  it("nginx.routes (issue 10): a web app's slot, a static app's release, a folder shared by an app's releases named in its .env", () => {
    const raw = validRaw();
    delete raw.nginx.site;
    raw.nginx.routes = [
      { path: "/", app: "sevastopol" },
      { path: "/api/", app: "orchestrator" },
      { path: "/static/", app: "orchestrator", static: "static" },
      { path: "/media/", app: "orchestrator", static: "media" },
    ];
    const cfg = parseDeployConfig("local", raw, secrets);
    assert.deepStrictEqual(cfg.nginx.routes, [
      { path: "/", app: "sevastopol", serve: "release" },
      { path: "/api/", app: "orchestrator", serve: "slot" },
      { path: "/static/", app: "orchestrator", serve: "folder", folder: "/srv/nostromo/shared/orchestrator/static" },
      { path: "/media/", app: "orchestrator", serve: "folder", folder: "/srv/nostromo/shared/orchestrator/media" },
    ]);
    assert.deepStrictEqual(cfg.apps[0].staticFolders, [
      { dir: "/srv/nostromo/shared/orchestrator/static", url: "/static/", dirVar: "STATIC_ROOT", urlVar: "STATIC_URL" },
      { dir: "/srv/nostromo/shared/orchestrator/media", url: "/media/", dirVar: "MEDIA_ROOT", urlVar: "MEDIA_URL" },
    ]);
    assert.strictEqual(cfg.apps[1].staticFolders, undefined);
    assert.strictEqual("staticFolders" in parseDeployConfig("local", validRaw(), secrets).apps[0], false);
    assert.deepStrictEqual(parseDeployConfig("local", { ...validRaw(), nginx: { port: 8080 } }, secrets).nginx.routes, []);
  });

  it("nginx.routes: a path without its last '/' is an exact location to a web app's slot (/health beside a web app at /)", () => {
    const raw = validRaw();
    delete raw.nginx.site;
    raw.apps.sevastopol = {
      ...raw.apps.sevastopol,
      kind: "node",
      start: "npm start",
      ports: { blue: 8011, green: 8012 },
      health: { path: "/health" },
    };
    delete raw.apps.sevastopol.output;
    raw.nginx.routes = [
      { path: "/", app: "sevastopol" },
      { path: "/api/", app: "orchestrator" },
      { path: "/health", app: "orchestrator" },
    ];
    const cfg = parseDeployConfig("unit", raw, { sshPrivateKey: true, databaseUrl: true });
    assert.deepStrictEqual(cfg.nginx.routes, [
      { path: "/", app: "sevastopol", serve: "slot" },
      { path: "/api/", app: "orchestrator", serve: "slot" },
      { path: "/health", app: "orchestrator", serve: "slot", exact: true },
    ]);
    assert.match(nginxSite(cfg), /location = \/health \{\n\s+proxy_pass http:\/\/\$nostromo_orchestrator;/);
  });

  it("refuses bad nginx.routes by their paths: unknown keys and apps, paths, duplicates, apps without a web slot, mixing with site (issue 10)", () => {
    const raw = validRaw();
    raw.apps.orchestrator.env = { STATIC_ROOT: "/tmp/static" };
    raw.nginx.routes = [
      { path: "/", app: "sevastopol", statik: "x" },
      { path: "/api/", app: "x" },
      { path: "/index", app: "sevastopol" },
      { path: "api/", app: "orchestrator" },
      { path: "/a/../b/", app: "orchestrator" },
      { path: "/a b/", app: "orchestrator" },
      { path: "/", app: "orchestrator" },
      { path: "/static/", app: "orchestrator", static: "static" },
      { path: "/static2/", app: "orchestrator", static: "static" },
      { path: "/assets/", app: "sevastopol", static: "assets" },
      { path: "/wheels/", app: "orchestrator", static: "wheelhouse" },
      { path: "/x/", app: "orchestrator", static: "../x" },
      { app: "orchestrator" },
      "/y/",
      null,
    ];
    assert.deepStrictEqual(problems(raw), [
      "nginx.routes: cannot be combined with site (the shorthand for a static app at / and an API app at /api/ and /health): give every path in routes",
      'nginx.routes[0].statik: unknown key (did you mean "static"?)',
      'nginx.routes[1].app: no app named "x"',
      `nginx.routes[2].path: an exact path (no last "/") goes to a web app's slot: end /index with "/" to serve files there`,
      `nginx.routes[3].path: must start with "/": a prefix ending with "/" (/api/, or /) or an exact path (/health), of letters, digits, '.', '_', '-', '~'`,
      `nginx.routes[4].path: must start with "/": a prefix ending with "/" (/api/, or /) or an exact path (/health), of letters, digits, '.', '_', '-', '~'`,
      `nginx.routes[5].path: must start with "/": a prefix ending with "/" (/api/, or /) or an exact path (/health), of letters, digits, '.', '_', '-', '~'`,
      "nginx.routes[6].path: / is already routed by nginx.routes[0]",
      "apps.orchestrator.env.STATIC_ROOT: is set by nginx.routes[7] (the folder nginx serves): remove it here",
      "nginx.routes[8].static: static of orchestrator is already routed by nginx.routes[7]",
      "nginx.routes[9].static: sevastopol is a static app: route its output without static",
      "nginx.routes[10].static: wheelhouse is the deploy's own folder of shared/orchestrator",
      "nginx.routes[11].static: must be a folder name (lower-case letters, digits, '_'), kept in the app's shared folder",
      "nginx.routes[12].path: is required",
      "nginx.routes[13]: must be an object",
      "nginx.routes[14]: must be an object",
    ]);
    // An app with no web slot (its ports refused) takes no route; neither does an empty list.
    const noSlot = validRaw();
    delete noSlot.nginx.site;
    delete noSlot.apps.orchestrator.ports;
    noSlot.nginx.routes = [{ path: "/api/", app: "orchestrator" }];
    assert.deepStrictEqual(problems(noSlot), [
      "apps.orchestrator.ports: is required for a node app: { blue: <port>, green: <port> }",
      "apps.orchestrator.ports.blue: is required",
      "apps.orchestrator.ports.green: is required",
      "nginx.routes[0].app: orchestrator has no web slot (ports) to send requests to",
    ]);
    const empty = validRaw();
    delete empty.nginx.site;
    empty.nginx.routes = [];
    assert.deepStrictEqual(problems(empty), ["nginx.routes: must name at least one path"]);
    empty.nginx.routes = { "/": "sevastopol" };
    assert.deepStrictEqual(problems(empty), ["nginx.routes: must be a list of { path, app, static }"]);
  });

  it("refuses a server without a pinned host key unless the stack opts out", () => {
    const raw = validRaw();
    delete raw.server.hostKey;
    assert.match(problems(raw)[0], /^server\.hostKey: is required: pin the server's host key/);
    raw.server.insecureIgnoreHostKey = true;
    assert.deepStrictEqual(problems(raw), []);
  });

  it("requires the secrets the deploy needs", () => {
    assert.deepStrictEqual(problems(validRaw(), { sshPrivateKey: false, databaseUrl: false }), [
      "sshPrivateKey: is required (pulumi config set --secret sshPrivateKey < key)",
      "databaseUrl: is required by an app with a database (pulumi config set --secret databaseUrl postgres://…)",
    ]);
  });

  it("asks for a version when the ref is a branch, since the health check compares it", () => {
    const raw = validRaw();
    raw.apps.orchestrator.ref = "main";
    assert.deepStrictEqual(problems(raw), [
      "apps.orchestrator.version: is required when ref is not a version tag: the health check compares version with it",
    ]);
  });

  describe("health checks (issue 10: several paths, each with its own fields)", () => {
    /** The staging runbook's three checks, the version on /api/health. */
    const RUNBOOK_CHECKS = [
      { path: "/api/health", expect: { status: "healthy" }, versionField: "version" },
      { path: "/api/db-check", expect: { database: "connected" } },
      { path: "/api/cache-check", expect: { cache: "connected" } },
    ];
    const withHealth = (health: Record<string, unknown>, edit: (raw: Record<string, any>) => void = () => {}) => {
      const raw = validRaw();
      raw.apps.orchestrator.health = health;
      edit(raw);
      return raw;
    };
    const healthOf = (raw: Record<string, any>) => parseDeployConfig("local", raw, secrets).apps[0].health!;

    it("checks: every path with its own expected fields, the version compared on one", () => {
      assert.deepStrictEqual(healthOf(withHealth({ checks: RUNBOOK_CHECKS, timeoutSeconds: 30 })), {
        checks: RUNBOOK_CHECKS,
        timeoutSeconds: 30,
      });
      // A check with no fields needs only a 200; no versionField anywhere: the version is not compared.
      assert.deepStrictEqual(healthOf(withHealth({ checks: [{ path: "/ready" }] })), {
        checks: [{ path: "/ready", expect: {} }],
        timeoutSeconds: 60,
      });
    });

    it("the shorthand (path, expect, versionField, extraPaths) is one first check and 200-only ones", () => {
      const h = healthOf(
        withHealth({ path: "/api/health", expect: { status: "healthy" }, extraPaths: ["/api/db-check", "/api/cache-check"] }),
      );
      assert.deepStrictEqual(h, {
        checks: [
          { path: "/api/health", expect: { status: "healthy" }, versionField: "version" },
          { path: "/api/db-check", expect: {} },
          { path: "/api/cache-check", expect: {} },
        ],
        timeoutSeconds: 60,
      });
      assert.deepStrictEqual(healthOf(withHealth({})).checks, [{ path: "/health", expect: { status: "ok" }, versionField: "version" }]);
    });

    it("refuses checks mixed with the shorthand", () => {
      assert.deepStrictEqual(problems(withHealth({ path: "/api/health", extraPaths: ["/ready"], checks: RUNBOOK_CHECKS })), [
        "apps.orchestrator.health.checks: cannot be combined with path, extraPaths (the shorthand for one check): give every path, its expect and versionField, in checks",
      ]);
    });

    it("refuses a second versionField, an unknown key, a bad path or field in a check, each at its path", () => {
      const raw = withHealth({
        checks: [
          { path: "/api/health", expect: { status: "healthy" }, versionField: "version" },
          { path: "/api/db-check", expect: { database: { state: "connected" } }, versionField: "release" },
          { path: "api/cache-check", expected: { cache: "connected" } },
          { path: "/api/health" },
          null,
        ],
      });
      assert.deepStrictEqual(problems(raw), [
        "apps.orchestrator.health.checks[1].expect.database: must be a string",
        'apps.orchestrator.health.checks[2].expected: unknown key (did you mean "expect"?)',
        'apps.orchestrator.health.checks[2].path: must start with "/"',
        "apps.orchestrator.health.checks[4]: must be an object",
        "apps.orchestrator.health.checks[1].versionField: the version is compared on one path only, and checks[0] does",
        "apps.orchestrator.health.checks[3].path: /api/health is already checked by checks[0]",
      ]);
      assert.deepStrictEqual(problems(withHealth({ checks: [] })), ["apps.orchestrator.health.checks: must name at least one path"]);
      assert.deepStrictEqual(problems(withHealth({ checks: { path: "/api/health" } })), [
        "apps.orchestrator.health.checks: must be a list of { path, expect, versionField }",
      ]);
    });

    it("asks for a version when a check compares it and the ref is a branch; not when none does", () => {
      const branch = (raw: Record<string, any>) => (raw.apps.orchestrator.ref = "main");
      assert.deepStrictEqual(problems(withHealth({ checks: RUNBOOK_CHECKS }, branch)), [
        "apps.orchestrator.version: is required when ref is not a version tag: the health check compares version with it",
      ]);
      assert.deepStrictEqual(problems(withHealth({ checks: RUNBOOK_CHECKS.slice(1) }, branch)), []);
    });
  });

  it("rejects app names and env keys a shell or file system would misread", () => {
    const raw = validRaw();
    raw.apps["../etc"] = { ...raw.apps.sevastopol };
    raw.apps.orchestrator.env = { "BAD KEY": "x" };
    const p = problems(raw);
    assert.ok(p.includes("apps.../etc: app names are lower-case letters, digits and '-', starting with a letter"), p.join("\n"));
    assert.ok(
      p.some((x) => x.startsWith("apps.orchestrator.env.BAD KEY: is not a valid name")),
      p.join("\n"),
    );
  });

  it("keeps backups on in production when an app migrates", () => {
    const raw = validRaw();
    raw.backup = { enabled: false };
    assert.deepStrictEqual(problems(raw, secrets, "production"), [
      "backup.enabled: must be true in production: every migration is preceded by a backup",
    ]);
    assert.deepStrictEqual(problems(raw, secrets, "local"), []);
  });

  it("refuses unknown keys at every level, with the close key a typo meant (issue 9)", () => {
    const raw = validRaw();
    raw.apps.orchestrator.migrat = raw.apps.orchestrator.migrate;
    delete raw.apps.orchestrator.migrate;
    raw.smok = [{ name: "x", path: "/" }];
    raw.server.rot = "/srv/other";
    raw.apps.orchestrator.health.timeout = 5;
    raw.apps.orchestrator.ports.blu = 9001;
    raw.apps.sevastopol.colour = "blue";
    raw.nginx.reload = "nginx -s reload";
    raw.nginx.site.api = "orchestrator";
    raw.backup = { kep: 3 };
    raw.smoke = [{ name: "x", path: "/", expectedStatus: 204, expectEvery: { array: "a", field: "f", value: "v", vaule: "w" } }];
    raw.deployWindow = { days: ["mon"], start: "09:00", end: "17:00", timezone: "UTC", tz: "UTC" };
    assert.deepStrictEqual(problems(raw), [
      'smok: unknown key (did you mean "smoke"?)',
      'server.rot: unknown key (did you mean "root"?)',
      'apps.orchestrator.migrat: unknown key (did you mean "migrate"?)',
      'apps.orchestrator.ports.blu: unknown key (did you mean "blue"?)',
      'apps.orchestrator.health.timeout: unknown key (did you mean "timeoutSeconds"?)',
      "apps.sevastopol.colour: unknown key (known keys: repo, ref, version, kind, manager, install, build, migrate, migrateCheck, migrationFiles, start, ports, output, health, env, usesDatabase, workers, roles)",
      'nginx.reload: unknown key (did you mean "reloadCommand"?)',
      'nginx.site.api: unknown key (did you mean "apiApp"?)',
      'backup.kep: unknown key (did you mean "keep"?)',
      'smoke[0].expectedStatus: unknown key (did you mean "expectStatus"?)',
      'smoke[0].expectEvery.vaule: unknown key (did you mean "value"?)',
      "deployWindow.tz: unknown key (known keys: days, start, end, timezone)",
    ]);
  });

  it("accepts the secrets' names at the top level and leaves free maps (env, health.expect) open", () => {
    const raw = validRaw();
    Object.assign(raw, { sshPrivateKey: "x", databaseUrl: "x", jwtSecret: "x", notifyWebhookUrl: "x" });
    raw.apps.orchestrator.env = { ANY_NAME: "1" };
    raw.apps.orchestrator.health.expect = { anything: "ok" };
    raw.server.env = { PM2_HOME: "/srv/pm2" };
    assert.deepStrictEqual(problems(raw), []);
  });

  it("reads this project's keys from the whole config map, so a top-level typo reaches the check", () => {
    const all = {
      "nostromo-deploy:server": JSON.stringify(validRaw().server),
      "nostromo-deploy:releasesToKeep": "7",
      "nostromo-deploy:smok": '[{"name":"x","path":"/"}]',
      "nostromo-deploy:nginx": JSON.stringify({ reloadCommand: "sudo nginx -s reload" }),
      "nostromo-deploy:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----",
      "nostromo-deploy:jwtSecret": "s3cret",
      "nostromo-deploy:smokeSecrets": '{"smokePassword":"s3cret-smoke"}',
      "nostromo-deploy:notes": "not json",
      "aws:region": "us-east-1",
    };
    const raw = projectConfig("nostromo-deploy", all);
    assert.deepStrictEqual(raw, {
      server: validRaw().server,
      releasesToKeep: 7,
      smok: [{ name: "x", path: "/" }],
      nginx: { reloadCommand: "sudo nginx -s reload" },
      notes: "not json",
    });
    assert.deepStrictEqual(problems({ ...validRaw(), ...raw }), [
      'smok: unknown key (did you mean "smoke"?)',
      "notes: unknown key (known keys: server, apps, nginx, backup, smoke, releasesToKeep, deployWindow, bake, hosts, loadBalancer, rolling, sshPrivateKey, databaseUrl, jwtSecret, notifyWebhookUrl, smokeSecrets, appSecrets)",
    ]);
  });

  describe("smoke secrets (issue 9)", () => {
    const withSmoke = (steps: unknown[]) => ({ ...validRaw(), smoke: steps });
    const login = (body: unknown, headers?: Record<string, string>) =>
      withSmoke([{ name: "login", method: "POST", path: "/api/login", body, ...(headers ? { headers } : {}) }]);
    const named = (...names: string[]) => ({ ...secrets, smokeSecrets: { names } });

    it("fills nothing in the config: placeholders stay as written, and only the names the steps use are sent", () => {
      const raw = login({ username: "smoke", password: "${secret:smokePassword}" }, { "X-Api-Key": "${secret:apiKey}" });
      const cfg = parseDeployConfig("production", raw, named("apiKey", "smokePassword", "unused"));
      assert.deepStrictEqual(cfg.smoke[0].body, { username: "smoke", password: "${secret:smokePassword}" });
      assert.deepStrictEqual(cfg.smoke[0].headers, { "X-Api-Key": "${secret:apiKey}" });
      assert.deepStrictEqual(smokeSecretRefs(cfg.smoke), ["apiKey", "smokePassword"]);
      const json = JSON.stringify({ smokePassword: "pw-1", apiKey: "key-1", unused: "never-sent" });
      assert.strictEqual(smokeSecretsLine(smokeSecretRefs(cfg.smoke), json), '{"apiKey":"key-1","smokePassword":"pw-1"}\n');
    });

    it("refuses a step that names a secret smokeSecrets does not hold, naming the step path and the name", () => {
      const raw = login({ username: "smoke", password: "${secret:smokePassword}" });
      const missing = `smoke[0].body.password: names the secret "smokePassword", which smokeSecrets does not hold (pulumi config set --secret --path 'smokeSecrets.smokePassword' …)`;
      assert.deepStrictEqual(problems(raw, named()), [missing]);
      assert.deepStrictEqual(problems(raw, named("smokePasswrd")), [missing]);
      assert.deepStrictEqual(problems(raw, named("smokePassword")), []);
      const nested = withSmoke([
        { name: "a", path: "/" },
        { name: "b", path: "/x", body: { auth: { users: [{ pin: "${secret:pin}" }] } }, headers: { "X-Pin": "${secret:pin2}" } },
      ]);
      assert.deepStrictEqual(
        problems(nested, named("pin")).map((p) => p.split(":")[0]),
        ["smoke[1].headers.X-Pin"],
      );
      assert.deepStrictEqual(
        problems(nested, named()).map((p) => p.split(":")[0]),
        ["smoke[1].body.auth.users[0].pin", "smoke[1].headers.X-Pin"],
      );
    });

    it("refuses a credential in clear: body keys password/token/secret, credential headers (any stack)", () => {
      const raw = login(
        { username: "smoke", password: "smoke-password", nested: { access_token: "t0k" }, clientSecret: 1234 },
        {
          Authorization: "Bearer abc",
          "X-Request-Id": "42",
        },
      );
      const why = `looks like a credential, in clear in the stack's config: write "\${secret:NAME}" and set it with pulumi config set --secret --path 'smokeSecrets.NAME' …`;
      for (const stack of ["production", "staging", "local"]) {
        assert.deepStrictEqual(problems(raw, secrets, stack), [
          `smoke[0].body.password: ${why}`,
          `smoke[0].body.nested.access_token: ${why}`,
          `smoke[0].body.clientSecret: ${why}`,
          `smoke[0].headers.Authorization: ${why}`,
        ]);
      }
      const ok = login({ username: "smoke", password: "${secret:pw}" }, { Authorization: "Bearer ${secret:token}" });
      assert.deepStrictEqual(problems(ok, named("pw", "token")), []);
    });

    it("refuses a malformed placeholder, one in a path, and a smokeSecrets that is not an object of text", () => {
      const raw = withSmoke([{ name: "x", path: "/u/${secret:pw}", body: { note: "${secret:bad-name}", other: "${secret:pw" } }]);
      assert.deepStrictEqual(problems(raw, named("pw")), [
        "smoke[0].body.note: \"${secret:bad-name}\" is not a secret placeholder: write ${secret:NAME}, NAME of letters, digits, '_'",
        "smoke[0].body.other: \"${secret:pw\" is not a secret placeholder: write ${secret:NAME}, NAME of letters, digits, '_'",
        "smoke[0].path: secrets are filled in only in body and headers (a path is logged)",
      ]);
      assert.deepStrictEqual(smokeSecretNames(undefined), { names: [] });
      assert.deepStrictEqual(smokeSecretNames('{"b":"1","a":"2"}'), { names: ["a", "b"] });
      for (const bad of ["not json", "[]", '"text"', '{"pw":1}', '{"bad-name":"x"}']) {
        const got = smokeSecretNames(bad)!;
        assert.deepStrictEqual(got.names, [], bad);
        assert.match(got.problem!, /^must be an object of name → text/, bad);
        assert.ok(!/"x"|: 1/.test(got.problem!), "a value is never in the message");
        assert.match(problems(validRaw(), { ...secrets, smokeSecrets: got })[0], /^smokeSecrets: must be an object of name → text/);
      }
    });
  });

  it("normalises server.root and refuses a root that is / in disguise or climbs with .. (issue 9)", () => {
    const rootProblems = (root: string) => {
      const raw = validRaw();
      raw.server.root = root;
      return problems(raw);
    };
    assert.deepStrictEqual(rootProblems("/."), ['server.root: must not be / ("/." is / once normalised)']);
    assert.deepStrictEqual(rootProblems("//"), ['server.root: must not be / ("//" is / once normalised)']);
    assert.deepStrictEqual(rootProblems("/"), ["server.root: must not be /"]);
    assert.deepStrictEqual(rootProblems("/opt/nostromo/../.."), ["server.root: must not contain '..' segments"]);
    assert.deepStrictEqual(rootProblems("/opt/../srv/nostromo"), ["server.root: must not contain '..' segments"]);
    for (const [given, normal] of [
      ["/srv/nostromo/", "/srv/nostromo"],
      ["/srv//nostromo/./", "/srv/nostromo"],
      ["/srv/nostromo", "/srv/nostromo"],
    ]) {
      const raw = validRaw();
      raw.server.root = given;
      const cfg = parseDeployConfig("local", raw, secrets);
      assert.strictEqual(cfg.server.root, normal, given);
      assert.strictEqual(cfg.nginx.sitesDir, `${normal}/nginx`, given);
    }
  });

  it("refuses an nginx command with a line break or a # comment, since the scripts run it mid-line (issue 9)", () => {
    const raw = validRaw();
    raw.nginx.reloadCommand = "sudo nginx -s reload # graceful";
    raw.nginx.testCommand = "nginx -t\nnginx -T";
    const why = "must be one line without a # comment (it is run inside the deploy's scripts)";
    assert.deepStrictEqual(problems(raw), [
      `nginx.reloadCommand: ${why}; found a # comment`,
      `nginx.testCommand: ${why}; found a line break`,
    ]);
    raw.nginx.reloadCommand = "#nginx -s reload";
    raw.nginx.testCommand = "nginx -t\r";
    assert.deepStrictEqual(problems(raw), [
      `nginx.reloadCommand: ${why}; found a # comment`,
      `nginx.testCommand: ${why}; found a line break`,
    ]);
  });

  it("keeps a # that is not a comment (inside a word or quotes), and app commands the scripts run on their own line or through bash -c", () => {
    const raw = validRaw();
    raw.nginx.reloadCommand = "/usr/local/bin/reload-nginx --tag=a#b 'x # y' \"#z\" \\#w";
    // install/build are lines of their own in the release script; start and migrate go through
    // `bash -c '…'` (test/e2e/systemd.test.ts starts an app with a backslash-newline command).
    raw.apps.orchestrator.start = "node dist/server.js \\\n  --name=orch # the API";
    raw.apps.orchestrator.migrate = "npm run migrate # production\nnpm run seed";
    raw.apps.sevastopol.build = "npm run build # the site";
    assert.deepStrictEqual(problems(raw), []);
  });

  it("Pulumi.yaml declares only keys the deploy reads, and its defaults parse as absent keys do", () => {
    const project = yaml.load(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8")) as {
      config: Record<string, { type: string; default?: unknown; secret?: boolean }>;
    };
    const known: readonly string[] = [...KNOWN_KEYS.top, ...KNOWN_KEYS.secrets];
    for (const key of Object.keys(project.config))
      assert.ok(known.includes(key), `Pulumi.yaml declares ${key}, which lib/config does not know`);
    for (const key of Object.keys(project.config)) {
      if ((KNOWN_KEYS.secrets as readonly string[]).includes(key)) assert.strictEqual(project.config[key].secret, true, key);
    }
    const defaults = Object.fromEntries(
      Object.entries(project.config)
        .filter(([, d]) => "default" in d)
        .map(([k, d]) => [k, d.default]),
    );
    const raw = validRaw();
    const withDefaults = parseDeployConfig("local", { ...defaults, ...raw }, secrets);
    assert.deepStrictEqual(withDefaults, parseDeployConfig("local", raw, secrets));
  });

  for (const stack of ["production", "staging"]) {
    it(`accepts the shipped Pulumi.${stack}.yaml`, () => {
      const text = fs.readFileSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), "utf8");
      const raw = parseStackYaml(text);
      // The smoke login's password is a placeholder for a secret: refused until that secret is set.
      assert.deepStrictEqual(problems(raw, { ...secrets, smokeSecrets: { names: [] } }, stack), [
        `smoke[0].body.password: names the secret "smokePassword", which smokeSecrets does not hold (pulumi config set --secret --path 'smokeSecrets.smokePassword' …)`,
      ]);
      const cfg = parseDeployConfig(stack, raw, { ...secrets, smokeSecrets: { names: ["smokePassword"] } });
      assert.strictEqual((cfg.smoke[0].body as Record<string, string>).password, "${secret:smokePassword}");
      assert.deepStrictEqual(
        cfg.apps.map((a) => a.name),
        ["orchestrator", "sevastopol"],
      );
      assert.strictEqual(cfg.server.root, "/opt/nostromo");
    });
  }
});

/** The stack file's `nostromo-deploy:` keys, as pulumi.Config would return them. */
function parseStackYaml(text: string): Record<string, unknown> {
  const doc = (yaml.load(text) as { config: Record<string, unknown> }).config;
  return Object.fromEntries(Object.entries(doc).map(([k, v]) => [k.replace(/^nostromo-deploy:/, ""), v]));
}
