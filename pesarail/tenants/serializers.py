from __future__ import annotations

from typing import Any

from rest_framework import serializers

from pesarail.common.phone import PhoneError, normalize_phone
from pesarail.tenants.models import ApiKey, Customer, KeyMode, Merchant


class MerchantSerializer(serializers.ModelSerializer[Merchant]):
    livemode = serializers.SerializerMethodField()

    class Meta:
        model = Merchant
        fields = ["id", "name", "country", "default_currency", "is_active", "livemode",
                  "created_at"]
        read_only_fields = fields

    def get_livemode(self, obj: Merchant) -> bool:
        principal = self.context["request"].user
        return bool(getattr(principal, "livemode", False))


class CustomerSerializer(serializers.ModelSerializer[Customer]):
    password = serializers.CharField(
        write_only=True, required=False, allow_blank=False, min_length=8, max_length=128,
        style={"input_type": "password"},
        help_text="Optional; lets the customer log in with POST /api/v1/auth/token/.",
    )
    username = serializers.RegexField(
        r"^[A-Za-z0-9_.@+\-]{1,150}$", max_length=150,
        error_messages={"invalid": "Use 1-150 letters, digits and _ . @ + - only."},
    )
    metadata = serializers.DictField(
        required=False, child=serializers.CharField(max_length=500, allow_blank=True),
        help_text="Up to 50 string key/value pairs for your own use.",
    )
    has_password = serializers.SerializerMethodField()

    class Meta:
        model = Customer
        fields = ["id", "username", "password", "name", "email", "phone_number",
                  "external_reference", "metadata", "is_active", "has_password", "created_at"]
        read_only_fields = ["id", "is_active", "has_password", "created_at"]

    def get_has_password(self, obj: Customer) -> bool:
        return bool(obj.password)

    def validate_phone_number(self, value: str) -> str:
        if not value:
            return ""
        merchant = self.context["request"].user.merchant
        try:
            return normalize_phone(value, country_hint=merchant.country)
        except PhoneError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def validate_metadata(self, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > 50:
            raise serializers.ValidationError("At most 50 keys.")
        if any(not 1 <= len(key) <= 40 for key in value):
            raise serializers.ValidationError("Keys must be 1-40 characters.")
        return value


class CustomerLoginSerializer(serializers.Serializer[Any]):
    merchant = serializers.CharField(max_length=32, help_text="The merchant id (mer_...).")
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, style={"input_type": "password"})


class CustomerTokenSerializer(serializers.Serializer[Any]):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`.")
    expires_at = serializers.DateTimeField()
    customer = CustomerSerializer()


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "mode", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at"]


class ApiKeyCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100, default="default")
    mode = serializers.ChoiceField(choices=KeyMode.choices, default=KeyMode.TEST)


class NewApiKeySerializer(ApiKeySerializer):
    secret = serializers.CharField(help_text="Shown once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]
