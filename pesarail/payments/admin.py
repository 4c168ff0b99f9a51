"""Read-only admin: payments with their attempts and timeline, and raw callbacks.

Nothing here changes money or state: a status changes only through the services (and
the state table), a callback is never edited. Staff read, filter and search.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline

from pesarail.common.admin import ReadOnlyAdminMixin
from pesarail.common.phone import mask_phone
from pesarail.payments.models import CallbackRecord, PaymentAttempt, PaymentEvent, PaymentIntent


class AttemptInline(ReadOnlyAdminMixin, TabularInline):
    model = PaymentAttempt
    extra = 0
    fields = ["number", "state", "push_outcome", "checkout_request_id", "result_code",
              "result_message", "receipt", "requested_at", "resolved_at", "query_count"]
    readonly_fields = fields
    show_change_link = False


class EventInline(ReadOnlyAdminMixin, TabularInline):
    model = PaymentEvent
    extra = 0
    fields = ["created_at", "kind", "from_status", "to_status", "message", "attempt"]
    readonly_fields = fields
    ordering = ["id"]


@admin.register(PaymentIntent)
class PaymentIntentAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["id", "merchant", "kind", "status", "amount", "masked_phone", "reference",
                    "needs_review", "late_success", "created_at"]
    list_filter = ["status", "kind", "provider", "needs_review", "late_success"]
    search_fields = ["id", "reference", "provider_receipt", "attempts__checkout_request_id",
                     "merchant__name"]
    list_select_related = ["merchant"]
    exclude = ["phone", "idempotency_key"]
    readonly_fields = ["id", "merchant", "kind", "provider", "provider_account", "customer",
                       "wallet", "amount", "masked_phone", "description", "reference",
                       "metadata", "status", "failure_code", "failure_message",
                       "failure_retryable", "expires_at", "succeeded_at", "provider_receipt",
                       "ledger_entry", "needs_review", "review_reason", "late_success",
                       "attempt_count", "created_at", "updated_at"]
    inlines = [AttemptInline, EventInline]

    @admin.display(description="Amount")
    def amount(self, obj: PaymentIntent) -> str:
        return obj.money.format()

    @admin.display(description="Phone")
    def masked_phone(self, obj: PaymentIntent) -> str:
        return mask_phone(obj.phone)


@admin.register(CallbackRecord)
class CallbackRecordAdmin(ReadOnlyAdminMixin, ModelAdmin):
    list_display = ["id", "provider", "status", "reason_code", "checkout_request_id",
                    "result_code", "source_ip", "received_at"]
    list_filter = ["provider", "status", "reason_code"]
    search_fields = ["id", "checkout_request_id", "attempt__intent__id"]
    exclude = ["body", "token_hash"]
    readonly_fields = ["id", "provider", "provider_account", "method", "headers", "raw_body",
                       "source_ip", "received_at", "processed_at", "status", "reason_code",
                       "reason", "error", "checkout_request_id", "result_code", "dedupe_key",
                       "attempt"]

    @admin.display(description="Body")
    def raw_body(self, obj: CallbackRecord) -> str:
        return format_html("<pre>{}</pre>", obj.body_text)
