"""Payment operations: create, send the prompt, apply a result, expire, cancel, retry.

Rules (design.md section 4):

* A provider call never runs inside a database transaction: the intent and its attempt
  are committed first, then the provider is called, then its answer is recorded in a
  new short transaction.
* A push that times out leaves the attempt ``unknown`` and the intent ``processing``;
  it is never re-sent. The reconciler (or the callback) resolves it.
* Rows are always locked in the same order: the intent, then the attempt.
* A success is posted to the ledger in the same transaction as the status change, under
  the idempotency key ``<provider>:<CheckoutRequestID>``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from pesarail.common.errors import ApplicationError, Conflict, Unprocessable
from pesarail.common.logging import get_logger
from pesarail.common.money import Money
from pesarail.common.phone import mask_phone
from pesarail.ledger import services as ledger
from pesarail.ledger.models import JournalEntry
from pesarail.payments import gateway, states
from pesarail.payments.models import (
    OPEN_ATTEMPT_STATES,
    AttemptState,
    CallbackRecord,
    CallbackStatus,
    IntentKind,
    IntentStatus,
    PaymentAttempt,
    PaymentIntent,
    PushOutcome,
)
from pesarail.providers.base import (
    ChargeRequest,
    ChargeStarted,
    PaymentStatus,
    ProviderError,
    ProviderEvent,
    ProviderTimeout,
    ProviderUnavailable,
)
from pesarail.providers.models import ProviderAccount

log = get_logger("pesarail.payments")

S = IntentStatus


class PhoneBusy(Conflict):
    code = "phone_busy"


class ApplyOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    FLAGGED = "flagged"


CALLBACK_STATUS_FOR: dict[ApplyOutcome, str] = {
    ApplyOutcome.APPLIED: CallbackStatus.APPLIED,
    ApplyOutcome.DUPLICATE: CallbackStatus.DUPLICATE,
    ApplyOutcome.IGNORED: CallbackStatus.IGNORED,
    ApplyOutcome.FLAGGED: CallbackStatus.FLAGGED,
}

_ATTEMPT_STATE_FOR: dict[PaymentStatus, str] = {
    PaymentStatus.FAILED: AttemptState.FAILED,
    PaymentStatus.CANCELLED: AttemptState.CANCELLED,
    PaymentStatus.EXPIRED: AttemptState.EXPIRED,
}
_INTENT_STATUS_FOR: dict[PaymentStatus, str] = {
    PaymentStatus.FAILED: S.FAILED,
    PaymentStatus.CANCELLED: S.CANCELLED,
    PaymentStatus.EXPIRED: S.EXPIRED,
}


def idempotency_backstop(operation: str, scope: str, client_key: str) -> str:
    """The value stored in ``PaymentIntent.idempotency_key``: unique per merchant, so a
    request replayed after its API idempotency record was lost still finds its intent."""
    digest = hashlib.sha256(client_key.encode()).hexdigest()[:40]
    return f"{operation}:{scope}:{digest}"


# ------------------------------------------------------------------------- create


@dataclass(frozen=True)
class PaymentSpec:
    merchant: Any
    account: ProviderAccount
    money: Money
    phone: str
    idempotency_key: str
    description: str = ""
    reference: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    customer: Any = None
    wallet: Any = None


def create_payment(spec: PaymentSpec) -> tuple[PaymentIntent, bool]:
    """Create an intent and its first attempt, commit, then send the prompt.

    Returns ``(intent, created)``; ``created`` is False when an intent with the same
    idempotency backstop already existed (it is returned unchanged, nothing is sent).
    Raises :class:`PhoneBusy` (409) when the phone already has an open prompt on this
    provider account: then nothing is written and the provider is not called.
    """
    gateway.precheck(spec.account, spec.money, spec.phone)
    intent, attempt, created = _create_intent(spec)
    if created and attempt is not None:
        attempt.provider_account = spec.account
        send_push(attempt.pk, loaded=attempt)
        intent.refresh_from_db()
    return intent, created


def _create_intent(spec: PaymentSpec) -> tuple[PaymentIntent, PaymentAttempt | None, bool]:
    # No look-up first: the unique (merchant, idempotency_key) decides a replay below.
    now = timezone.now()
    try:
        with transaction.atomic():
            intent = PaymentIntent.objects.create(
                merchant_id=spec.merchant.pk,
                kind=IntentKind.WALLET_TOP_UP if spec.wallet is not None else IntentKind.PAYMENT,
                provider=spec.account.provider, provider_account=spec.account,
                customer=spec.customer, wallet=spec.wallet,
                amount_minor=spec.money.minor, currency=spec.money.currency, phone=spec.phone,
                description=spec.description, reference=spec.reference,
                metadata=spec.metadata,
                expires_at=now + timedelta(seconds=gateway.stk_timeout_seconds(spec.account)),
                idempotency_key=spec.idempotency_key, attempt_count=1,
            )
            what = "Wallet top-up" if spec.wallet is not None else "Payment"
            states.append_event(intent, "created", to_status=S.PENDING,
                                message=f"{what} of {spec.money.format()} created.")
            attempt = _open_attempt(intent, counted=True)
    except IntegrityError:
        existing = PaymentIntent.objects.filter(merchant_id=spec.merchant.pk,
                                                idempotency_key=spec.idempotency_key).first()
        if existing is None:
            raise
        return existing, None, False
    log.info("payment_created", intent_id=intent.pk, attempt_id=attempt.pk,
             amount=spec.money.to_decimal_string(), currency=spec.money.currency,
             phone=mask_phone(spec.phone), kind=intent.kind)
    return intent, attempt, True


def _open_attempt(intent: PaymentIntent, *, counted: bool = False) -> PaymentAttempt:
    """Insert the next attempt (state ``created``). The partial unique indexes refuse a
    second open prompt on the same phone and account (-> PhoneBusy) and a second open
    attempt on the same intent. ``counted``: the intent row was written with this
    attempt already in ``attempt_count`` (a new intent), so it is not updated again."""
    number = intent.attempt_count if counted else intent.attempt_count + 1
    try:
        with transaction.atomic():
            # Created only to be pushed at once, so ``requested_at`` is stamped here
            # rather than by a separate (separately committed) update before the push.
            attempt = PaymentAttempt.objects.create(
                intent=intent, number=number, provider=intent.provider,
                provider_account_id=intent.provider_account_id, phone=intent.phone,
                state=AttemptState.CREATED, requested_at=timezone.now(),
            )
    except IntegrityError:
        busy = (PaymentAttempt.objects
                .filter(provider_account_id=intent.provider_account_id, phone=intent.phone,
                        state__in=OPEN_ATTEMPT_STATES)
                .exclude(intent_id=intent.pk).exists())
        if busy:
            raise PhoneBusy(
                f"A payment prompt is already open on {mask_phone(intent.phone)}. Wait for "
                "the customer to answer it (or for it to expire, about two minutes), or "
                "cancel that payment, then try again.",
                fields={"phone_number": ["This phone already has an open payment prompt."]},
            ) from None
        if PaymentAttempt.objects.filter(intent_id=intent.pk,
                                         state__in=OPEN_ATTEMPT_STATES).exists():
            raise Conflict("This payment already has an attempt in progress.",
                           code="attempt_in_progress") from None
        raise
    if not counted:
        PaymentIntent.objects.filter(pk=intent.pk).update(attempt_count=number)
        intent.attempt_count = number
    return attempt


# --------------------------------------------------------------------------- push


def send_push(attempt_id: str, *, loaded: PaymentAttempt | None = None) -> None:
    """Call the provider for an attempt in state ``created`` and record the answer.
    Runs outside any transaction (the provider call must never hold a lock).

    ``loaded``: the attempt as its creator just committed it (with ``intent`` and
    ``provider_account`` set), which saves reading it back."""
    attempt = loaded if loaded is not None and loaded.pk == attempt_id else (
        PaymentAttempt.objects.select_related("intent", "provider_account")
        .get(pk=attempt_id))
    if attempt.state != AttemptState.CREATED:
        return
    intent = attempt.intent
    account = attempt.provider_account
    request = ChargeRequest(
        intent_id=intent.pk, attempt_id=attempt.pk, money=intent.money,
        phone_e164=intent.phone, reference=intent.reference or intent.pk,
        description=intent.description or ("Top-up" if intent.wallet_id else "Payment"),
        # The attempt id in the URL's path lets a callback be matched even when the push
        # timed out before the provider told us its reference.
        callback_url=f"{account.callback_url.rstrip('/')}/{attempt.pk}/",
    )
    adapter = gateway.adapter_for(account)
    release_db_connection()
    try:
        started = adapter.start_charge(request)
    except ProviderTimeout as exc:
        _record_push_unknown(attempt.pk, exc.message, exc.code or "timeout",
                             intent_id=intent.pk)
    except ProviderUnavailable as exc:
        _record_push_failure(attempt.pk, code="provider_unavailable", message=exc.message,
                             provider_code=exc.code, retryable=True,
                             outcome=PushOutcome.UNAVAILABLE)
    except ProviderError as exc:
        _record_push_failure(attempt.pk, code=exc.code or "provider_error",
                             message=exc.message, provider_code=exc.code,
                             retryable=exc.retryable, outcome=PushOutcome.REFUSED)
    except ApplicationError as exc:  # the adapter refused the request before sending it
        _record_push_failure(attempt.pk, code=exc.code, message=exc.message,
                             provider_code="", retryable=False, outcome=PushOutcome.REFUSED)
    except Exception:
        # A bug after the request may have left: unknown, never failed (rule 4).
        log.exception("payment_push_crashed", attempt_id=attempt.pk)
        _record_push_unknown(attempt.pk, "An internal error interrupted the request to the "
                             "provider; the outcome is unknown.", "internal_error")
    else:
        _record_push_accepted(attempt.pk, started, intent_id=intent.pk)
        from pesarail.payments import callbacks

        callbacks.reprocess_orphans(account, started.provider_reference)


def release_db_connection() -> None:
    """Give a pooled database connection back to the pool before waiting on a provider.

    Django returns a pooled connection only when the request ends, so a thread waiting
    a second for an STK push would keep one of the pool's few connections idle for that
    second, and the pool, not the CPU, would cap how many pushes can be in flight. The
    next query takes a connection from the pool again. Outside a pool (SQLite, tests)
    and inside a transaction this does nothing."""
    if connection.in_atomic_block or getattr(connection, "pool", None) is None:
        return
    connection.close()


def _lock(attempt_id: str, intent_id: str | None = None
          ) -> tuple[PaymentIntent, PaymentAttempt]:
    """Lock the intent, then the attempt (the one lock order). An attempt never moves to
    another intent, so a caller that read ``intent_id`` before may pass it."""
    if intent_id is None:
        intent_id = (PaymentAttempt.objects.values_list("intent_id", flat=True)
                     .get(pk=attempt_id))
    intent = PaymentIntent.objects.select_for_update().get(pk=intent_id)
    attempt = PaymentAttempt.objects.select_for_update().get(pk=attempt_id, intent_id=intent_id)
    return intent, attempt


def _update_attempt(attempt: PaymentAttempt, **fields: Any) -> None:
    fields["updated_at"] = timezone.now()
    PaymentAttempt.objects.filter(pk=attempt.pk).update(**fields)
    for name, value in fields.items():
        setattr(attempt, name, value)


def _record_push_accepted(attempt_id: str, started: ChargeStarted, *,
                          intent_id: str | None = None) -> None:
    with transaction.atomic():
        intent, attempt = _lock(attempt_id, intent_id)
        refs = {"checkout_request_id": started.provider_reference,
                "merchant_request_id": started.secondary_reference or ""}
        if attempt.state != AttemptState.CREATED:
            # Resolved meanwhile (e.g. expired): keep the reference so results still match.
            _update_attempt(attempt, push_outcome=PushOutcome.ACCEPTED, **refs)
            states.append_event(intent, "prompt_sent", attempt=attempt, data=refs,
                                message="The provider accepted the prompt after the attempt "
                                        f"was already {attempt.state}.")
            return
        _update_attempt(attempt, state=AttemptState.PENDING, push_outcome=PushOutcome.ACCEPTED,
                        next_action=started.next_action, **refs)
        message = f"Prompt sent to {mask_phone(intent.phone)}."
        if intent.status == S.PENDING:
            changed = states.transition(intent, S.PROCESSING, kind="prompt_sent",
                                        message=message, attempt=attempt, data=refs)
            assert changed
        else:
            states.append_event(intent, "prompt_sent", message=message, attempt=attempt,
                                data=refs)
    log.info("payment_prompt_sent", intent_id=intent.pk, attempt_id=attempt.pk,
             checkout_request_id=started.provider_reference)


def _record_push_unknown(attempt_id: str, message: str, code: str, *,
                         intent_id: str | None = None) -> None:
    with transaction.atomic():
        intent, attempt = _lock(attempt_id, intent_id)
        if attempt.state != AttemptState.CREATED:
            return
        _update_attempt(attempt, state=AttemptState.UNKNOWN, push_outcome=PushOutcome.TIMEOUT,
                        result_code=code[:40], result_message=message[:500])
        text = ("The provider did not confirm the prompt in time; the outcome is unknown "
                "and will be checked (it is never sent twice).")
        data = {"code": code, "detail": message[:300]}
        if intent.status == S.PENDING:
            states.transition(intent, S.PROCESSING, kind="push_unknown", message=text,
                              attempt=attempt, data=data)
        else:
            states.append_event(intent, "push_unknown", message=text, attempt=attempt,
                                data=data)
    log.warning("payment_push_unknown", intent_id=intent.pk, attempt_id=attempt_id, code=code)


def _record_push_failure(attempt_id: str, *, code: str, message: str, provider_code: str,
                         retryable: bool, outcome: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        intent, attempt = _lock(attempt_id)
        if attempt.state != AttemptState.CREATED:
            return
        _update_attempt(attempt, state=AttemptState.FAILED, push_outcome=outcome,
                        result_code=(provider_code or code)[:40], result_message=message[:500],
                        resolved_at=now)
        if intent.status in (S.PENDING, S.PROCESSING):
            states.transition(intent, S.FAILED, kind="push_failed", message=message,
                              attempt=attempt,
                              data={"code": code, "provider_code": provider_code,
                                    "retryable": retryable},
                              failure_code=code[:40], failure_message=message[:500],
                              failure_retryable=retryable)
    log.info("payment_push_failed", intent_id=intent.pk, attempt_id=attempt_id, code=code,
             retryable=retryable)


# -------------------------------------------------------------------------- apply


def apply_result(
    attempt_id: str,
    event: ProviderEvent,
    *,
    source: str,
    callback_id: str | None = None,
    dedupe_key: str | None = None,
    intent_id: str | None = None,
    callback_fields: dict[str, Any] | None = None,
) -> ApplyOutcome:
    """Apply a final provider result to an attempt and its intent, atomically: the
    status change, its event and (for a success) the ledger posting commit together.

    ``source`` is ``"callback"`` or ``"status_query"``. With ``callback_id`` and
    ``dedupe_key`` the callback's dedupe key is claimed inside the same transaction, so
    of many identical callbacks exactly one applies and the rest are DUPLICATE, and
    ``callback_fields`` (what intake learned: account, reference, attempt) are written
    on the callback row in the same final UPDATE as its outcome. ``intent_id``, when the
    caller already knows the attempt's intent, saves a lookup.
    """
    if event.pending:
        raise ValueError("apply_result needs a final result")
    now = timezone.now()
    with transaction.atomic():
        intent, attempt = _lock(attempt_id, intent_id)
        problems = (_verify_success(intent, event, source)
                    if event.status is PaymentStatus.SUCCEEDED else [])
        if problems:
            outcome, note = _flag(intent, attempt, event, source, problems, now)
        else:
            if callback_id and dedupe_key:
                try:
                    with transaction.atomic():
                        CallbackRecord.objects.filter(pk=callback_id).update(
                            dedupe_key=dedupe_key)
                except IntegrityError:
                    return ApplyOutcome.DUPLICATE
            if event.status is PaymentStatus.SUCCEEDED:
                outcome, note = _apply_success(intent, attempt, event, source, now)
            else:
                outcome, note = _apply_failure(intent, attempt, event, source, now)
        if callback_id:
            CallbackRecord.objects.filter(pk=callback_id).update(**{
                **(callback_fields or {}),
                "status": CALLBACK_STATUS_FOR[outcome], "reason": note[:500],
                "attempt": attempt,
                "reason_code": "" if outcome is ApplyOutcome.APPLIED else outcome.value,
                "processed_at": now,
            })
    log.info("payment_result_applied", intent_id=intent.pk, attempt_id=attempt.pk,
             outcome=outcome.value, status=event.status.value, source=source)
    return outcome


def _flag(intent: PaymentIntent, attempt: PaymentAttempt, event: ProviderEvent, source: str,
          problems: list[str], now: Any) -> tuple[ApplyOutcome, str]:
    """A reported success that does not match the payment: never credited on its word.
    The intent is flagged for review; the attempt stays open, so the provider's own
    status query (the reconciler, asked at once) still decides what happened to the
    amount we pushed."""
    reason = (f"A {source.replace('_', ' ')} reported a success that was not credited: "
              + "; ".join(problems) + ".")
    PaymentIntent.objects.filter(pk=intent.pk).update(
        needs_review=True, review_reason=reason[:500], updated_at=now)
    intent.needs_review, intent.review_reason = True, reason[:500]
    states.append_event(intent, "flagged", message=reason, attempt=attempt,
                        data=_result_data(event, source))
    if attempt.is_open:
        attempt_id = attempt.pk
        transaction.on_commit(lambda: enqueue_reconcile(attempt_id))
    log.warning("payment_result_flagged", intent_id=intent.pk, attempt_id=attempt.pk,
                reason=reason)
    return ApplyOutcome.FLAGGED, reason


def enqueue_reconcile(attempt_id: str) -> None:
    """Queue a per-attempt reconcile task (the minute job would find it anyway)."""
    from pesarail.payments import tasks

    try:
        tasks.reconcile_attempt.enqueue(attempt_id)
    except Exception:  # the minute job picks it up anyway
        log.exception("reconcile_enqueue_failed", attempt_id=attempt_id)


def _verify_success(intent: PaymentIntent, event: ProviderEvent, source: str) -> list[str]:
    """What stops a reported success from being credited. A status query carries no
    amount (it confirms the CheckoutRequestID we pushed, for the amount we pushed); a
    callback must carry the intent's amount, and its phone if it names one."""
    problems: list[str] = []
    if source != "callback":
        return problems
    if event.amount is None:
        problems.append("the success callback has no Amount")
    elif event.amount != intent.money:
        problems.append(f"amount mismatch: the provider reports {event.amount.format()}, the "
                        f"payment is for {intent.money.format()}")
    if event.phone_e164 is not None and event.phone_e164 != intent.phone:
        problems.append(f"phone mismatch: the provider reports {mask_phone(event.phone_e164)}, "
                        f"the prompt went to {mask_phone(intent.phone)}")
    return problems


