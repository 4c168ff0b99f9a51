"""Admin for provider accounts and tokens.

Credentials are not in the admin at all -- no field, no widget, not even write-only:
they are set through the API (``PATCH /api/v1/provider-accounts/{id}/``), which
validates them per provider. The admin shows which credentials are set, masks the
callback URL's secret token, lets staff deactivate accounts and test credentials.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from unfold.admin import ModelAdmin

from pesarail.providers import services
from pesarail.providers.models import ProviderAccount, ProviderToken


def _masked_callback_url(account: ProviderAccount) -> str:
    url = account.callback_url
    token = account.callback_token
    return url.replace(token, token[:4] + "…") if token else url


@admin.register(ProviderAccount)
class ProviderAccountAdmin(ModelAdmin):
    list_display = ["name", "merchant", "provider", "environment", "is_active", "is_default",
                    "last_test_ok", "last_tested_at", "created_at"]
    list_filter = ["provider", "environment", "is_active", "is_default", "last_test_ok"]
    search_fields = ["name", "id", "merchant__name", "merchant__id"]
    list_select_related = ["merchant"]
    fields = ["id", "merchant", "provider", "name", "environment", "base_url", "config",
              "credentials_stored", "callback", "is_active", "is_default", "last_tested_at",
              "last_test_ok", "last_test_message", "created_at", "updated_at"]
    readonly_fields = ["id", "merchant", "provider", "environment", "base_url", "config",
                       "credentials_stored", "callback", "is_active", "is_default",
                       "last_tested_at", "last_test_ok", "last_test_message", "created_at",
                       "updated_at"]
    actions = ["test_credentials", "deactivate"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # accounts are created through the API, which validates credentials

    @admin.display(description="Credentials set")
    def credentials_stored(self, obj: ProviderAccount) -> str:
        names = obj.credentials_set
        hints = obj.credential_hints()
        shown = [f"{n} ({hints[n]})" if n in hints else n for n in names]
        return ", ".join(shown) or "none"

    @admin.display(description="Callback URL")
    def callback(self, obj: ProviderAccount) -> str:
        return _masked_callback_url(obj)

    @admin.action(description="Test credentials with the provider")
    def test_credentials(self, request: HttpRequest, queryset: QuerySet[ProviderAccount]) -> None:
        for account in queryset:
            outcome = services.test_account(account)
            self.message_user(request, f"{account.name}: {'OK' if outcome.ok else 'FAILED'} "
                                       f"- {outcome.message}")

    @admin.action(description="Deactivate selected accounts")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[ProviderAccount]) -> None:
        count = 0
        for account in queryset:
            services.deactivate_account(account)
            count += 1
        self.message_user(request, f"Deactivated {count} account(s).")


@admin.register(ProviderToken)
class ProviderTokenAdmin(ModelAdmin):
    """Read-only: which credential sets hold a shared token and until when."""

    list_display = ["provider", "fingerprint", "expires_at", "refreshed_at", "refresh_count"]
    list_filter = ["provider"]
    fields = ["provider", "fingerprint", "expires_at", "refreshed_at", "refresh_count",
              "created_at"]
    readonly_fields = fields

    @admin.display(description="Credential fingerprint")
    def fingerprint(self, obj: ProviderToken) -> str:
        return obj.credential_fingerprint[:12] + "…"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
