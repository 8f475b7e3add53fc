from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .smoke_user import sync_smoke_user_after_migrate

        # Every `migrate` (even one with nothing to apply) brings the smoke account in line
        # with SMOKE_PASSWORD, so a rotated password takes effect at the next deploy.
        post_migrate.connect(sync_smoke_user_after_migrate, sender=self)
