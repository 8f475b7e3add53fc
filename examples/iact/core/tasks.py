import time

from celery import shared_task
from celery.utils.log import get_task_logger

from .models import TaskRecord

MAX_SECONDS = 30.0
logger = get_task_logger(__name__)


@shared_task
def record_task(task_id: str, seconds: float = 0.0) -> bool:
    """Records that task `task_id` ran, after working `seconds` (at most 30; lets tests stop a
    worker mid-task). Idempotent: a redelivered message adds no second row."""
    if seconds > 0:
        # In the worker's log: a test stopping the worker mid-task waits for this line.
        logger.info("started %s", task_id)
        time.sleep(min(float(seconds), MAX_SECONDS))
    _, created = TaskRecord.objects.get_or_create(task_id=task_id)
    return created
