"""The account smoke tests log in with: SMOKE_USERNAME (default "smoke") / SMOKE_PASSWORD.

Without SMOKE_PASSWORD nothing is created or changed (there is no default password).
"""
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS


def sync_smoke_user(using: str = DEFAULT_DB_ALIAS) -> str:
    """Creates or updates the smoke account; returns what it did."""
    from django.contrib.auth import get_user_model

    password = settings.SMOKE_PASSWORD
    if not password:
        return "SMOKE_PASSWORD not set: smoke account left as it is"
    User = get_user_model()
    user, created = User.objects.db_manager(using).get_or_create(username=settings.SMOKE_USERNAME)
    if created or not user.check_password(password) or not user.is_active:
        user.set_password(password)
        user.is_active = True
        user.save(using=using)
        return f"smoke account {user.username!r} {'created' if created else 'updated'}"
    return f"smoke account {user.username!r} up to date"


def sync_smoke_user_after_migrate(sender, using=DEFAULT_DB_ALIAS, verbosity=1, plan=None, **kwargs) -> None:
    message = sync_smoke_user(using)
    if verbosity >= 1:
        print(message)
