"""Request and response bodies for payments. Amounts are decimal strings."""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pesarail.common.money import Money
from pesarail.payments import render
from pesarail.payments.models import (
    IntentKind,
    IntentStatus,
    PaymentAttempt,
    PaymentEvent,
    PaymentIntent,
)

MAX_METADATA_KEYS = 50
MAX_METADATA_BYTES = 8 * 1024


def validate_metadata(value: Any) -> None:
    if not isinstance(value, dict):
        raise serializers.ValidationError("Must be a JSON object.")
    if len(value) > MAX_METADATA_KEYS:
        raise serializers.ValidationError(f"At most {MAX_METADATA_KEYS} keys.")
    if any(len(str(key)) > 40 for key in value):
        raise serializers.ValidationError("Keys are at most 40 characters.")
    if len(json.dumps(value, default=str)) > MAX_METADATA_BYTES:
        raise serializers.ValidationError(f"At most {MAX_METADATA_BYTES} bytes as JSON.")


class PaymentCreateSerializer(serializers.Serializer[Any]):
    amount = serializers.CharField(max_length=32, help_text='A decimal string, e.g. "100.00".')
    currency = serializers.CharField(
        max_length=3, required=False,
        help_text="ISO 4217 code; default: the merchant's default currency.")
    provider = serializers.CharField(
        max_length=32, required=False,
        help_text="Provider code, e.g. `mpesa_ke`: the merchant's default account for it "
                  "is used. Or give `provider_account`.")
    provider_account = serializers.CharField(max_length=40, required=False,
                                             help_text="A provider account id (`pac_…`).")
    phone_number = serializers.CharField(
        max_length=32, help_text="The payer's phone: +254…, 254… or 07…")
    description = serializers.CharField(max_length=255, required=False, allow_blank=True,
                                        default="")
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                      default="", help_text="Your own reference (order id).")
    metadata = serializers.DictField(required=False, default=dict,
                                     validators=[validate_metadata])
    customer = serializers.CharField(max_length=40, required=False,
                                     help_text="A customer id (`cus_…`) of this merchant.")


class TopUpSerializer(serializers.Serializer[Any]):
    amount = serializers.CharField(max_length=32, help_text='A decimal string, e.g. "100.00".')
    provider = serializers.CharField(max_length=32, required=False,
                                     help_text="Provider code, e.g. `mpesa_ke`.")
    provider_account = serializers.CharField(max_length=40, required=False)
    phone_number = serializers.CharField(
        max_length=32, required=False,
        help_text="The phone that pays; default: the customer's phone number.")


class NextActionSerializer(serializers.Serializer[Any]):
    type = serializers.ChoiceField(choices=["phone_prompt"])
    phone = serializers.CharField(help_text="Masked, e.g. +254708***149.")
    message = serializers.CharField()
    expires_at = serializers.DateTimeField()


class FailureSerializer(serializers.Serializer[Any]):
    code = serializers.CharField()
    message = serializers.CharField()
    retryable = serializers.BooleanField()


class ProviderReferencesSerializer(serializers.Serializer[Any]):
    checkout_request_id = serializers.CharField(allow_null=True)
    merchant_request_id = serializers.CharField(allow_null=True)
    receipt = serializers.CharField(allow_null=True)


class PaymentAttemptSerializer(serializers.ModelSerializer[PaymentAttempt]):
    checkout_request_id = serializers.CharField(allow_null=True, read_only=True)

    class Meta:
        model = PaymentAttempt
        fields = ["id", "number", "state", "push_outcome", "checkout_request_id",
                  "merchant_request_id", "result_code", "result_message", "receipt",
                  "requested_at", "resolved_at", "last_queried_at", "query_count",
                  "created_at"]
        read_only_fields = fields


class PaymentEventSerializer(serializers.ModelSerializer[PaymentEvent]):
    attempt = serializers.CharField(source="attempt_id", allow_null=True, read_only=True)
    data = serializers.DictField(read_only=True)  # type: ignore[assignment]

    class Meta:
        model = PaymentEvent
        fields = ["id", "kind", "from_status", "to_status", "message", "attempt", "data",
                  "created_at"]
        read_only_fields = fields


def _attempts(intent: PaymentIntent) -> list[PaymentAttempt]:
    cache = getattr(intent, "_prefetched_objects_cache", {})
    if "attempts" in cache:
        return sorted(cache["attempts"], key=lambda a: a.number)
    return list(intent.attempts.order_by("number"))


class PaymentIntentSerializer(serializers.ModelSerializer[PaymentIntent]):
    object = serializers.SerializerMethodField()
    amount = serializers.SerializerMethodField()
    phone_number = serializers.CharField(source="phone", read_only=True)
    provider_account = serializers.CharField(source="provider_account_id", read_only=True)
    customer = serializers.CharField(source="customer_id", allow_null=True, read_only=True)
    wallet = serializers.CharField(source="wallet_id", allow_null=True, read_only=True)
    status = serializers.ChoiceField(choices=IntentStatus.choices, read_only=True)
    kind = serializers.ChoiceField(choices=IntentKind.choices, read_only=True)
    metadata = serializers.DictField(read_only=True)
    next_action = serializers.SerializerMethodField()
    failure = serializers.SerializerMethodField()
    provider_references = serializers.SerializerMethodField()

    class Meta:
        model = PaymentIntent
        fields = ["id", "object", "kind", "status", "amount", "amount_minor", "currency",
                  "provider", "provider_account", "phone_number", "description", "reference",
                  "metadata", "customer", "wallet", "next_action", "provider_references",
                  "failure", "needs_review", "review_reason", "late_success", "attempt_count",
                  "expires_at", "succeeded_at", "created_at", "updated_at"]
        read_only_fields = fields

    def get_object(self, intent: PaymentIntent) -> str:
        return "payment_intent"

    @extend_schema_field(serializers.CharField(help_text='Decimal string, e.g. "100.00".'))
    def get_amount(self, intent: PaymentIntent) -> str:
        return Money(intent.amount_minor, intent.currency).to_decimal_string()

    # The logic lives in pesarail.payments.render (which renders the API's bodies); the
    # serializer keeps the shapes for the schema and delegates the values.
    @extend_schema_field(NextActionSerializer(allow_null=True))
    def get_next_action(self, intent: PaymentIntent) -> dict[str, Any] | None:
        return render.next_action(intent, _attempts(intent))

    @extend_schema_field(FailureSerializer(allow_null=True))
    def get_failure(self, intent: PaymentIntent) -> dict[str, Any] | None:
        return render.failure(intent)

    @extend_schema_field(ProviderReferencesSerializer())
    def get_provider_references(self, intent: PaymentIntent) -> dict[str, Any]:
        return render.provider_references(intent, _attempts(intent))


class PaymentIntentDetailSerializer(PaymentIntentSerializer):
    attempts = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()

    class Meta(PaymentIntentSerializer.Meta):
        fields = [*PaymentIntentSerializer.Meta.fields, "attempts", "events"]
        read_only_fields = fields

    @extend_schema_field(PaymentAttemptSerializer(many=True))
    def get_attempts(self, intent: PaymentIntent) -> Any:
        return PaymentAttemptSerializer(_attempts(intent), many=True).data

    @extend_schema_field(PaymentEventSerializer(many=True))
    def get_events(self, intent: PaymentIntent) -> Any:
        return PaymentEventSerializer(intent.events.order_by("id"), many=True).data
