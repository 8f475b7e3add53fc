"""Celery app: celery -A iact worker. Its settings are the CELERY_* names in iact/settings.py."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iact.settings")

app = Celery("iact")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
