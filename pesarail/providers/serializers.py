"""API shapes for provider accounts. Credentials are write-only everywhere: responses
name the credentials that are set (``credentials_set``) and show last-four hints for
non-secret identifiers only."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pesarail.providers.models import Environment, ProviderAccount
from pesarail.providers.registry import PROVIDERS, effective_config


def _describe(section: str) -> str:
    lines = []
    for code, cls in PROVIDERS.items():
        specs = cls.credential_fields if section == "credentials" else cls.config_fields
        parts = []
        for spec in specs:
            flags = ["required" if spec.required and spec.default is None else "optional"]
            if spec.secret:
                flags.append("secret")
            if spec.choices:
                flags.append(" | ".join(spec.choices))
            parts.append(f"`{spec.name}` ({', '.join(flags)})")
        lines.append(f"{code}: " + ", ".join(parts))
    return "; ".join(lines)


CREDENTIALS_HELP = (
    "Write-only; never returned. Keys per provider: " + _describe("credentials")
    + ". On update, given keys replace stored ones and `null` removes one."
)
CONFIG_HELP = (
    "Non-secret settings. Keys per provider: " + _describe("config")
    + ". On update, given keys merge into the stored config and `null` removes one "
    "(its default applies)."
)
class StrictBooleanField(serializers.BooleanField):
    """JSON ``true``/``false`` only (DRF would also take 0, "yes", "on"...)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


BASE_URL_HELP = "Required for environment `custom` (e.g. a simulator); otherwise omit."


class ProviderAccountSerializer(serializers.ModelSerializer[ProviderAccount]):
    base_url = serializers.SerializerMethodField(
        help_text="Where requests go (the provider's URL for sandbox/production, "
        "PESARAIL_SANDBOX_URL for sandbox when set, or the custom URL)."
    )
    config = serializers.SerializerMethodField(help_text="Config with defaults filled in.")
    credentials_set = serializers.SerializerMethodField(
        help_text="Names of the credentials stored; their values are never returned."
    )
    credential_hints = serializers.SerializerMethodField(
        help_text="Last four characters of non-secret identifiers (e.g. consumer_key)."
    )
    callback_url = serializers.CharField(
        read_only=True,
        help_text="Where the provider posts results for this account. It contains this "
        "account's secret path token; keep it private.",
    )

    class Meta:
        model = ProviderAccount
        fields = ["id", "provider", "name", "environment", "base_url", "config",
                  "credentials_set", "credential_hints", "callback_url", "is_active",
                  "is_default", "last_tested_at", "last_test_ok", "last_test_message",
                  "created_at", "updated_at"]
        read_only_fields = fields

    def get_base_url(self, obj: ProviderAccount) -> str:
        return obj.api_base_url

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_config(self, obj: ProviderAccount) -> dict[str, Any]:
        return effective_config(obj)

    def get_credentials_set(self, obj: ProviderAccount) -> list[str]:
        return obj.credentials_set

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
    def get_credential_hints(self, obj: ProviderAccount) -> dict[str, str]:
        return obj.credential_hints()


class _Writable(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    environment = serializers.ChoiceField(choices=Environment.choices)
    base_url = serializers.CharField(max_length=300, allow_blank=True, help_text=BASE_URL_HELP)
    config = serializers.DictField(child=serializers.JSONField(), help_text=CONFIG_HELP)
    credentials = serializers.DictField(
        child=serializers.CharField(allow_null=True, allow_blank=True, trim_whitespace=False),
        write_only=True, help_text=CREDENTIALS_HELP,
    )
    is_default = StrictBooleanField(
        help_text="Use this account for new payments with this provider (one per merchant "
        "and provider); setting it unsets the previous default."
    )


class ProviderAccountCreateSerializer(_Writable):
    provider = serializers.ChoiceField(choices=[(c, k.display_name) for c, k in PROVIDERS.items()])
    environment = serializers.ChoiceField(choices=Environment.choices,
                                          default=Environment.SANDBOX)
    base_url = serializers.CharField(max_length=300, allow_blank=True, required=False,
                                     default="", help_text=BASE_URL_HELP)
    config = serializers.DictField(child=serializers.JSONField(), required=False, default=dict,
                                   help_text=CONFIG_HELP)
    credentials = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        write_only=True, help_text=CREDENTIALS_HELP,
    )
    is_default = StrictBooleanField(
        required=False, allow_null=True, default=None,
        help_text="Default: true when the merchant has no default account for this "
        "provider yet.",
    )


class ProviderAccountUpdateSerializer(_Writable):
    is_active = StrictBooleanField(help_text="false stops using the account.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


class CredentialTestSerializer(serializers.Serializer[Any]):
    ok = serializers.BooleanField()
    message = serializers.CharField(help_text="Human explanation; never contains a secret.")
    tested_at = serializers.DateTimeField()
