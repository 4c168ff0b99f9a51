"""Provider accounts (a merchant's credentials for one provider) and shared tokens."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from pesarail.common.models import TimestampedModel, id_field
from pesarail.providers.crypto import EncryptedJSONField, EncryptedTextField

if TYPE_CHECKING:
    from pesarail.providers.base import ProviderClass


def provider_choices() -> list[tuple[str, str]]:
    """Choices from the registry (called lazily by Django, so no import cycle)."""
    from pesarail.providers.registry import PROVIDERS

    return [(code, cls.display_name) for code, cls in PROVIDERS.items()]


def new_callback_token() -> str:
    """An unguessable path token for this account's callback URL (256 bits)."""
    return secrets.token_urlsafe(32)


class Environment(models.TextChoices):
    SANDBOX = "sandbox", "Sandbox"
    PRODUCTION = "production", "Production"
    CUSTOM = "custom", "Custom base URL"


class ProviderAccount(TimestampedModel):
    """A merchant's account with one provider: where to call it, its non-secret config
    and its credentials (encrypted at rest; never shown after they are written)."""

    id = id_field("pac")
    merchant = models.ForeignKey(
        "tenants.Merchant", on_delete=models.CASCADE, related_name="provider_accounts"
    )
    provider = models.CharField(max_length=32, choices=provider_choices)
    name = models.CharField(max_length=100)
    environment = models.CharField(
        max_length=10, choices=Environment.choices, default=Environment.SANDBOX
    )
    base_url = models.CharField(
        max_length=300, blank=True, default="",
        help_text="Only for environment 'custom'; sandbox and production use the "
        "provider's (or PESARAIL_SANDBOX_URL) at call time.",
    )
    config = models.JSONField(default=dict, blank=True, help_text="Non-secret settings.")
    credentials = EncryptedJSONField(default=dict, help_text="Encrypted at rest.")
    callback_token = models.CharField(
        max_length=64, unique=True, default=new_callback_token, editable=False
    )
    is_active = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_message = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering: ClassVar = ["-id"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["merchant", "provider"],
                condition=Q(is_default=True),
                name="provider_account_one_default",
            )
        ]
        indexes: ClassVar = [models.Index(fields=["merchant", "provider"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider}, {self.environment})"

    @property
    def provider_class(self) -> ProviderClass:
        from pesarail.providers.registry import provider_class

        return provider_class(self.provider)

    @property
    def api_base_url(self) -> str:
        """Where the adapter sends requests (settings read now, not at import)."""
        if self.environment == Environment.CUSTOM:
            return self.base_url.rstrip("/")
        if self.environment == Environment.SANDBOX and settings.PESARAIL_SANDBOX_URL:
            return str(settings.PESARAIL_SANDBOX_URL).rstrip("/")
        return self.provider_class.default_base_urls[self.environment].rstrip("/")

    @property
    def callback_url(self) -> str:
        """Where the provider posts results for this account."""
        base = str(settings.PESARAIL_BASE_URL).rstrip("/")
        return f"{base}/hooks/{self.provider}/{self.callback_token}/"

    @property
    def credentials_set(self) -> list[str]:
        """Names of the credentials stored (never their values)."""
        return sorted(k for k, v in (self.credentials or {}).items() if v not in (None, ""))

    def credential_hints(self) -> dict[str, str]:
        """Last four characters of the credentials marked ``hint`` (e.g. consumer key)."""
        creds: dict[str, Any] = self.credentials or {}
        hints: dict[str, str] = {}
        for spec in self.provider_class.credential_fields:
            value = creds.get(spec.name)
            if spec.hint and not spec.secret and isinstance(value, str) and len(value) >= 8:
                hints[spec.name] = "…" + value[-4:]
        return hints


class ProviderToken(models.Model):
    """One provider access token per credential set, shared by every thread and process
    (design.md section 4, rule 5). ``credential_fingerprint`` is a SHA-256 of the base URL
    and the credentials that obtain the token; the token itself is encrypted."""

    id = id_field("ptk")
    provider = models.CharField(max_length=32)
    credential_fingerprint = models.CharField(max_length=64, unique=True)
    access_token = EncryptedTextField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    refresh_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "provider access token"

    def __str__(self) -> str:
        return f"{self.provider} token {self.credential_fingerprint[:12]}…"
