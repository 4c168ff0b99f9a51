"""Wallet API shapes. Amounts are decimal strings (``"100.00"``) with the integer minor
units beside them (``balance_minor``); never floats."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pesarail.common.money import Money
from pesarail.ledger.models import Posting
from pesarail.wallets.models import Wallet


def _decimal(minor: int, currency: str) -> str:
    return Money(minor, currency).to_decimal_string()


class WalletSerializer(serializers.Serializer[Wallet]):
    id = serializers.CharField(read_only=True)
    customer = serializers.CharField(source="customer_id", read_only=True)
    currency = serializers.CharField(read_only=True)
    balance = serializers.SerializerMethodField()
    balance_minor = serializers.SerializerMethodField()
    available = serializers.SerializerMethodField()
    available_minor = serializers.SerializerMethodField()
    held = serializers.SerializerMethodField()
    held_minor = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)

    @extend_schema_field(serializers.CharField(help_text='Decimal string, e.g. "100.00".'))
    def get_balance(self, obj: Wallet) -> str:
        return _decimal(obj.account.balance, obj.currency)

    def get_balance_minor(self, obj: Wallet) -> int:
        return obj.account.balance

    @extend_schema_field(serializers.CharField(help_text="Balance minus active holds."))
    def get_available(self, obj: Wallet) -> str:
        return _decimal(obj.account.available, obj.currency)

    def get_available_minor(self, obj: Wallet) -> int:
        return obj.account.available

    @extend_schema_field(serializers.CharField(help_text="Reserved by active holds."))
    def get_held(self, obj: Wallet) -> str:
        return _decimal(obj.account.held, obj.currency)

    def get_held_minor(self, obj: Wallet) -> int:
        return obj.account.held


class CauseSerializer(serializers.Serializer[Any]):
    type = serializers.CharField()
    id = serializers.CharField()


class TransactionSerializer(serializers.Serializer[Posting]):
    """One posting on the wallet's ledger account."""

    id = serializers.CharField(read_only=True)
    direction = serializers.SerializerMethodField()
    amount = serializers.SerializerMethodField()
    amount_minor = serializers.SerializerMethodField()
    currency = serializers.CharField(read_only=True)
    balance_after = serializers.SerializerMethodField()
    balance_after_minor = serializers.IntegerField(source="balance_after", read_only=True)
    cause = serializers.SerializerMethodField()
    memo = serializers.CharField(source="entry.memo", read_only=True)
    entry = serializers.CharField(source="entry_id", read_only=True)
    created_at = serializers.DateTimeField(read_only=True)

    @extend_schema_field(serializers.ChoiceField(choices=["credit", "debit"]))
    def get_direction(self, obj: Posting) -> str:
        return "credit" if obj.amount > 0 else "debit"

    @extend_schema_field(serializers.CharField(help_text="Always positive; see direction."))
    def get_amount(self, obj: Posting) -> str:
        return _decimal(abs(obj.amount), obj.currency)

    def get_amount_minor(self, obj: Posting) -> int:
        return abs(obj.amount)

    @extend_schema_field(serializers.CharField())
    def get_balance_after(self, obj: Posting) -> str:
        return _decimal(obj.balance_after, obj.currency)

    @extend_schema_field(CauseSerializer)
    def get_cause(self, obj: Posting) -> dict[str, str]:
        return {"type": obj.entry.cause_type or obj.entry.kind,
                "id": obj.entry.cause_id or obj.entry_id}


class WalletCreateSerializer(serializers.Serializer[Any]):
    customer = serializers.CharField(
        max_length=32, required=False,
        help_text="The customer (cus_...). Optional with a customer token (its own).",
    )
    currency = serializers.CharField(max_length=3)


class PaySerializer(serializers.Serializer[Any]):
    amount = serializers.CharField(max_length=40, help_text='Decimal string, e.g. "100.00".')
    description = serializers.CharField(max_length=255, required=False, allow_blank=True,
                                        default="")
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                      default="", help_text="Your order or invoice id.")


class TransferCreateSerializer(serializers.Serializer[Any]):
    from_wallet = serializers.CharField(max_length=32)
    to_wallet = serializers.CharField(max_length=32)
    amount = serializers.CharField(max_length=40, help_text='Decimal string, e.g. "100.00".')
    currency = serializers.CharField(max_length=3, required=False,
                                     help_text="Optional; must match both wallets.")
    description = serializers.CharField(max_length=255, required=False, allow_blank=True,
                                        default="")


class PaymentSerializer(serializers.Serializer[Any]):
    """A wallet payment to the merchant (a journal entry)."""

    id = serializers.CharField(help_text="The journal entry id.")
    wallet = WalletSerializer()
    amount = serializers.CharField()
    amount_minor = serializers.IntegerField()
    currency = serializers.CharField()
    description = serializers.CharField()
    reference = serializers.CharField()
    transaction = TransactionSerializer()
    created_at = serializers.DateTimeField()


class TransferSerializer(serializers.Serializer[Any]):
    id = serializers.CharField(help_text="The journal entry id.")
    from_wallet = serializers.CharField()
    to_wallet = serializers.CharField()
    amount = serializers.CharField()
    amount_minor = serializers.IntegerField()
    currency = serializers.CharField()
    description = serializers.CharField()
    transaction = TransactionSerializer(help_text="The debit on from_wallet.")
    created_at = serializers.DateTimeField()
