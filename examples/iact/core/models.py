from django.db import models


class TaskRecord(models.Model):
    """One row per completed record_task(task_id): the unique key makes a redelivered task a no-op."""

    task_id = models.CharField(max_length=100, unique=True)
    completed_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.task_id
