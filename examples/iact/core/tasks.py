from celery import shared_task

from .models import TaskRecord


@shared_task
def record_task(task_id: str) -> bool:
    """Records that task `task_id` ran. Idempotent: a redelivered message adds no second row."""
    _, created = TaskRecord.objects.get_or_create(task_id=task_id)
    return created
