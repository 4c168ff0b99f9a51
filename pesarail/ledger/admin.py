"""Read-only admin for the ledger: nobody adds, edits or deletes money by hand here.
Corrections are reversing entries made through :mod:`pesarail.ledger.services`."""

from __future__ import annotations

from django.contrib import admin
from unfold.admin import ModelAdmin, TabularInline

from pesarail.common.admin import ReadOnlyAdminMixin
from pesarail.ledger.models import Account, Hold, JournalEntry, Posting


class PostingInline(ReadOnlyAdminMixin, TabularInline):
    model = Posting
    extra = 0
    can_delete = False
    fields = ["id", "account", "amount", "balance_after", "sequence", "created_at"]
    readonly_fields = fields


@admin.register(Account)
class AccountAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["id", "kind", "merchant", "customer", "provider_account_id", "currency",
                    "balance", "held", "allow_negative", "updated_at"]
    list_filter = ["kind", "currency", "allow_negative"]
    search_fields = ["id", "merchant__id", "customer__id", "provider_account_id"]
    list_select_related = ["merchant", "customer"]
    readonly_fields = ["id", "kind", "merchant", "customer", "provider_account_id", "currency",
                       "allow_negative", "balance", "held", "version", "created_at",
                       "updated_at"]
    fields = readonly_fields


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["id", "kind", "merchant", "currency", "cause_type", "cause_id",
                    "idempotency_key", "created_at"]
    list_filter = ["kind", "currency"]
    search_fields = ["id", "idempotency_key", "cause_id"]
    list_select_related = ["merchant"]
    readonly_fields = ["id", "kind", "merchant", "currency", "idempotency_key", "cause_type",
                       "cause_id", "memo", "reverses", "created_at"]
    fields = readonly_fields
    inlines = [PostingInline]


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["id", "account", "amount", "currency", "state", "created_at",
                    "resolved_at"]
    list_filter = ["state", "currency"]
    search_fields = ["id", "idempotency_key", "account__id"]
    readonly_fields = ["id", "account", "amount", "currency", "state", "idempotency_key",
                       "settlement_entry", "cause_type", "cause_id", "memo", "created_at",
                       "resolved_at"]
    fields = readonly_fields
