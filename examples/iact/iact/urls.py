from django.urls import path

from core import views

urlpatterns = [
    path("", views.index, name="index"),
    path("health", views.health),  # the same answer at the path the deploy's nginx routes by default
    path("api/health", views.health, name="health"),
    path("api/db-check", views.db_check, name="db-check"),
    path("api/cache-check", views.cache_check, name="cache-check"),
    path("api/auth/login", views.login, name="login"),
    path("api/users/me", views.me, name="me"),
    path("api/tasks", views.enqueue_task, name="tasks"),
    path("api/tasks/count", views.task_count, name="task-count"),
    path("api/tasks/<str:task_id>", views.task_status, name="task-status"),
]
