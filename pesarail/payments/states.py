"""The payment state table and the one function that changes an intent's status.

A status change is a conditional ``UPDATE ... WHERE id = %s AND status = <old>`` plus an
event row, inside the caller's transaction. When the UPDATE touches no row somebody
else changed the status first: the caller re-reads and decides again.

Terminal statuses never move, with one documented exception: a *late success*
(``expired``/``cancelled``/``failed`` -> ``succeeded``), because the provider has
already moved the customer's money and losing it is worse than reopening an intent.
Such a change is always flagged for review (see docs/payments.md, "Late success").
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.utils import timezone

from pesarail.payments.models import IntentStatus, PaymentAttempt, PaymentEvent, PaymentIntent

S = IntentStatus

#: from status -> the statuses it may move to.
ALLOWED: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.PROCESSING, S.FAILED, S.CANCELLED, S.EXPIRED}),
    S.PROCESSING: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.EXPIRED}),
    S.FAILED: frozenset({S.PROCESSING, S.SUCCEEDED}),  # retry; late success
    S.CANCELLED: frozenset({S.PROCESSING, S.SUCCEEDED}),  # retry; late success
    S.EXPIRED: frozenset({S.SUCCEEDED}),  # late success only
    S.SUCCEEDED: frozenset(),
}

#: Transitions only a late success may take (always flagged for review).
LATE_SUCCESS_FROM: frozenset[str] = frozenset({S.EXPIRED, S.CANCELLED, S.FAILED})

#: Statuses from which a new attempt may be made.
RETRYABLE_FROM: frozenset[str] = frozenset({S.FAILED, S.CANCELLED})

TERMINAL: frozenset[str] = frozenset({S.SUCCEEDED, S.EXPIRED})


class InvalidTransition(Exception):
    """A programming error: the code asked for a change the table forbids."""


def can_transition(from_status: str, to_status: str) -> bool:
    return to_status in ALLOWED.get(from_status, frozenset())


def transition(
    intent: PaymentIntent,
    to_status: str,
    *,
    kind: str,
    message: str = "",
    attempt: PaymentAttempt | None = None,
    data: dict[str, Any] | None = None,
    late: bool = False,
    **fields: Any,
) -> bool:
    """Move ``intent`` from its current (in-memory) status to ``to_status``.

    Returns False, changing nothing, when the row's status is no longer the one
    ``intent`` holds (a concurrent writer won). On success the instance is updated and
    one :class:`PaymentEvent` is appended. Must run inside a transaction.
    """
    if not connection.in_atomic_block:
        raise InvalidTransition("transition() must run inside transaction.atomic()")
    from_status = intent.status
    if not can_transition(from_status, to_status):
        raise InvalidTransition(f"{from_status} -> {to_status} is not allowed")
    if from_status in LATE_SUCCESS_FROM and to_status == S.SUCCEEDED and not late:
        raise InvalidTransition(f"{from_status} -> succeeded is only allowed as a late success")
    now = timezone.now()
    changed = PaymentIntent.objects.filter(pk=intent.pk, status=from_status).update(
        status=to_status, updated_at=now, **fields
    )
    if changed != 1:
        return False
    intent.status = to_status
    intent.updated_at = now
    for name, value in fields.items():
        setattr(intent, name, value)
    append_event(intent, kind, from_status=from_status, to_status=to_status, message=message,
                 attempt=attempt, data={**(data or {}), **({"late": True} if late else {})})
    return True


def append_event(
    intent: PaymentIntent,
    kind: str,
    *,
    message: str = "",
    attempt: PaymentAttempt | None = None,
    data: dict[str, Any] | None = None,
    from_status: str = "",
    to_status: str = "",
) -> PaymentEvent:
    return PaymentEvent.objects.create(
        intent=intent, attempt=attempt, kind=kind, from_status=from_status,
        to_status=to_status, message=message[:500], data=data or {},
    )