def _result_data(event: ProviderEvent, source: str) -> dict[str, Any]:
    data: dict[str, Any] = {"source": source, "result_code": event.result_code,
                            "checkout_request_id": event.provider_reference}
    if event.provider_message:
        data["provider_message"] = event.provider_message[:300]
    if event.receipt:
        data["receipt"] = event.receipt
    if event.amount is not None:
        data["amount"] = event.amount.to_decimal_string()
    return data


def _apply_success(intent: PaymentIntent, attempt: PaymentAttempt, event: ProviderEvent,
                   source: str, now: Any) -> tuple[ApplyOutcome, str]:
    if attempt.state == AttemptState.SUCCEEDED:
        return ApplyOutcome.IGNORED, "the attempt had already succeeded"
    data = _result_data(event, source)
    entry = _post_to_ledger(intent, attempt, event)
    receipt = (event.receipt or attempt.receipt or "")[:64]
    _update_attempt(attempt, state=AttemptState.SUCCEEDED, resolved_at=now,
                    result_code=event.result_code[:40], result_message=event.message[:500],
                    provider_message=event.provider_message[:500], receipt=receipt,
                    ledger_entry=entry)
    data["ledger_entry"] = entry.pk
    paid = f"Payment of {intent.money.format()} received"
    paid += f" (M-Pesa receipt {receipt})." if receipt else "."
    common = {"succeeded_at": now, "provider_receipt": receipt, "ledger_entry": entry,
              "failure_code": "", "failure_message": "", "failure_retryable": False}
    if intent.status == S.PENDING:
        states.transition(intent, S.PROCESSING, kind="result_received", attempt=attempt,
                          message="The provider reported a result.")
    if intent.status == S.PROCESSING:
        changed = states.transition(intent, S.SUCCEEDED, kind="succeeded", message=paid,
                                    attempt=attempt, data=data, **common)
        assert changed
        return ApplyOutcome.APPLIED, ""
    if intent.status in states.LATE_SUCCESS_FROM:
        reason = (f"Late success: the provider confirmed the payment after the intent was "
                  f"{intent.status}. The money was credited; check the order.")
        changed = states.transition(intent, S.SUCCEEDED, kind="late_success",
                                    message=f"{paid} {reason}", attempt=attempt, data=data,
                                    late=True, late_success=True, needs_review=True,
                                    review_reason=reason, **common)
        assert changed
        log.warning("payment_late_success", intent_id=intent.pk, attempt_id=attempt.pk)
        return ApplyOutcome.APPLIED, "late success"
    # Already succeeded through another attempt: the customer paid twice.
    reason = (f"Duplicate payment: attempt {attempt.number} also succeeded after the payment "
              "had already been paid. The money was credited; refund the customer if needed.")
    PaymentIntent.objects.filter(pk=intent.pk).update(needs_review=True,
                                                      review_reason=reason[:500],
                                                      updated_at=now)
    states.append_event(intent, "duplicate_payment", message=reason, attempt=attempt,
                        data=data)
    log.warning("payment_duplicate_success", intent_id=intent.pk, attempt_id=attempt.pk)
    return ApplyOutcome.APPLIED, "duplicate payment"


