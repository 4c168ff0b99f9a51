"""Checkout session operations. The API, the hosted page and the demo all go through here.

Money moves only through :mod:`pesarail.payments.services`; this module decides *when* a
session may start or retry a payment and keeps the session's status in line with its
payment and the clock.

Never charging twice on a double submit: the idempotency key of a session's next intent
is derived from the session (``checkout:<session id>:<n>``, where ``n`` only grows once
an intent exists), so two concurrent "Pay" requests ask the payments service for the
same intent and only one prompt is sent. A retry goes through
:func:`~pesarail.payments.services.retry_payment`, which locks the intent and refuses a
second open attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from pesarail.checkout.models import CheckoutSession, SessionStatus
from pesarail.common.errors import ApplicationError, Conflict, ValidationFailed
from pesarail.common.logging import get_logger
from pesarail.common.money import Money
from pesarail.common.phone import PhoneError, mask_phone, national_format, normalize_phone
from pesarail.payments import gateway
from pesarail.payments import services as payments
from pesarail.payments.models import IntentStatus, PaymentAttempt, PaymentIntent
from pesarail.providers.models import ProviderAccount
from pesarail.providers.registry import PROVIDERS
from pesarail.tenants.models import Customer, Merchant

__all__ = [
    "DEFAULT_EXPIRES_IN",
    "MAX_EXPIRES_IN",
    "MIN_EXPIRES_IN",
    "Method",
    "PageState",
    "SessionClosed",
    "available_methods",
    "cancel_session",
    "checkout_url",
    "create_demo_checkout_session",
    "create_session",
    "expire_due",
    "page_state",
    "pay",
    "refresh_if_stale",
    "return_url",
    "sync",
]

log = get_logger("pesarail.checkout")

DEFAULT_EXPIRES_IN = 30 * 60
MIN_EXPIRES_IN = 60
MAX_EXPIRES_IN = 24 * 3600

OPEN_INTENT = (IntentStatus.PENDING, IntentStatus.PROCESSING)
PHONE_HINT = "Enter a Kenyan M-Pesa number, like 0712 345 678."

#: How each provider is offered on the hosted page (the layout takes more).
METHOD_LABELS: dict[str, str] = {"mpesa_ke": "M-Pesa"}
METHOD_DETAILS: dict[str, str] = {"mpesa_ke": "Kenya · pay from your phone"}


class SessionClosed(Conflict):
    """The session can no longer be paid (paid, expired or cancelled)."""

    code = "session_closed"


# --------------------------------------------------------------------------- create


def _clean_url(value: str, field: str, errors: dict[str, list[str]]) -> str:
    value = (value or "").strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        errors[field] = ["Must be a valid http:// or https:// URL."]
        return value
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        errors[field] = ["Must be an http:// or https:// URL."]
    elif parts.username or parts.password:
        errors[field] = ["Must not contain a user name or password."]
    elif len(value) > 2000:
        errors[field] = ["At most 2000 characters."]
    return value


def _provider_refusal(code: str, money: Money) -> str | None:
    """Why ``code`` cannot take ``money`` at all (checked without any I/O)."""
    cls = PROVIDERS[code]
    if money.currency not in cls.currencies:
        return f"{cls.display_name} takes {', '.join(cls.currencies)} only."
    if code == "mpesa_ke" and not money.is_whole_major():
        return "M-Pesa accepts whole shillings only."
    return None


def create_session(
    merchant: Merchant,
    *,
    money: Money,
    reference: str,
    success_url: str,
    cancel_url: str,
    allowed_providers: list[str] | None = None,
    customer: Customer | None = None,
    description: str = "",
    expires_in: int = DEFAULT_EXPIRES_IN,
    idempotency_key: str | None = None,
) -> tuple[CheckoutSession, bool]:
    """Validate and create a session. Returns ``(session, created)``; ``created`` is
    False when ``idempotency_key`` already made one (it is returned unchanged)."""
    if idempotency_key:
        existing = CheckoutSession.objects.filter(merchant_id=merchant.pk,
                                                  idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
    errors: dict[str, list[str]] = {}
    success_url = _clean_url(success_url, "success_url", errors)
    cancel_url = _clean_url(cancel_url, "cancel_url", errors)
    if allowed_providers is None:
        allowed_providers = [
            code for code in PROVIDERS
            if ProviderAccount.objects.filter(merchant_id=merchant.pk, provider=code,
                                              is_active=True).exists()
            and _provider_refusal(code, money) is None
        ] or ["mpesa_ke"]
    codes: list[str] = []
    for code in allowed_providers:
        if code not in PROVIDERS:
            known = ", ".join(sorted(PROVIDERS))
            errors.setdefault("allowed_providers", []).append(
                f"Unknown provider {code!r}; known: {known}.")
        elif code in codes:
            errors.setdefault("allowed_providers", []).append(f"{code} is listed twice.")
        else:
            refusal = _provider_refusal(code, money)
            if refusal:
                errors.setdefault("amount" if "whole" in refusal else "currency",
                                  []).append(refusal)
            codes.append(code)
    if not allowed_providers:
        errors["allowed_providers"] = ["Give at least one provider."]
    if not isinstance(expires_in, int) or not MIN_EXPIRES_IN <= expires_in <= MAX_EXPIRES_IN:
        errors["expires_in"] = [
            f"Must be a whole number of seconds from {MIN_EXPIRES_IN} to {MAX_EXPIRES_IN}."]
    if customer is not None and customer.merchant_id != merchant.pk:
        errors["customer"] = ["No such customer."]
    if errors:
        first = next(iter(errors.values()))[0]
        raise ValidationFailed(first, fields=errors)
    try:
        with transaction.atomic():
            session = CheckoutSession.objects.create(
                merchant=merchant, amount_minor=money.minor, currency=money.currency,
                reference=reference, description=description, allowed_providers=codes,
                success_url=success_url, cancel_url=cancel_url, customer=customer,
                expires_at=timezone.now() + timedelta(seconds=expires_in),
                idempotency_key=idempotency_key or "",
            )
    except IntegrityError:
        existing = CheckoutSession.objects.filter(merchant_id=merchant.pk,
                                                  idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return existing, False
    log.info("checkout_session_created", session_id=session.pk, merchant_id=merchant.pk,
             amount=money.to_decimal_string(), currency=money.currency)
    return session, True


def checkout_url(session: CheckoutSession) -> str:
    """The hosted page's absolute URL (``PESARAIL_BASE_URL`` read now)."""
    base = str(settings.PESARAIL_BASE_URL).rstrip("/")
    return base + reverse("checkout:page", args=[session.pk])


