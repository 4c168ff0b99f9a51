"""Payment intents, their attempts, the event timeline and raw provider callbacks.

* :class:`PaymentIntent` -- what the merchant asked for (amount, phone, reference) and
  where it stands (``status``). Its status changes only through
  :func:`pesarail.payments.states.transition`: a conditional UPDATE on the old status
  plus a :class:`PaymentEvent` row, in one transaction.
* :class:`PaymentAttempt` -- one try at the provider (one STK push). An intent that
  failed or was cancelled may be retried: a new attempt on the same intent.
* :class:`PaymentEvent` -- the append-only timeline (rows are never updated or
  deleted).
* :class:`CallbackRecord` -- every inbound provider request, stored raw *before* it is
  authenticated, with what became of it.

Money itself lives in the ledger (``pesarail.ledger``); these rows only point at the
journal entry a success posted.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from django.db.models import Q

from pesarail.common.models import TimestampedModel, id_field
from pesarail.common.money import Money


class IntentStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # created; the prompt is being sent
    PROCESSING = "processing", "Processing"  # prompt sent (or outcome unknown): waiting
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


class IntentKind(models.TextChoices):
    PAYMENT = "payment", "Payment to the merchant"
    WALLET_TOP_UP = "wallet_top_up", "Wallet top-up"


class AttemptState(models.TextChoices):
    CREATED = "created", "Created (push being sent)"
    PENDING = "pending", "Pending (provider accepted the push)"
    UNKNOWN = "unknown", "Unknown (push timed out; resolve by query or callback)"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


#: Attempts whose prompt may still be live on the customer's phone.
OPEN_ATTEMPT_STATES: tuple[str, ...] = (
    AttemptState.CREATED, AttemptState.PENDING, AttemptState.UNKNOWN,
)


class PushOutcome(models.TextChoices):
    NOT_SENT = "", "Not sent yet"
    ACCEPTED = "accepted", "Accepted by the provider"
    REFUSED = "refused", "Refused by the provider"
    UNAVAILABLE = "unavailable", "Provider unavailable (nothing sent)"
    TIMEOUT = "timeout", "Timed out (outcome unknown)"


class PaymentIntent(TimestampedModel):
    id = id_field("pay")
    merchant = models.ForeignKey("tenants.Merchant", on_delete=models.PROTECT,
                                 related_name="payment_intents")
    kind = models.CharField(max_length=16, choices=IntentKind.choices,
                            default=IntentKind.PAYMENT)
    provider = models.CharField(max_length=32)
    provider_account = models.ForeignKey("providers.ProviderAccount", on_delete=models.PROTECT,
                                         related_name="payment_intents")
    customer = models.ForeignKey("tenants.Customer", null=True, blank=True,
                                 on_delete=models.PROTECT, related_name="payment_intents")
    wallet = models.ForeignKey("wallets.Wallet", null=True, blank=True,
                               on_delete=models.PROTECT, related_name="top_ups",
                               help_text="The wallet a top-up credits (top-ups only).")
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    phone = models.CharField(max_length=16, help_text="E.164, e.g. +254708374149")
    description = models.CharField(max_length=255, blank=True, default="")
    reference = models.CharField(max_length=100, blank=True, default="",
                                 help_text="The merchant's own reference (order id).")
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=IntentStatus.choices,
                              default=IntentStatus.PENDING)
    failure_code = models.CharField(max_length=40, blank=True, default="")
    failure_message = models.CharField(max_length=500, blank=True, default="")
    failure_retryable = models.BooleanField(default=False)
    expires_at = models.DateTimeField()
    succeeded_at = models.DateTimeField(null=True, blank=True)
    provider_receipt = models.CharField(max_length=64, blank=True, default="")
    ledger_entry = models.ForeignKey("ledger.JournalEntry", null=True, blank=True,
                                     on_delete=models.PROTECT, related_name="+")
    needs_review = models.BooleanField(default=False)
    review_reason = models.CharField(max_length=500, blank=True, default="")
    late_success = models.BooleanField(
        default=False, help_text="Succeeded after it had expired, been cancelled or failed.")
    attempt_count = models.PositiveSmallIntegerField(default=0)
    idempotency_key = models.CharField(
        max_length=255, help_text="Derived from the request's Idempotency-Key (backstop).")

    class Meta:
        ordering: ClassVar = ["-id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["merchant", "idempotency_key"],
                                    name="payment_intent_unique_idempotency_key"),
            models.CheckConstraint(condition=Q(amount_minor__gt=0),
                                   name="payment_intent_amount_positive"),
            models.CheckConstraint(condition=Q(status__in=IntentStatus.values),
                                   name="payment_intent_known_status"),
            models.CheckConstraint(
                condition=(Q(kind=IntentKind.WALLET_TOP_UP, wallet__isnull=False,
                             customer__isnull=False)
                           | (Q(kind=IntentKind.PAYMENT) & Q(wallet__isnull=True))),
                name="payment_intent_top_up_has_wallet",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["merchant", "status"], name="pay_intent_merchant_status"),
            models.Index(fields=["merchant", "reference"], name="pay_intent_merchant_ref"),
            models.Index(fields=["merchant", "phone"], name="pay_intent_merchant_phone"),
            models.Index(fields=["status", "expires_at"], name="pay_intent_status_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.money.format()} {self.status}"

    @property
    def money(self) -> Money:
        return Money(self.amount_minor, self.currency)

    @property
    def is_open(self) -> bool:
        return self.status in (IntentStatus.PENDING, IntentStatus.PROCESSING)


class PaymentAttempt(TimestampedModel):
    id = id_field("att")
    intent = models.ForeignKey(PaymentIntent, on_delete=models.PROTECT, related_name="attempts")
    number = models.PositiveSmallIntegerField(help_text="1 for the first try, 2 for a retry…")
    provider = models.CharField(max_length=32)
    provider_account = models.ForeignKey("providers.ProviderAccount", on_delete=models.PROTECT,
                                         related_name="+")
    phone = models.CharField(max_length=16)
    state = models.CharField(max_length=12, choices=AttemptState.choices,
                             default=AttemptState.CREATED)
    push_outcome = models.CharField(max_length=12, choices=PushOutcome.choices, blank=True,
                                    default=PushOutcome.NOT_SENT)
    # NULL, not "", until the provider names it: the unique index skips NULLs.
    checkout_request_id = models.CharField(  # noqa: DJ001
        max_length=100, null=True, blank=True,
        help_text="The provider's reference (Daraja CheckoutRequestID).")
    merchant_request_id = models.CharField(max_length=100, blank=True, default="")
    next_action = models.JSONField(default=dict, blank=True)
    result_code = models.CharField(max_length=40, blank=True, default="")
    result_message = models.CharField(max_length=500, blank=True, default="")
    provider_message = models.CharField(max_length=500, blank=True, default="")
    receipt = models.CharField(max_length=64, blank=True, default="")
    requested_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    last_queried_at = models.DateTimeField(null=True, blank=True)
    query_count = models.PositiveIntegerField(default=0)
    reconcile_lease_until = models.DateTimeField(
        null=True, blank=True,
        help_text="Set while a reconciler works on the attempt (so no other one does).")
    ledger_entry = models.ForeignKey("ledger.JournalEntry", null=True, blank=True,
                                     on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering: ClassVar = ["intent", "number"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["intent", "number"],
                                    name="payment_attempt_unique_number"),
            models.UniqueConstraint(
                fields=["provider", "checkout_request_id"],
                condition=Q(checkout_request_id__isnull=False),
                name="payment_attempt_unique_provider_reference",
            ),
            # The per-phone throttle: one open prompt per phone per provider account.
            models.UniqueConstraint(
                fields=["provider_account", "phone"],
                condition=Q(state__in=OPEN_ATTEMPT_STATES),
                name="payment_attempt_one_open_prompt_per_phone",
            ),
            models.UniqueConstraint(
                fields=["intent"],
                condition=Q(state__in=OPEN_ATTEMPT_STATES),
                name="payment_attempt_one_open_per_intent",
            ),
            models.CheckConstraint(condition=Q(state__in=AttemptState.values),
                                   name="payment_attempt_known_state"),
        ]
        indexes: ClassVar = [
            models.Index(fields=["state", "requested_at"], name="pay_attempt_state_requested"),
            models.Index(fields=["provider_account", "phone", "state"],
                         name="pay_attempt_account_phone"),
        ]

    def __str__(self) -> str:
        return f"{self.id} #{self.number} {self.state}"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_ATTEMPT_STATES


class PaymentEvent(models.Model):
    """One line of an intent's timeline. Append-only: never updated, never deleted.

    A status change has ``from_status``/``to_status``; other events (a prompt sent, a
    result flagged for review, a duplicate payment) leave them blank.
    """

    id = models.BigAutoField(primary_key=True)
    intent = models.ForeignKey(PaymentIntent, on_delete=models.PROTECT, related_name="events")
    attempt = models.ForeignKey(PaymentAttempt, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="events")
    kind = models.CharField(max_length=40)
    from_status = models.CharField(max_length=12, blank=True, default="")
    to_status = models.CharField(max_length=12, blank=True, default="")
    message = models.CharField(max_length=500, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering: ClassVar = ["id"]

    def __str__(self) -> str:
        change = f" {self.from_status}->{self.to_status}" if self.to_status else ""
        return f"{self.intent_id} {self.kind}{change}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("payment events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("payment events are append-only")


class CallbackStatus(models.TextChoices):
    RECEIVED = "received", "Received (not processed yet, or waiting for confirmation)"
    REJECTED = "rejected", "Rejected (not authentic, malformed or unknown payment)"
    DUPLICATE = "duplicate", "Duplicate (already applied)"
    APPLIED = "applied", "Applied"
    FLAGGED = "flagged", "Flagged for review (not credited)"
    IGNORED = "ignored", "Ignored (the attempt was already resolved)"
    ERROR = "error", "Error while processing"


class CallbackRecord(models.Model):
    """One inbound provider request, stored raw before anything else happens.

    The URL's secret token is never stored, only its SHA-256 (``token_hash``); headers
    are stored with secrets redacted.
    """

    id = id_field("cbk")
    provider = models.CharField(max_length=32)
    provider_account = models.ForeignKey("providers.ProviderAccount", null=True, blank=True,
                                         on_delete=models.PROTECT, related_name="+")
    token_hash = models.CharField(max_length=64, db_index=True)
    method = models.CharField(max_length=10)
    headers = models.JSONField(default=dict, blank=True)
    body = models.BinaryField()
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=CallbackStatus.choices,
                              default=CallbackStatus.RECEIVED)
    reason_code = models.CharField(max_length=40, blank=True, default="")
    reason = models.CharField(max_length=500, blank=True, default="")
    error = models.TextField(blank=True, default="")
    checkout_request_id = models.CharField(max_length=100, blank=True, default="")
    result_code = models.CharField(max_length=40, blank=True, default="")
    # NULL until the callback is matched and applied: the unique index skips NULLs.
    dedupe_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    attempt = models.ForeignKey(PaymentAttempt, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="callbacks")

    class Meta:
        ordering: ClassVar = ["-id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["provider", "dedupe_key"],
                                    condition=Q(dedupe_key__isnull=False),
                                    name="callback_record_unique_event"),
            models.CheckConstraint(condition=Q(status__in=CallbackStatus.values),
                                   name="callback_record_known_status"),
        ]
        indexes: ClassVar = [
            models.Index(fields=["provider", "checkout_request_id"],
                         name="callback_provider_checkout"),
            models.Index(fields=["status", "received_at"], name="callback_status_received"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.provider} {self.status}"

    @property
    def body_text(self) -> str:
        return bytes(self.body or b"").decode("utf-8", errors="replace")