def _post_to_ledger(intent: PaymentIntent, attempt: PaymentAttempt,
                    event: ProviderEvent) -> JournalEntry:
    """Provider clearing -> merchant settlement (or the top-up's wallet), exactly once
    per provider reference."""
    reference = attempt.checkout_request_id or event.provider_reference
    assert reference, "a success needs the provider's reference"
    customer_id = None
    if intent.kind == IntentKind.WALLET_TOP_UP:
        customer_id = intent.customer_id
    memo = f"{'Wallet top-up' if customer_id else 'Payment'} {intent.pk}"
    if event.receipt:
        memo += f" (receipt {event.receipt})"
    return ledger.record_provider_payment(
        merchant_id=intent.merchant_id, provider_account_id=intent.provider_account_id,
        money=intent.money, idempotency_key=f"{intent.provider}:{reference}",
        customer_id=customer_id, memo=memo, cause_type=f"{intent.provider}_stk",
        cause_id=reference,
    )


def _apply_failure(intent: PaymentIntent, attempt: PaymentAttempt, event: ProviderEvent,
                   source: str, now: Any) -> tuple[ApplyOutcome, str]:
    if not attempt.is_open:
        return ApplyOutcome.IGNORED, f"the attempt was already {attempt.state}"
    _update_attempt(attempt, state=_ATTEMPT_STATE_FOR[event.status], resolved_at=now,
                    result_code=event.result_code[:40], result_message=event.message[:500],
                    provider_message=event.provider_message[:500])
    data = {**_result_data(event, source), "retryable": event.retryable}
    if intent.status in (S.PENDING, S.PROCESSING):
        to_status = _INTENT_STATUS_FOR[event.status]
        states.transition(intent, to_status, kind=f"payment_{to_status}", message=event.message,
                          attempt=attempt, data=data, failure_code=event.result_code[:40],
                          failure_message=event.message[:500],
                          failure_retryable=event.retryable)
    else:
        states.append_event(intent, f"attempt_{attempt.state}", message=event.message,
                            attempt=attempt, data=data)
    return ApplyOutcome.APPLIED, ""