def return_url(session: CheckoutSession) -> str:
    """Where the customer goes back to: the success URL when paid, else the cancel URL,
    with ``session_id`` added to the query string."""
    target = session.success_url if session.status == SessionStatus.COMPLETE else (
        session.cancel_url)
    parts = urlsplit(target)
    query = parts.query + ("&" if parts.query else "") + urlencode({"session_id": session.pk})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


# ----------------------------------------------------------------------------- sync


def _set_status(session: CheckoutSession, to_status: str, **fields: Any) -> bool:
    """Conditional UPDATE from the in-memory status; False when somebody else won."""
    now = timezone.now()
    changed = CheckoutSession.objects.filter(pk=session.pk, status=session.status).update(
        status=to_status, updated_at=now, **fields)
    if changed:
        log.info("checkout_session_status", session_id=session.pk, from_status=session.status,
                 to_status=to_status)
        session.status = to_status
        for name, value in fields.items():
            setattr(session, name, value)
    return bool(changed)


def _paid_intent(session: CheckoutSession) -> PaymentIntent | None:
    intent = session.payment
    if intent is not None and intent.status == IntentStatus.SUCCEEDED:
        return intent
    if session.intent_count <= 1:
        return None
    # An older intent of this session succeeded late (after the customer moved on).
    return (PaymentIntent.objects
            .filter(merchant_id=session.merchant_id, status=IntentStatus.SUCCEEDED,
                    idempotency_key__startswith=session.intent_key_prefix)
            .order_by("-id").first())


def sync(session: CheckoutSession) -> CheckoutSession:
    """Re-read the session and bring its status in line with its payment and the clock:
    paid -> ``complete``; past ``expires_at`` with no payment in flight -> ``expired``."""
    for _ in range(3):
        # The page shows the account's environment; its credentials are read (and
        # decrypted) only if something calls the provider, not on every status poll.
        session = (CheckoutSession.objects.select_related("merchant", "payment",
                                                           "payment__provider_account")
                   .defer("payment__provider_account__credentials")
                   .get(pk=session.pk))
        if session.status == SessionStatus.COMPLETE:
            return session
        paid = _paid_intent(session)
        if paid is not None:
            if _set_status(session, SessionStatus.COMPLETE, payment=paid,
                           completed_at=paid.succeeded_at or timezone.now()):
                session.payment = paid
                return session
            continue
        in_flight = session.payment is not None and session.payment.status in OPEN_INTENT
        if (session.status == SessionStatus.OPEN and not in_flight
                and timezone.now() >= session.expires_at):
            if _set_status(session, SessionStatus.EXPIRED):
                return session
            continue
        return session
    return session


