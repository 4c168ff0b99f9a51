"""Callback intake: ``POST /hooks/<provider>/<token>/``.

The order is fixed (design.md section 4, rule 2):

1. **store** the raw request (headers redacted, body, source IP) in its own transaction;
2. **authenticate**: the URL token names the provider account (only its SHA-256 is
   stored); an optional per-account IP allow-list. Unknown token or source -> HTTP 403
   with Daraja's reject shape, the record kept as ``rejected``;
3. **parse** with the provider's adapter and **match** the attempt by its reference
   (Daraja ``CheckoutRequestID``) within that account. Malformed or unknown -> kept as
   ``rejected``, acknowledged (so the provider stops), nothing changes;
4. **dedupe** on ``(provider, CheckoutRequestID:ResultCode)``;
5. **confirm** with a status query when the account asks for it (default on for
   production accounts); a contradiction is flagged and the query's answer is used;
6. **apply** in one transaction (:func:`pesarail.payments.services.apply_result`).

Whatever happens to a known payment, the provider gets the acknowledgement it expects
(HTTP 200); a failure of ours is recorded on the row and left to the reconciler.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from pesarail.common.logging import get_logger, redact
from pesarail.payments import gateway, services
from pesarail.payments.models import (
    AttemptState,
    CallbackRecord,
    CallbackStatus,
    PaymentAttempt,
    PushOutcome,
)
from pesarail.payments.services import ApplyOutcome
from pesarail.providers.base import (
    MalformedCallback,
    PaymentProvider,
    ProviderError,
    ProviderEvent,
    ProviderUnavailable,
)
from pesarail.providers.models import ProviderAccount

log = get_logger("pesarail.payments.callbacks")

MAX_STORED_BODY = 64 * 1024
ADOPT_WINDOW = timedelta(days=1)
PUSH_ANSWER_WAIT = 3.0

#: Daraja's reject shape, also used before we know which adapter to ask.
REJECTED_BODY: dict[str, Any] = {"ResultCode": 1, "ResultDesc": "Rejected"}


@dataclass(frozen=True)
class Inbound:
    provider: str
    token: str
    method: str
    headers: Mapping[str, str]
    body: bytes
    source_ip: str | None
    attempt_hint: str | None = None  # the attempt id in the callback URL we gave


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    record_id: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()


def store_raw(inbound: Inbound) -> CallbackRecord:
    headers = {k: v for k, v in inbound.headers.items() if k.lower() != "cookie"}
    return CallbackRecord.objects.create(
        provider=inbound.provider[:32], token_hash=token_hash(inbound.token),
        method=inbound.method[:10], headers=redact(headers),
        body=inbound.body[:MAX_STORED_BODY], source_ip=inbound.source_ip,
    )


def _finish(record: CallbackRecord, status: str, reason_code: str = "", reason: str = "",
            **fields: Any) -> None:
    CallbackRecord.objects.filter(pk=record.pk).update(
        status=status, reason_code=reason_code[:40], reason=reason[:500],
        processed_at=timezone.now(), **{**_learned(record), **fields})


def _learned(record: CallbackRecord) -> dict[str, Any]:
    """What processing found out so far (written with the record's final update)."""
    learned: dict[str, Any] | None = getattr(record, "_learned", None)
    if learned is None:
        learned = {}
        setattr(record, "_learned", learned)  # noqa: B010 (not a model field)
    return learned


def handle(inbound: Inbound) -> Answer:
    """Store, authenticate, dedupe, confirm and apply one callback.

    Two commits on the common path: the raw record, then one transaction that applies
    the result *and* records on the row what was learned (account, reference, attempt,
    outcome). What is learned along the way is collected on the record (:func:`_learned`) and
    written with whichever final update the callback reaches."""
    record = store_raw(inbound)
    learned = _learned(record)
    try:
        return _process(record, inbound)
    except Exception:
        log.exception("callback_processing_failed", callback_id=record.pk)
        CallbackRecord.objects.filter(pk=record.pk).update(
            status=CallbackStatus.ERROR, error=traceback.format_exc()[-4000:],
            processed_at=timezone.now(), **learned)
        # Stored; the payment is resolved by the reconciler. Acknowledge so the provider
        # does not keep a payment hostage to our bug.
        return Answer(200, {"ResultCode": 0, "ResultDesc": "Accepted"}, record.pk)


def _process(record: CallbackRecord, inbound: Inbound) -> Answer:
    from pesarail.providers.registry import PROVIDERS

    if inbound.provider not in PROVIDERS:
        _finish(record, CallbackStatus.REJECTED, "unknown_provider",
                f"No provider {inbound.provider[:32]!r}.")
        return Answer(404, REJECTED_BODY, record.pk)
    account = gateway.find_account_by_token(inbound.provider, inbound.token)
    if account is None:
        _finish(record, CallbackStatus.REJECTED, "unknown_token",
                "No provider account has this callback token.")
        log.warning("callback_rejected", callback_id=record.pk, reason="unknown_token",
                    source_ip=inbound.source_ip)
        return Answer(403, REJECTED_BODY, record.pk)
    _learned(record)["provider_account"] = account
    if not gateway.ip_allowed(account, inbound.source_ip):
        _finish(record, CallbackStatus.REJECTED, "ip_not_allowed",
                f"Source IP {inbound.source_ip} is not in the account's allow-list.")
        log.warning("callback_rejected", callback_id=record.pk, reason="ip_not_allowed",
                    source_ip=inbound.source_ip)
        return Answer(403, REJECTED_BODY, record.pk)
    adapter = gateway.adapter_for(account)
    return _match_and_apply(record, account, adapter, inbound.body, inbound.headers,
                            inbound.attempt_hint)


def _ack(adapter: PaymentProvider, accepted: bool, record: CallbackRecord) -> Answer:
    status, body = adapter.callback_ack(accepted)
    return Answer(status, body, record.pk)


def _match_and_apply(record: CallbackRecord, account: ProviderAccount,
                     adapter: PaymentProvider, body: bytes, headers: Mapping[str, str],
                     attempt_hint: str | None = None) -> Answer:
    try:
        event = adapter.parse_callback(body, headers)
    except MalformedCallback as exc:
        _finish(record, CallbackStatus.REJECTED, "malformed", f"Malformed callback: {exc}")
        return _ack(adapter, False, record)
    reference = event.provider_reference
    _learned(record).update(checkout_request_id=reference[:100],
                            result_code=event.result_code[:40])
    attempt = (PaymentAttempt.objects
               .filter(provider=account.provider, checkout_request_id=reference,
                       provider_account=account).first())
    if attempt is None and attempt_hint and _wait_for_push(account, attempt_hint):
        attempt = (PaymentAttempt.objects
                   .filter(provider=account.provider, checkout_request_id=reference,
                           provider_account=account).first())
    if attempt is None:
        attempt = _adopt(account, event, attempt_hint)
    if attempt is None:
        _finish(record, CallbackStatus.REJECTED, "unknown_checkout",
                f"No payment attempt of this account has the reference {reference[:60]!r}.")
        log.warning("callback_rejected", callback_id=record.pk, reason="unknown_checkout")
        return _ack(adapter, False, record)
    _learned(record)["attempt"] = attempt

    dedupe_key = f"{reference}:{event.result_code}"[:200]
    if already_received(account.provider, dedupe_key):
        _finish(record, CallbackStatus.DUPLICATE, "duplicate",
                "The same result was already received.")
        return _ack(adapter, True, record)

    if gateway.confirm_with_query(account):
        confirmed = _confirm(record, attempt, adapter, event)
        if confirmed is None:
            return _ack(adapter, True, record)
        if confirmed.status is not event.status:
            return _contradicted(record, attempt, adapter, event, confirmed, dedupe_key)

    outcome = services.apply_result(attempt.pk, event, source="callback",
                                    callback_id=record.pk, dedupe_key=dedupe_key,
                                    intent_id=attempt.intent_id,
                                    callback_fields=_learned(record))
    if outcome is ApplyOutcome.DUPLICATE:
        _finish(record, CallbackStatus.DUPLICATE, "duplicate",
                "The same result was already received.")
    return _ack(adapter, True, record)


def already_received(provider: str, dedupe_key: str) -> bool:
    """Whether a callback with this (reference, result code) was already applied. A fast
    path only: the unique key claimed inside the apply transaction is what decides."""
    return CallbackRecord.objects.filter(provider=provider, dedupe_key=dedupe_key).exists()


def _confirm(record: CallbackRecord, attempt: PaymentAttempt, adapter: PaymentProvider,
             event: ProviderEvent) -> ProviderEvent | None:
    """The provider's own answer for the reference, or None (then the callback waits as
    ``received`` and the reconciler resolves the attempt)."""
    try:
        confirmed = adapter.fetch_status(event.provider_reference)
    except (ProviderUnavailable, ProviderError) as exc:
        _finish(record, CallbackStatus.RECEIVED, "unconfirmed",
                f"Could not confirm with a status query ({exc.message}); the reconciler "
                "will resolve the payment.")
        _enqueue_reconcile(attempt.pk)
        return None
    PaymentAttempt.objects.filter(pk=attempt.pk).update(last_queried_at=timezone.now())
    if confirmed.pending:
        _finish(record, CallbackStatus.RECEIVED, "unconfirmed",
                "The provider does not confirm this result yet; the reconciler will "
                "resolve the payment.")
        _enqueue_reconcile(attempt.pk)
        return None
    return confirmed


def _contradicted(record: CallbackRecord, attempt: PaymentAttempt, adapter: PaymentProvider,
                  event: ProviderEvent, confirmed: ProviderEvent, dedupe_key: str) -> Answer:
    """The callback says one thing, the provider's query another: trust the query,
    flag the callback (it may be forged) and never credit on its word."""
    services.apply_result(attempt.pk, confirmed, source="status_query")
    reason = (f"The callback reports {event.status.value} (code {event.result_code}) but the "
              f"provider's status query reports {confirmed.status.value} (code "
              f"{confirmed.result_code}); the query's answer was applied.")
    try:
        with transaction.atomic():
            _finish(record, CallbackStatus.FLAGGED, "contradicted_by_query", reason,
                    dedupe_key=dedupe_key)
    except IntegrityError:  # a copy of the same callback already holds the key
        _finish(record, CallbackStatus.FLAGGED, "contradicted_by_query", reason)
    log.warning("callback_contradicted", callback_id=record.pk, attempt_id=attempt.pk)
    return _ack(adapter, True, record)


def _wait_for_push(account: ProviderAccount, attempt_id: str) -> bool:
    """A result can overtake the push's own answer (the provider calls back before we
    have recorded its reference). Give the push up to PUSH_ANSWER_WAIT seconds to be
    recorded, so results apply in order. True if the attempt's push was in flight."""
    in_flight = PaymentAttempt.objects.filter(
        pk=attempt_id, provider_account=account, state=AttemptState.CREATED,
        push_outcome=PushOutcome.NOT_SENT, checkout_request_id__isnull=True)
    if not in_flight.exists():
        return False
    deadline = time.monotonic() + PUSH_ANSWER_WAIT
    while in_flight.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def _adopt(account: ProviderAccount, event: ProviderEvent,
           attempt_hint: str | None) -> PaymentAttempt | None:
    """Match a result whose reference we never learned (the push timed out, or its
    answer has not been recorded yet) and record the reference on the attempt.

    First by the attempt id in the callback URL we gave the provider; else, for a push
    that timed out, by the payer's phone in a success callback: the per-phone throttle
    allows one open prompt per phone and account, so (phone, account) names at most one
    such attempt. Only attempts whose push may have reached the provider qualify;
    confirmation by query (when on) and the amount check still apply afterwards."""
    unmatched = PaymentAttempt.objects.filter(
        provider_account=account, checkout_request_id__isnull=True,
        push_outcome__in=(PushOutcome.NOT_SENT, PushOutcome.TIMEOUT),
        state__in=(AttemptState.CREATED, AttemptState.UNKNOWN, AttemptState.EXPIRED))
    candidate = unmatched.filter(pk=attempt_hint).first() if attempt_hint else None
    if candidate is None and event.phone_e164:
        candidate = (unmatched
                     .filter(push_outcome=PushOutcome.TIMEOUT, phone=event.phone_e164,
                             requested_at__gte=timezone.now() - ADOPT_WINDOW)
                     .order_by("-requested_at").first())
    if candidate is None:
        return None
    try:
        with transaction.atomic():
            adopted = PaymentAttempt.objects.filter(
                pk=candidate.pk, checkout_request_id__isnull=True,
            ).update(checkout_request_id=event.provider_reference, updated_at=timezone.now())
    except IntegrityError:
        return None
    if not adopted:
        return PaymentAttempt.objects.filter(
            provider=account.provider, provider_account=account,
            checkout_request_id=event.provider_reference).first()
    candidate.refresh_from_db()
    from pesarail.payments import states

    with transaction.atomic():
        states.append_event(candidate.intent, "provider_reference_learned", attempt=candidate,
                            message="The provider's result named this prompt; its reference "
                                    "was recorded.",
                            data={"checkout_request_id": event.provider_reference})
    log.info("callback_adopted_attempt", attempt_id=candidate.pk)
    return candidate


def _enqueue_reconcile(attempt_id: str) -> None:
    transaction.on_commit(lambda: services.enqueue_reconcile(attempt_id))


def reprocess_orphans(account: ProviderAccount, reference: str) -> None:
    """A callback that arrived before its push's answer was recorded was rejected as
    ``unknown_checkout``; now that the reference is known, process it again."""
    orphans = CallbackRecord.objects.filter(
        provider=account.provider, provider_account=account, checkout_request_id=reference,
        status=CallbackStatus.REJECTED, reason_code="unknown_checkout")
    for record in orphans:
        try:
            CallbackRecord.objects.filter(pk=record.pk).update(
                status=CallbackStatus.RECEIVED, reason_code="", reason="reprocessed")
            _match_and_apply(record, account, gateway.adapter_for(account),
                             bytes(record.body), {})
        except Exception:
            log.exception("callback_reprocess_failed", callback_id=record.pk)


__all__ = ["Answer", "Inbound", "handle", "reprocess_orphans", "store_raw"]