def expire_attempt(attempt_id: str, reason: str, *, data: dict[str, Any] | None = None) -> bool:
    """Close an open attempt as expired and, if its intent is still open, expire the
    intent. A success reported later follows the late-success policy."""
    now = timezone.now()
    with transaction.atomic():
        intent, attempt = _lock(attempt_id)
        if not attempt.is_open:
            return False
        _update_attempt(attempt, state=AttemptState.EXPIRED, resolved_at=now,
                        result_code="expired", result_message=reason[:500])
        if intent.status in (S.PENDING, S.PROCESSING):
            states.transition(intent, S.EXPIRED, kind="expired", message=reason,
                              attempt=attempt, data=data or {}, failure_code="expired",
                              failure_message=reason[:500], failure_retryable=True)
        else:
            states.append_event(intent, "attempt_expired", message=reason, attempt=attempt,
                                data=data or {})
    log.info("payment_expired", intent_id=intent.pk, attempt_id=attempt_id)
    return True


# ------------------------------------------------------------ cancel, retry, refresh


def open_attempt(intent: PaymentIntent) -> PaymentAttempt | None:
    return (PaymentAttempt.objects.filter(intent_id=intent.pk, state__in=OPEN_ATTEMPT_STATES)
            .order_by("-number").first())


def latest_queryable_attempt(intent: PaymentIntent) -> PaymentAttempt | None:
    return (PaymentAttempt.objects.filter(intent_id=intent.pk,
                                          checkout_request_id__isnull=False)
            .order_by("-number").first())