def expire_due(merchant: Merchant | None = None) -> int:
    """Bulk version of :func:`sync` for listings and the periodic sweep: complete the
    sessions whose payment succeeded and expire the overdue ones. Returns the number of
    sessions changed."""
    now = timezone.now()
    sessions = CheckoutSession.objects.all()
    if merchant is not None:
        sessions = sessions.filter(merchant_id=merchant.pk)
    completed = (sessions.exclude(status=SessionStatus.COMPLETE)
                 .filter(payment__status=IntentStatus.SUCCEEDED)
                 .update(status=SessionStatus.COMPLETE, completed_at=now, updated_at=now))
    expired = (sessions.filter(status=SessionStatus.OPEN, expires_at__lte=now)
               .filter(Q(payment__isnull=True) | ~Q(payment__status__in=[
                   *OPEN_INTENT, IntentStatus.SUCCEEDED]))
               .update(status=SessionStatus.EXPIRED, updated_at=now))
    return completed + expired


# ------------------------------------------------------------------------------ pay


@dataclass(frozen=True)
class Method:
    code: str
    label: str
    detail: str
    available: bool


def available_methods(session: CheckoutSession) -> list[Method]:
    """The methods the page offers: the session's allowed providers, each available when
    the merchant has an active default account for it."""
    active = set(ProviderAccount.objects.filter(
        merchant_id=session.merchant_id, provider__in=session.allowed_providers,
        is_active=True, is_default=True).values_list("provider", flat=True))
    methods = []
    for code in session.allowed_providers:
        cls = PROVIDERS.get(code)
        if cls is None:
            continue
        methods.append(Method(code=code, label=METHOD_LABELS.get(code, cls.display_name),
                              detail=METHOD_DETAILS.get(code, ""), available=code in active))
    return methods


def clean_phone(raw: str) -> str:
    """E.164 of a Kenyan M-Pesa number, or ValidationFailed with the page's message."""
    try:
        e164 = normalize_phone(raw or "", "KE")
    except PhoneError:
        raise ValidationFailed(PHONE_HINT, fields={"phone_number": [PHONE_HINT]},
                               code="invalid_phone") from None
    if not (e164.startswith("+2547") or e164.startswith("+2541")) or len(e164) != 13:
        raise ValidationFailed(PHONE_HINT, fields={"phone_number": [PHONE_HINT]},
                               code="invalid_phone")
    return e164


def _refuse_if_closed(session: CheckoutSession) -> None:
    if session.status == SessionStatus.COMPLETE:
        raise SessionClosed("This payment is already complete.", code="session_complete")
    if session.status == SessionStatus.EXPIRED:
        raise SessionClosed("This payment link has expired.", code="session_expired")
    if session.status == SessionStatus.CANCELLED:
        raise SessionClosed("This payment was cancelled.", code="session_cancelled")


def pay(session: CheckoutSession, *, provider: str, phone: str) -> CheckoutSession:
    """The customer chose ``provider`` and entered ``phone`` (raw): start the payment,
    or retry it (a new attempt on the same intent).

    Raises ValidationFailed (``phone_number``/``method``; nothing is sent),
    SessionClosed, or an ApplicationError from the payments service (e.g. the phone
    already has an open prompt). A second "Pay" while a prompt is open changes nothing.
    """
    session = sync(session)
    _refuse_if_closed(session)
    methods = {m.code: m for m in available_methods(session)}
    method = methods.get(provider)
    if method is None:
        raise ValidationFailed("Choose a payment method.",
                               fields={"method": ["Choose a payment method."]},
                               code="invalid_method")
    if not method.available:
        message = f"{method.label} is not available for this shop right now."
        raise ValidationFailed(message, fields={"method": [message]}, code="method_unavailable")
    e164 = clean_phone(phone)
    intent = session.payment
    if intent is not None and intent.status in OPEN_INTENT:
        return session  # a double submit: the prompt is already on its way
    if timezone.now() >= session.expires_at:
        sync(session)
        raise SessionClosed("This payment link has expired.", code="session_expired")

    if _attempts_made(session) >= _max_attempts():
        raise ApplicationError(
            "Too many tries on this payment link. Go back to the shop and start again.",
            code="too_many_attempts", status=429)

    if (intent is not None and intent.status in (IntentStatus.FAILED, IntentStatus.CANCELLED)
            and intent.phone == e164 and intent.provider == provider):
        if not intent.failure_retryable:
            message = intent.failure_message or "This payment cannot be retried."
            raise ApplicationError(message, code="not_retryable", status=422)
        try:
            payments.retry_payment(intent)
        except Conflict as exc:
            if exc.code not in ("not_retryable", "attempt_in_progress"):
                raise
            # Another request retried it first: nothing more to send.
        log.info("checkout_payment_retried", session_id=session.pk, intent_id=intent.pk)
    else:
        _start_intent(session, provider, e164)
    CheckoutSession.objects.filter(pk=session.pk).update(last_phone=e164,
                                                         updated_at=timezone.now())
    return sync(session)


