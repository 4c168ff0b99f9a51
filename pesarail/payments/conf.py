"""Payments settings, read when used (never at import). All are optional."""

from __future__ import annotations

from django.conf import settings


def reconcile_after_seconds() -> float:
    """An attempt with no result this long after its push is asked about (default 30)."""
    return float(getattr(settings, "PESARAIL_RECONCILE_AFTER_SECONDS", 30))


def reconcile_batch_size() -> int:
    """At most this many attempts are handled per reconciler run (default 100)."""
    return int(getattr(settings, "PESARAIL_RECONCILE_BATCH_SIZE", 100))


def expiry_grace_seconds() -> float:
    """When the provider cannot be asked at expiry, keep trying this long before the
    intent expires anyway (default 300)."""
    return float(getattr(settings, "PESARAIL_EXPIRY_GRACE_SECONDS", 300))