def cancel_payment(intent: PaymentIntent, *, by: str = "merchant") -> PaymentIntent:
    """Stop waiting for an open payment. The provider is asked first: if the customer
    already paid, the success is applied and the cancel refused (409)."""
    from pesarail.payments import reconcile

    intent.refresh_from_db()
    if not intent.is_open:
        raise Conflict(f"A {intent.status} payment cannot be cancelled.", code="not_cancellable")
    attempt = open_attempt(intent)
    if attempt is not None and attempt.state == AttemptState.CREATED:
        raise Conflict("The prompt is being sent right now; try again in a moment.",
                       code="prompt_being_sent")
    if attempt is not None and attempt.checkout_request_id:
        reconcile.query_attempt(attempt.pk)
        intent.refresh_from_db()
        if intent.status == S.SUCCEEDED:
            raise Conflict("The customer has already paid; the payment cannot be cancelled.",
                           code="already_succeeded")
        if not intent.is_open:
            return intent
    message = f"Cancelled by the {by}."
    with transaction.atomic():
        intent = PaymentIntent.objects.select_for_update().get(pk=intent.pk)
        if not intent.is_open:
            return intent
        attempt = open_attempt(intent)
        if attempt is not None:
            attempt = PaymentAttempt.objects.select_for_update().get(pk=attempt.pk)
            _update_attempt(attempt, state=AttemptState.CANCELLED, resolved_at=timezone.now(),
                            result_code=f"cancelled_by_{by}", result_message=message)
        states.transition(intent, S.CANCELLED, kind="cancelled", message=message,
                          attempt=attempt, data={"by": by},
                          failure_code=f"cancelled_by_{by}", failure_message=message,
                          failure_retryable=True)
    return intent


