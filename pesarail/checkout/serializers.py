"""Checkout session API shapes. Amounts are decimal strings (``"1500.00"``) with the
integer minor units beside them; never floats."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pesarail.checkout import services
from pesarail.checkout.models import CheckoutSession, SessionStatus
from pesarail.payments.models import IntentStatus
from pesarail.providers.registry import PROVIDERS


class CheckoutSessionCreateSerializer(serializers.Serializer[Any]):
    amount = serializers.CharField(max_length=40, help_text='Decimal string, e.g. "1500.00".')
    currency = serializers.CharField(
        max_length=3, required=False,
        help_text="ISO 4217 code; defaults to the merchant's default currency.")
    reference = serializers.CharField(max_length=100,
                                      help_text="Your own reference, e.g. the order id.")
    description = serializers.CharField(max_length=255, required=False, allow_blank=True,
                                        default="")
    allowed_providers = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(PROVIDERS)), required=False,
        min_length=1, max_length=10,
        help_text="Providers the customer may choose, in display order. Default: every "
                  "provider the merchant has an active account for.")
    success_url = serializers.CharField(
        max_length=2000, help_text="http(s) URL; the customer returns here after paying, "
                                   "with `session_id` added to the query string.")
    cancel_url = serializers.CharField(
        max_length=2000, help_text="http(s) URL; the customer returns here after giving up "
                                   "(or from an expired link), with `session_id` added.")
    customer = serializers.CharField(max_length=32, required=False,
                                     help_text="Optional id of one of your customers.")
    expires_in = serializers.IntegerField(
        required=False, default=services.DEFAULT_EXPIRES_IN,
        min_value=services.MIN_EXPIRES_IN, max_value=services.MAX_EXPIRES_IN,
        help_text="Seconds until the link stops taking payments (default 1800).")

    def validate_reference(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("May not be blank.")
        return value


class CheckoutSessionSerializer(serializers.Serializer[CheckoutSession]):
    id = serializers.CharField(read_only=True)
    object = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=SessionStatus.choices, read_only=True)
    amount = serializers.SerializerMethodField()
    amount_minor = serializers.IntegerField(read_only=True)
    currency = serializers.CharField(read_only=True)
    reference = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    allowed_providers = serializers.ListField(child=serializers.CharField(), read_only=True)
    success_url = serializers.CharField(read_only=True)
    cancel_url = serializers.CharField(read_only=True)
    customer = serializers.CharField(source="customer_id", read_only=True, allow_null=True)
    payment = serializers.CharField(
        source="payment_id", read_only=True, allow_null=True,
        help_text="The payment intent collecting the money (null until the customer pays).")
    payment_status = serializers.SerializerMethodField()
    expires_at = serializers.DateTimeField(read_only=True)
    completed_at = serializers.DateTimeField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)

    @extend_schema_field(serializers.ChoiceField(choices=["checkout_session"]))
    def get_object(self, obj: CheckoutSession) -> str:
        return "checkout_session"

    @extend_schema_field(serializers.URLField(help_text="The hosted payment page."))
    def get_url(self, obj: CheckoutSession) -> str:
        return services.checkout_url(obj)

    @extend_schema_field(serializers.CharField(help_text='Decimal string, e.g. "1500.00".'))
    def get_amount(self, obj: CheckoutSession) -> str:
        return obj.money.to_decimal_string()

    @extend_schema_field(serializers.ChoiceField(
        choices=IntentStatus.values, allow_null=True,
        help_text="The payment intent's status (null until the customer pays)."))
    def get_payment_status(self, obj: CheckoutSession) -> str | None:
        return obj.payment.status if obj.payment_id and obj.payment else None
