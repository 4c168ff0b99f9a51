"""Checkout sessions: a merchant's request to be paid on pesarail's hosted page.

A session holds what the merchant asked for (amount, reference, the providers the
customer may choose, where to send the customer afterwards) and, once the customer has
chosen a method and entered a phone, points at the payment intent collecting the money.
"Try again" makes a new attempt on that same intent. Only when that intent can no longer
take an attempt (its prompt expired, or the customer switched to another phone number)
does the session start a new intent; ``payment`` then points at the newest one.

``status`` changes only through :mod:`pesarail.checkout.services`, always as a
conditional UPDATE on the old status:

* ``open`` -> ``complete`` (a payment succeeded), ``expired`` (the clock passed
  ``expires_at`` with no payment in flight) or ``cancelled`` (the customer went back);
* ``expired``/``cancelled`` -> ``complete`` only when a payment succeeds late (the
  money has moved; the payments app flags that intent for review).
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models import Q

from pesarail.common.models import TimestampedModel, id_field
from pesarail.common.money import Money


class SessionStatus(models.TextChoices):
    OPEN = "open", "Open"
    COMPLETE = "complete", "Complete (paid)"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled by the customer"


class CheckoutSession(TimestampedModel):
    id = id_field("cs")
    merchant = models.ForeignKey("tenants.Merchant", on_delete=models.PROTECT,
                                 related_name="checkout_sessions")
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    reference = models.CharField(max_length=100,
                                 help_text="The merchant's own reference (order id).")
    description = models.CharField(max_length=255, blank=True, default="")
    allowed_providers = models.JSONField(
        default=list, help_text="Provider codes the customer may choose, in display order.")
    success_url = models.URLField(max_length=2000)
    cancel_url = models.URLField(max_length=2000)
    customer = models.ForeignKey("tenants.Customer", null=True, blank=True,
                                 on_delete=models.PROTECT, related_name="checkout_sessions")
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=SessionStatus.choices,
                              default=SessionStatus.OPEN)
    payment = models.ForeignKey(
        "payments.PaymentIntent", null=True, blank=True, on_delete=models.PROTECT,
        related_name="checkout_sessions",
        help_text="The newest intent collecting this session's money (null until the "
                  "customer pays).")
    intent_count = models.PositiveSmallIntegerField(
        default=0, help_text="Intents started for this session (the idempotency key of the "
                             "next one is derived from it).")
    last_phone = models.CharField(max_length=16, blank=True, default="",
                                  help_text="E.164 of the last number used (to pre-fill).")
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    last_refresh_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the status page last asked the provider itself (rate limit).")
    idempotency_key = models.CharField(
        max_length=255, blank=True, default="",
        help_text="Derived from the creating request's Idempotency-Key (backstop).")

    class Meta:
        ordering: ClassVar = ["-id"]
        constraints: ClassVar = [
            models.CheckConstraint(condition=Q(amount_minor__gt=0),
                                   name="checkout_session_amount_positive"),
            models.CheckConstraint(condition=Q(status__in=SessionStatus.values),
                                   name="checkout_session_known_status"),
            models.UniqueConstraint(fields=["merchant", "idempotency_key"],
                                    condition=~Q(idempotency_key=""),
                                    name="checkout_session_unique_idem_key"),
        ]
        indexes: ClassVar = [
            models.Index(fields=["merchant", "status"], name="checkout_merchant_status"),
            models.Index(fields=["merchant", "reference"], name="checkout_merchant_ref"),
            models.Index(fields=["status", "expires_at"], name="checkout_status_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.money.format()} {self.status}"

    @property
    def money(self) -> Money:
        return Money(self.amount_minor, self.currency)

    @property
    def intent_key_prefix(self) -> str:
        """Every intent of this session has an idempotency key starting with this."""
        return f"checkout:{self.pk}:"

    def intent_key(self, number: int) -> str:
        return f"{self.intent_key_prefix}{number}"
