/** A config with a python app (issue 10: Django, gunicorn, a Celery worker under systemd) for the exact-text tests. */
import { AppConfig, DeployConfig } from "../../../lib/config";
import { parse } from "./fixture";

export function pythonConfig(): { cfg: DeployConfig; app: AppConfig } {
  const cfg = parse((raw) => {
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
      workers: { "celery-worker": { command: "celery -A iact worker --loglevel=INFO", stopTimeoutSeconds: 30 } },
    };
  });
  return { cfg, app: cfg.apps.find((a) => a.name === "iact")! };
}
