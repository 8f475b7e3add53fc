"""The IACT API: health probes, token login, the current user, and a Celery task to count."""
import json
import uuid

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.core import signing
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .models import TaskRecord
from .tasks import MAX_SECONDS, record_task

TOKEN_SALT = "iact.auth.token"


def index(request: HttpRequest):
    return render(request, "core/index.html", {"version": settings.APP_VERSION})


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "healthy", "version": settings.APP_VERSION})


@require_GET
def db_check(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            ok = cursor.fetchone() == (1,)
    except Exception as exc:  # noqa: BLE001 - the probe reports any failure
        return JsonResponse({"database": "error", "error": exc.__class__.__name__}, status=503)
    return JsonResponse({"database": "connected" if ok else "error"}, status=200 if ok else 503)


@require_GET
def cache_check(request: HttpRequest) -> JsonResponse:
    key, value = f"cache-check:{uuid.uuid4().hex}", uuid.uuid4().hex
    try:
        cache.set(key, value, timeout=30)
        ok = cache.get(key) == value
        cache.delete(key)
    except Exception as exc:  # noqa: BLE001
        return JsonResponse({"cache": "error", "error": exc.__class__.__name__}, status=503)
    return JsonResponse({"cache": "connected" if ok else "error"}, status=200 if ok else 503)


def _json_body(request: HttpRequest) -> dict | None:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


@csrf_exempt  # token API: no cookies, so no CSRF
@require_POST
def login(request: HttpRequest) -> JsonResponse:
    body = _json_body(request)
    if body is None or not isinstance(body.get("username"), str) or not isinstance(body.get("password"), str):
        return JsonResponse({"error": "expected JSON {\"username\": ..., \"password\": ...}"}, status=400)
    user = authenticate(request, username=body["username"], password=body["password"])
    if user is None:
        return JsonResponse({"error": "invalid credentials"}, status=401)
    token = signing.dumps({"uid": user.pk}, salt=TOKEN_SALT, compress=True)
    return JsonResponse({"token": token, "expires_in": settings.AUTH_TOKEN_MAX_AGE})


def _bearer_user(request: HttpRequest):
    """The active user named by a valid `Authorization: Bearer <token>`, else None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        data = signing.loads(token.strip(), salt=TOKEN_SALT, max_age=settings.AUTH_TOKEN_MAX_AGE)
    except signing.BadSignature:  # also SignatureExpired
        return None
    return get_user_model().objects.filter(pk=data.get("uid"), is_active=True).first()


def _unauthorized() -> JsonResponse:
    response = JsonResponse({"error": "authentication required"}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="iact"'
    return response


@require_GET
def me(request: HttpRequest) -> JsonResponse:
    user = _bearer_user(request)
    if user is None:
        return _unauthorized()
    return JsonResponse({"username": user.get_username()})


@csrf_exempt
@require_POST
def enqueue_task(request: HttpRequest) -> JsonResponse:
    """POST /api/tasks {"id": "...", "seconds": 0}: queues record_task(id, seconds). Needs a token.

    `id` defaults to a new random one; `seconds` (at most 30) is how long the task works first.
    """
    if _bearer_user(request) is None:
        return _unauthorized()
    body = _json_body(request)
    if body is None:
        return JsonResponse({"error": "expected a JSON object"}, status=400)
    task_id = body.get("id") or uuid.uuid4().hex
    if not isinstance(task_id, str) or len(task_id) > 100:
        return JsonResponse({"error": "id must be a string of at most 100 characters"}, status=400)
    seconds = body.get("seconds", 0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_SECONDS:
        return JsonResponse({"error": f"seconds must be a number from 0 to {MAX_SECONDS:g}"}, status=400)
    record_task.delay(task_id, seconds)
    return JsonResponse({"id": task_id, "queued": True}, status=202)


@require_GET
def task_status(request: HttpRequest, task_id: str) -> JsonResponse:
    """How many times task `task_id` has been recorded: 0 (not yet) or 1."""
    count = TaskRecord.objects.filter(task_id=task_id).count()
    return JsonResponse({"id": task_id, "done": count > 0, "count": count})


@require_GET
def task_count(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"count": TaskRecord.objects.count()})
