from django.core.management.base import BaseCommand

from core.smoke_user import sync_smoke_user


class Command(BaseCommand):
    help = "Creates or updates the smoke-test account from SMOKE_USERNAME / SMOKE_PASSWORD (migrate does this too)."

    def handle(self, *args, **options) -> None:
        self.stdout.write(sync_smoke_user())
