"""WSGI entry point: gunicorn iact.wsgi --bind 127.0.0.1:$PORT"""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iact.settings")

application = get_wsgi_application()
