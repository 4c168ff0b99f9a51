"""Payment intents as the API shows them, built directly from model rows.

:func:`payment_intent` is what ``PaymentIntentSerializer(intent).data`` is and
:func:`intent_detail` what ``PaymentIntentDetailSerializer(intent).data`` is: the same
keys in the same order with the same values, so the JSON is the same bytes. They exist
because a ``ModelSerializer`` rebuilds its fields for every instance it renders (and the
detail serializer builds two more serializers per call), which was a third of the cost
of a status poll.

The serializers in :mod:`pesarail.payments.serializers` stay the definition of the
shapes (the OpenAPI schema is generated from them); ``tests/payments/test_render.py``
holds the two together, so a field added there must be added here too.

Value formats follow the serializer fields: datetimes through DRF's ``DateTimeField``
(the project's ``DATETIME_FORMAT`` and time zone), strings through ``str``, integers
through ``int``, ``None`` stays ``None`` whatever the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from operator import attrgetter
from typing import Any

from rest_framework import serializers

from pesarail.common.money import Money
from pesarail.common.phone import mask_phone
from pesarail.payments.models import (
    AttemptState,
    IntentStatus,
    PaymentAttempt,
    PaymentEvent,
    PaymentIntent,
)

#: One unbound field: ``to_representation`` reads the format and the time zone from the
#: settings on every call, exactly as the serializers' own fields do.
_DATETIME = serializers.DateTimeField()

_OPEN_INTENT = (IntentStatus.PENDING, IntentStatus.PROCESSING)
_by_number = attrgetter("number")
_by_id = attrgetter("id")


def _datetime(value: Any) -> Any:
    return None if value is None else _DATETIME.to_representation(value)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _dict(value: Mapping[Any, Any] | None) -> dict[str, Any] | None:
    """DRF's ``DictField``: keys as strings, values as they are."""
    return None if value is None else {str(key): item for key, item in value.items()}


def attempts_of(intent: PaymentIntent) -> list[PaymentAttempt]:
    """The intent's attempts by number: from ``prefetch_related("attempts")`` when the
    intent was loaded with it, else one query."""
    cache = getattr(intent, "_prefetched_objects_cache", {})
    if "attempts" in cache:
        return sorted(cache["attempts"], key=_by_number)
    return list(PaymentAttempt.objects.filter(intent_id=intent.pk).order_by("number"))


def events_of(intent: PaymentIntent) -> list[PaymentEvent]:
    """The intent's timeline, oldest first (one query)."""
    return list(PaymentEvent.objects.filter(intent_id=intent.pk).order_by("id"))


def next_action(intent: PaymentIntent, attempts: list[PaymentAttempt]) -> dict[str, Any] | None:
    """The ``next_action`` of an intent (the serializer delegates here); ``attempts``
    sorted by number."""
    if intent.status not in _OPEN_INTENT:
        return None
    open_attempts = [a for a in attempts if a.is_open]
    if not open_attempts:
        return None
    attempt = open_attempts[-1]
    if attempt.state == AttemptState.PENDING:
        message = str((attempt.next_action or {}).get("message")
                      or "Check your phone and enter your M-Pesa PIN.")
    elif attempt.state == AttemptState.UNKNOWN:
        message = ("If a payment prompt appears on your phone, enter your M-Pesa PIN. "
                   "We are confirming the request with M-Pesa.")
    else:
        message = "Sending the payment prompt to your phone…"
    return {"type": "phone_prompt", "phone": mask_phone(intent.phone), "message": message,
            "expires_at": _DATETIME.to_representation(intent.expires_at)}


def failure(intent: PaymentIntent) -> dict[str, Any] | None:
    """The ``failure`` of an intent (the serializer delegates here)."""
    if not intent.failure_code and not intent.failure_message:
        return None
    return {"code": intent.failure_code, "message": intent.failure_message,
            "retryable": intent.failure_retryable}