def retry_payment(intent: PaymentIntent) -> PaymentIntent:
    """A new attempt (a new prompt) on a failed or cancelled intent."""
    if intent.status not in states.RETRYABLE_FROM:
        raise Conflict(f"Only a failed or cancelled payment can be retried; this one is "
                       f"{intent.status}.", code="not_retryable")
    account = intent.provider_account
    if not account.is_active:
        raise Unprocessable("The payment's provider account is deactivated.",
                            code="provider_account_inactive")
    now = timezone.now()
    with transaction.atomic():
        intent = PaymentIntent.objects.select_for_update().get(pk=intent.pk)
        if intent.status not in states.RETRYABLE_FROM:
            raise Conflict(f"Only a failed or cancelled payment can be retried; this one is "
                           f"{intent.status}.", code="not_retryable")
        attempt = _open_attempt(intent)
        states.transition(
            intent, S.PROCESSING, kind="retried", attempt=attempt,
            message=f"Retry: attempt {attempt.number} created.",
            expires_at=now + timedelta(seconds=gateway.stk_timeout_seconds(account)),
            failure_code="", failure_message="", failure_retryable=False,
        )
    send_push(attempt.pk)
    intent.refresh_from_db()
    return intent


class ProviderUnreachable(ApplicationError):
    status = 503
    type = "api_error"
    code = "provider_unavailable"


def refresh_payment(intent: PaymentIntent) -> PaymentIntent:
    """Ask the provider now about the latest attempt it knows, and apply a final
    answer (a success on an expired or cancelled intent follows the late-success
    policy)."""
    from pesarail.payments import reconcile

    if intent.status != S.SUCCEEDED:
        attempt = latest_queryable_attempt(intent)
        if attempt is not None:
            outcome = reconcile.query_attempt(attempt.pk)
            if outcome == reconcile.UNAVAILABLE:
                raise ProviderUnreachable("The provider could not be asked right now; the "
                                          "payment will be checked again automatically.")
    intent.refresh_from_db()
    return intent
