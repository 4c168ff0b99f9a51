"""Reconciliation: ask the provider about attempts that have not been resolved.

Run every minute by :func:`pesarail.payments.tasks.reconcile_pending`:

* an open attempt (``pending``/``unknown``) with no result ``PESARAIL_RECONCILE_AFTER_SECONDS``
  (default 30) after its push is queried (STK query); a final answer is applied, a
  "still processing" answer leaves it;
* an attempt whose intent is past ``expires_at`` gets one final query; still no
  answer -> expired. If the provider cannot be asked, it is tried again every run for
  ``PESARAIL_EXPIRY_GRACE_SECONDS`` (default 300) and then expired anyway (a success
  reported later still follows the late-success policy);
* an attempt without a provider reference (the push timed out before the provider
  answered) cannot be queried: it waits for a callback until expiry, then expires.

Each run handles at most ``PESARAIL_RECONCILE_BATCH_SIZE`` attempts. Candidates are
claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL) and given a lease
(``reconcile_lease_until``) in that transaction; the lease is released when the attempt
is done (or runs out after ``LEASE`` if the worker died). So two workers never work on
the same attempt, whatever the thresholds; the queries run outside any transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from pesarail.common.logging import get_logger
from pesarail.payments import conf, gateway, services
from pesarail.payments.models import OPEN_ATTEMPT_STATES, PaymentAttempt
from pesarail.providers.base import ProviderError, ProviderUnavailable

log = get_logger("pesarail.payments.reconcile")

#: How long a claimed attempt stays reserved for one reconciler if it never finishes.
LEASE = timedelta(minutes=5)

# query_attempt() outcomes besides the ApplyOutcome values.
PENDING = "pending"
UNAVAILABLE = "unavailable"
REFUSED = "refused"
NOT_QUERYABLE = "not_queryable"


def query_attempt(attempt_id: str, *, stamp: bool = True) -> str:
    """Ask the provider about one attempt now and apply a final answer.

    Returns an :class:`~pesarail.payments.services.ApplyOutcome` value when a final
    answer was applied, else ``pending``, ``unavailable`` or ``refused`` (the provider
    does not know the reference)."""
    attempt = PaymentAttempt.objects.select_related("provider_account").get(pk=attempt_id)
    if not attempt.checkout_request_id:
        return NOT_QUERYABLE
    if stamp:
        PaymentAttempt.objects.filter(pk=attempt.pk).update(
            last_queried_at=timezone.now(), query_count=F("query_count") + 1)
    try:
        event = gateway.adapter_for(attempt.provider_account).fetch_status(
            attempt.checkout_request_id)
    except ProviderUnavailable as exc:
        log.info("payment_query_unavailable", attempt_id=attempt.pk, error=exc.message)
        return UNAVAILABLE
    except ProviderError as exc:
        log.warning("payment_query_refused", attempt_id=attempt.pk, error=exc.message)
        return REFUSED
    if event.pending:
        return PENDING
    return services.apply_result(attempt.pk, event, source="status_query").value


def _due(now: datetime) -> Any:
    cutoff = now - timedelta(seconds=conf.reconcile_after_seconds())
    not_recently_asked = Q(last_queried_at__isnull=True) | Q(last_queried_at__lte=cutoff)
    stale = Q(requested_at__lte=cutoff, checkout_request_id__isnull=False)
    expired = Q(intent__expires_at__lte=now)
    free = Q(reconcile_lease_until__isnull=True) | Q(reconcile_lease_until__lt=now)
    return (PaymentAttempt.objects
            .filter(state__in=OPEN_ATTEMPT_STATES)
            .filter(free & not_recently_asked & (stale | expired))
            .order_by(F("last_queried_at").asc(nulls_first=True), "requested_at", "id"))


def _claim(now: datetime, limit: int) -> list[str]:
    with transaction.atomic():
        ids = list(_due(now).select_for_update(skip_locked=True, of=("self",))
                   .values_list("pk", flat=True)[:limit])
        if ids:
            PaymentAttempt.objects.filter(pk__in=ids).update(
                last_queried_at=now, query_count=F("query_count") + 1,
                reconcile_lease_until=now + LEASE)
    return ids


def _release(attempt_id: str) -> None:
    PaymentAttempt.objects.filter(pk=attempt_id).update(reconcile_lease_until=None)


def reconcile_one(attempt_id: str) -> str:
    """The per-attempt task: take the lease (skip if another reconciler holds it), ask
    the provider / expire, release."""
    now = timezone.now()
    free = Q(reconcile_lease_until__isnull=True) | Q(reconcile_lease_until__lt=now)
    taken = PaymentAttempt.objects.filter(free, pk=attempt_id).update(
        reconcile_lease_until=now + LEASE, last_queried_at=now,
        query_count=F("query_count") + 1)
    if not taken:
        return "busy"
    try:
        return reconcile_attempt(attempt_id, now=now)
    finally:
        _release(attempt_id)


def reconcile_attempt(attempt_id: str, *, now: datetime | None = None) -> str:
    """Resolve one attempt if it can be: query it, or expire it when its intent is past
    expiry and the provider has nothing final to say. Returns what happened."""
    now = now or timezone.now()
    attempt = PaymentAttempt.objects.select_related("intent").get(pk=attempt_id)
    if not attempt.is_open:
        return "closed"
    expires_at = attempt.intent.expires_at
    past_expiry = expires_at <= now
    if not attempt.checkout_request_id:
        if past_expiry:
            services.expire_attempt(
                attempt.pk, "The payment expired: the provider never confirmed the prompt, "
                "so its outcome could not be checked. A payment reported later is still "
                "recorded.", data={"reason": "no_provider_reference"})
            return "expired"
        return NOT_QUERYABLE
    outcome = query_attempt(attempt.pk, stamp=False)
    if outcome not in (PENDING, UNAVAILABLE, REFUSED):
        return outcome
    if not past_expiry:
        return outcome
    if outcome == PENDING:
        services.expire_attempt(
            attempt.pk, "The payment expired: the customer did not answer the prompt in "
            "time (the provider still reported it as in progress at the final check).",
            data={"reason": "final_query_pending"})
        return "expired"
    if outcome == REFUSED:
        services.expire_attempt(
            attempt.pk, "The payment expired: the provider does not know this prompt.",
            data={"reason": "final_query_refused"})
        return "expired"
    if now >= expires_at + timedelta(seconds=conf.expiry_grace_seconds()):
        services.expire_attempt(
            attempt.pk, "The payment expired: the provider could not be asked for its "
            "outcome. A payment reported later is still recorded.",
            data={"reason": "final_query_unavailable"})
        return "expired"
    return outcome


def reconcile_pending(*, now: datetime | None = None, limit: int | None = None
                      ) -> dict[str, int]:
    """One reconciler run over at most ``limit`` due attempts. Returns counts by
    outcome (for logs and tests)."""
    now = now or timezone.now()
    ids = _claim(now, limit or conf.reconcile_batch_size())
    counts: dict[str, int] = {"checked": len(ids)}
    for attempt_id in ids:
        try:
            outcome = reconcile_attempt(attempt_id, now=now)
        except Exception:
            log.exception("payment_reconcile_failed", attempt_id=attempt_id)
            outcome = "error"
        finally:
            _release(attempt_id)
        counts[outcome] = counts.get(outcome, 0) + 1
    if ids:
        log.info("payment_reconcile_run", **counts)
    return counts