def provider_references(intent: PaymentIntent, attempts: list[PaymentAttempt]
                        ) -> dict[str, Any]:
    """The ``provider_references`` of an intent (the serializer delegates here);
    ``attempts`` by number."""
    known = [a for a in attempts if a.checkout_request_id]
    attempt = known[-1] if known else None
    return {
        "checkout_request_id": attempt.checkout_request_id if attempt else None,
        "merchant_request_id": (attempt.merchant_request_id or None) if attempt else None,
        "receipt": intent.provider_receipt or None,
    }


def _intent(intent: PaymentIntent, attempts: list[PaymentAttempt]) -> dict[str, Any]:
    return {
        "id": _str(intent.id),
        "object": "payment_intent",
        "kind": _str(intent.kind),
        "status": _str(intent.status),
        "amount": Money(intent.amount_minor, intent.currency).to_decimal_string(),
        "amount_minor": _int(intent.amount_minor),
        "currency": _str(intent.currency),
        "provider": _str(intent.provider),
        "provider_account": _str(intent.provider_account_id),
        "phone_number": _str(intent.phone),
        "description": _str(intent.description),
        "reference": _str(intent.reference),
        "metadata": _dict(intent.metadata),
        "customer": _str(intent.customer_id),
        "wallet": _str(intent.wallet_id),
        "next_action": next_action(intent, attempts),
        "provider_references": provider_references(intent, attempts),
        "failure": failure(intent),
        "needs_review": _bool(intent.needs_review),
        "review_reason": _str(intent.review_reason),
        "late_success": _bool(intent.late_success),
        "attempt_count": _int(intent.attempt_count),
        "expires_at": _datetime(intent.expires_at),
        "succeeded_at": _datetime(intent.succeeded_at),
        "created_at": _datetime(intent.created_at),
        "updated_at": _datetime(intent.updated_at),
    }


def payment_intent(intent: PaymentIntent, attempts: Iterable[PaymentAttempt] | None = None
                   ) -> dict[str, Any]:
    """``PaymentIntentSerializer(intent).data`` (one row of the list). ``attempts``:
    the intent's attempts in any order; default :func:`attempts_of`."""
    ordered = attempts_of(intent) if attempts is None else sorted(attempts, key=_by_number)
    return _intent(intent, ordered)


def attempt_data(attempt: PaymentAttempt) -> dict[str, Any]:
    """``PaymentAttemptSerializer(attempt).data``."""
    return {
        "id": _str(attempt.id),
        "number": _int(attempt.number),
        "state": _str(attempt.state),
        "push_outcome": _str(attempt.push_outcome),
        "checkout_request_id": _str(attempt.checkout_request_id),
        "merchant_request_id": _str(attempt.merchant_request_id),
        "result_code": _str(attempt.result_code),
        "result_message": _str(attempt.result_message),
        "receipt": _str(attempt.receipt),
        "requested_at": _datetime(attempt.requested_at),
        "resolved_at": _datetime(attempt.resolved_at),
        "last_queried_at": _datetime(attempt.last_queried_at),
        "query_count": _int(attempt.query_count),
        "created_at": _datetime(attempt.created_at),
    }


def event_data(event: PaymentEvent) -> dict[str, Any]:
    """``PaymentEventSerializer(event).data``."""
    return {
        "id": _int(event.id),
        "kind": _str(event.kind),
        "from_status": _str(event.from_status),
        "to_status": _str(event.to_status),
        "message": _str(event.message),
        "attempt": _str(event.attempt_id),
        "data": _dict(event.data),
        "created_at": _datetime(event.created_at),
    }


def intent_detail(intent: PaymentIntent, attempts: Iterable[PaymentAttempt],
                  events: Iterable[PaymentEvent]) -> dict[str, Any]:
    """``PaymentIntentDetailSerializer(intent).data``: the intent with its attempts (by
    number) and its events (by id). Both are passed in, so nothing is queried here."""
    ordered = sorted(attempts, key=_by_number)
    body = _intent(intent, ordered)
    body["attempts"] = [attempt_data(a) for a in ordered]
    body["events"] = [event_data(e) for e in sorted(events, key=_by_id)]
    return body
