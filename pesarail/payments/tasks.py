"""Background tasks (``django.tasks`` on the django-tasks-db backend) and their schedule
(django-crontask). ``pesarail worker`` runs both the worker and the scheduler."""

from __future__ import annotations

from crontask import cron
from django.tasks import task

from pesarail.payments import reconcile


@cron("* * * * *", sentry_monitor_config=None)
@task
def reconcile_pending() -> dict[str, int]:
    """Every minute: query attempts without a result, expire what is past expiry."""
    return reconcile.reconcile_pending()


@task
def reconcile_attempt(attempt_id: str) -> str:
    """Resolve one attempt now (query, or expire when it is past expiry)."""
    return reconcile.reconcile_one(attempt_id)
