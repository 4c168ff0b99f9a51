"""Admin for merchants, staff, keys and customers. Secrets are never shown: keys show
their display prefix only, customer passwords are not fields at all."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from unfold.admin import ModelAdmin, TabularInline
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from pesarail.tenants import services
from pesarail.tenants.models import ApiKey, Customer, Membership, Merchant, User


@admin.register(User)
class UserAdmin(BaseUserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm


class MembershipInline(TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class ApiKeyInline(TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ["prefix", "name", "mode", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Merchant)
class MerchantAdmin(ModelAdmin):
    list_display = ["name", "id", "country", "default_currency", "is_active", "created_at"]
    list_filter = ["is_active", "country"]
    search_fields = ["name", "id"]
    readonly_fields = ["id", "created_at", "updated_at"]
    inlines = [MembershipInline, ApiKeyInline]
    actions = ["create_test_key"]

    @admin.action(description="Create a test API key (shown once)")
    def create_test_key(self, request: HttpRequest, queryset: QuerySet[Merchant]) -> None:
        for merchant in queryset:
            new = services.create_api_key(merchant, name="admin", created_by=request.user)  # type: ignore[arg-type]
            self.message_user(
                request,
                f"New key for {merchant.name}: {new.secret} (copy it now; it is not stored)",
                messages.WARNING,
            )


@admin.register(ApiKey)
class ApiKeyAdmin(ModelAdmin):
    list_display = ["prefix", "merchant", "name", "mode", "last_used_at", "revoked_at"]
    list_filter = ["mode"]
    search_fields = ["prefix", "merchant__name", "name"]
    fields = ["id", "merchant", "name", "mode", "prefix", "created_at", "last_used_at",
              "revoked_at", "created_by"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            services.revoke_api_key(key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


@admin.register(Customer)
class CustomerAdmin(ModelAdmin):
    list_display = ["username", "merchant", "name", "email", "phone_number", "is_active",
                    "created_at"]
    list_filter = ["is_active"]
    search_fields = ["username", "name", "email", "phone_number", "id", "external_reference"]
    fields = ["id", "merchant", "username", "name", "email", "phone_number",
              "external_reference", "metadata", "is_active", "created_at"]
    readonly_fields = ["id", "created_at"]