def _max_attempts() -> int:
    return int(getattr(settings, "PESARAIL_CHECKOUT_MAX_ATTEMPTS", 10))


def _attempts_made(session: CheckoutSession) -> int:
    """Prompts sent for this session so far, over all its intents (a cap keeps a leaked
    link from being used to send prompt after prompt to phones)."""
    if session.intent_count == 0:
        return 0
    return PaymentAttempt.objects.filter(
        intent__merchant_id=session.merchant_id,
        intent__idempotency_key__startswith=session.intent_key_prefix).count()


def _start_intent(session: CheckoutSession, provider: str, e164: str) -> PaymentIntent:
    account = gateway.resolve_account(session.merchant, provider=provider, account_id=None)
    number = session.intent_count + 1
    spec = payments.PaymentSpec(
        merchant=session.merchant, account=account, money=session.money, phone=e164,
        idempotency_key=session.intent_key(number),
        description=session.description or session.merchant.name,
        reference=session.reference, metadata={"checkout_session": session.pk},
        customer=session.customer,
    )
    intent, created = payments.create_payment(spec)
    # Point the session at it (the first of concurrent requests wins; a replay finds the
    # same intent through the same key).
    CheckoutSession.objects.filter(pk=session.pk, intent_count=number - 1).update(
        payment=intent, intent_count=number, updated_at=timezone.now())
    log.info("checkout_payment_started", session_id=session.pk, intent_id=intent.pk,
             created=created, phone=mask_phone(e164))
    return intent


def cancel_session(session: CheckoutSession) -> CheckoutSession:
    """The customer gives up and goes back to the merchant. Refused while a prompt is
    open (the money could still move)."""
    session = sync(session)
    if session.status in (SessionStatus.CANCELLED, SessionStatus.EXPIRED):
        return session
    _refuse_if_closed(session)
    if session.payment is not None and session.payment.status in OPEN_INTENT:
        raise Conflict("A payment is in progress. Answer or cancel the M-Pesa prompt on "
                       "your phone first.", code="payment_in_progress")
    if not _set_status(session, SessionStatus.CANCELLED, cancelled_at=timezone.now()):
        return sync(session)
    return session


# -------------------------------------------------------------------------- refresh


def _seconds(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def refresh_if_stale(session: CheckoutSession) -> bool:
    """When the callback is late, ask the provider ourselves: the intent has been
    processing for ``PESARAIL_CHECKOUT_REFRESH_AFTER_SECONDS`` (20) and nobody asked in
    the last ``PESARAIL_CHECKOUT_REFRESH_EVERY_SECONDS`` (10). At most one page request
    per interval wins the right to ask (a conditional UPDATE). Returns whether it asked."""
    intent = session.payment
    if intent is None or intent.status not in OPEN_INTENT:
        return False
    attempt = payments.latest_queryable_attempt(intent)
    if attempt is None:
        return False
    now = timezone.now()
    after = timedelta(seconds=_seconds("PESARAIL_CHECKOUT_REFRESH_AFTER_SECONDS", 20))
    every = timedelta(seconds=_seconds("PESARAIL_CHECKOUT_REFRESH_EVERY_SECONDS", 10))
    started: datetime = attempt.requested_at or attempt.created_at
    if now - started < after:
        return False
    if attempt.last_queried_at is not None and now - attempt.last_queried_at < every:
        return False
    claimed = (CheckoutSession.objects.filter(pk=session.pk)
               .filter(Q(last_refresh_at__isnull=True) | Q(last_refresh_at__lte=now - every))
               .update(last_refresh_at=now))
    if not claimed:
        return False
    try:
        payments.refresh_payment(intent)
    except ApplicationError as exc:  # provider unreachable: the next poll tries again
        log.info("checkout_refresh_unavailable", session_id=session.pk, error=exc.message)
    log.info("checkout_refreshed", session_id=session.pk, intent_id=intent.pk)
    return True


# ----------------------------------------------------------------------- page state


@dataclass(frozen=True)
class PageState:
    """What the hosted page shows. ``name`` is one of: choose, waiting, failed, paid,
    expired, cancelled."""

    name: str
    title: str = ""
    message: str = ""
    retryable: bool = False
    phone_display: str = ""

    @property
    def terminal(self) -> bool:
        return self.name in ("paid", "expired", "cancelled")

    @property
    def polling(self) -> bool:
        return self.name == "waiting"


_FAILED_TITLES: dict[str, str] = {
    IntentStatus.CANCELLED: "Payment cancelled",
    IntentStatus.FAILED: "Payment failed",
    IntentStatus.EXPIRED: "No answer from your phone",
}


def page_state(session: CheckoutSession) -> PageState:
    if session.status == SessionStatus.COMPLETE:
        return PageState("paid", "Paid", "Thank you. Your payment was received.")
    if session.status == SessionStatus.EXPIRED:
        return PageState("expired", "This payment link has expired",
                         "Go back to the shop to start again.")
    if session.status == SessionStatus.CANCELLED:
        return PageState("cancelled", "Payment cancelled", "Nothing was paid.")
    intent = session.payment
    if intent is None:
        return PageState("choose")
    phone = _display_phone(intent.phone)
    if intent.status in OPEN_INTENT:
        return PageState("waiting", "Approve on your phone",
                         "Check your phone and enter your M-Pesa PIN.", phone_display=phone)
    if intent.status == IntentStatus.SUCCEEDED:  # sync() makes the session complete
        return PageState("paid", "Paid", "Thank you. Your payment was received.")
    message = intent.failure_message or "The payment did not go through."
    retryable = intent.failure_retryable or intent.status == IntentStatus.EXPIRED
    return PageState("failed", _FAILED_TITLES.get(intent.status, "Payment failed"), message,
                     retryable=retryable, phone_display=phone)


def _display_phone(e164: str) -> str:
    try:
        return national_format(e164)
    except PhoneError:
        return mask_phone(e164)


# ----------------------------------------------------------------------------- demo


def _demo_account(merchant: Merchant) -> ProviderAccount:
    """The merchant's M-Pesa account, or a new one on the Daraja simulator (environment
    ``sandbox``: its base URL is ``PESARAIL_SANDBOX_URL``, read at call time)."""
    from pesarail.providers import services as provider_services
    from pesarail.sandbox.daraja import DEFAULT_APP

    account = provider_services.default_account(merchant, "mpesa_ke")
    if account is not None:
        return account
    return provider_services.create_account(
        merchant, provider="mpesa_ke", name="M-Pesa sandbox (demo)", environment="sandbox",
        config={"shortcode": DEFAULT_APP.shortcode, "transaction_type": "CustomerPayBillOnline",
                "confirm_callbacks_with_query": False},
        credentials={"consumer_key": DEFAULT_APP.consumer_key,
                     "consumer_secret": DEFAULT_APP.consumer_secret,
                     "passkey": DEFAULT_APP.passkey},
    )


def create_demo_checkout_session(merchant: Merchant) -> CheckoutSession:
    """A ready checkout session for the demo: KES 1,500.00, M-Pesa, an hour to pay.
    Makes sure the merchant has an M-Pesa sandbox account first. Its URL is
    :func:`checkout_url`; the return URLs point at the demo's own API docs."""
    _demo_account(merchant)
    base = str(settings.PESARAIL_BASE_URL).rstrip("/")
    count = CheckoutSession.objects.filter(merchant_id=merchant.pk).count() + 1
    session, _created = create_session(
        merchant, money=Money.parse("1500", "KES"), reference=f"DEMO-{count:04d}",
        description="", allowed_providers=["mpesa_ke"],
        success_url=f"{base}/api/v1/docs/?demo=paid",
        cancel_url=f"{base}/api/v1/docs/?demo=cancelled",
        expires_in=3600,
    )
    return session
