"""The double-entry ledger: accounts, journal entries, postings and holds.

Sign convention
---------------
Every amount is an integer number of minor units. A posting's ``amount`` is signed from
the point of view of the account's owner: **positive is a credit** (the account holds or
is owed more), **negative is a debit**. An account's ``balance`` is the sum of its
postings, so a customer wallet holding KES 100.00 has ``balance = 10000``. The postings
of one journal entry sum to zero, hence the balances of all accounts in one currency sum
to zero as well. Provider clearing accounts go negative when the provider owes us money
(a customer paid KES 100 by M-Pesa: clearing -100, the wallet +100).

Owners
------
Accounts reference their owners with *string* foreign keys (``"tenants.Merchant"``,
``"tenants.Customer"``): the database keeps referential integrity and ``PROTECT`` stops a
merchant or customer that has money from being deleted, while this package imports no
Python code of ours except ``pesarail.common``. Provider accounts arrive later (with the
M-Pesa issue) and are referenced by an opaque ``provider_account_id`` string instead.

Who writes
----------
Only :mod:`pesarail.ledger.services` creates or changes these rows. Postings and
entries are never updated or deleted (on PostgreSQL a trigger refuses it; on SQLite
updates of postings are refused); a correction is a reversing entry.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models import F, Q

from pesarail.common.models import TimestampedModel, id_field


class AccountKind(models.TextChoices):
    CUSTOMER_WALLET = "customer_wallet", "Customer wallet"
    MERCHANT_SETTLEMENT = "merchant_settlement", "Merchant settlement"
    PROVIDER_CLEARING = "provider_clearing", "Provider clearing"
    FEES = "fees", "Fees"
    SUSPENSE = "suspense", "Suspense"


#: Whether an account of each kind may have a negative (available) balance.
ALLOW_NEGATIVE: dict[str, bool] = {
    AccountKind.CUSTOMER_WALLET: False,
    AccountKind.MERCHANT_SETTLEMENT: False,
    AccountKind.PROVIDER_CLEARING: True,  # mirrors money the provider owes us
    AccountKind.FEES: False,
    AccountKind.SUSPENSE: True,  # unexplained money parks here either way
}

# Kinds of which a merchant has exactly one account per currency.
SINGLETON_KINDS = (AccountKind.MERCHANT_SETTLEMENT, AccountKind.FEES, AccountKind.SUSPENSE)


class Account(TimestampedModel):
    """A balance in one currency. ``balance`` is the sum of the postings; ``held`` is the
    sum of active holds; ``available = balance - held``. ``version`` counts postings and
    is the ``sequence`` of the newest one."""

    id = id_field("acc")
    kind = models.CharField(max_length=24, choices=AccountKind.choices)
    merchant = models.ForeignKey(
        "tenants.Merchant", on_delete=models.PROTECT, related_name="+"
    )
    customer = models.ForeignKey(
        "tenants.Customer", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    provider_account_id = models.CharField(
        max_length=64, blank=True, default="",
        help_text="Opaque id of the provider account (provider clearing accounts only).",
    )
    currency = models.CharField(max_length=3)
    allow_negative = models.BooleanField(default=False)
    balance = models.BigIntegerField(default=0)
    held = models.BigIntegerField(default=0)
    version = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering: ClassVar = ["id"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(kind__in=AccountKind.values), name="ledger_account_known_kind"
            ),
            models.CheckConstraint(
                condition=Q(allow_negative=True) | Q(balance__gte=F("held")),
                name="ledger_account_no_forbidden_negative",
            ),
            models.CheckConstraint(condition=Q(held__gte=0), name="ledger_account_held_gte_0"),
            models.CheckConstraint(
                condition=(
                    Q(kind=AccountKind.CUSTOMER_WALLET, customer__isnull=False,
                      allow_negative=False)
                    | (~Q(kind=AccountKind.CUSTOMER_WALLET) & Q(customer__isnull=True))
                ),
                name="ledger_account_wallet_has_customer_never_negative",
            ),
            models.CheckConstraint(
                condition=(
                    (Q(kind=AccountKind.PROVIDER_CLEARING) & ~Q(provider_account_id=""))
                    | (~Q(kind=AccountKind.PROVIDER_CLEARING) & Q(provider_account_id=""))
                ),
                name="ledger_account_clearing_has_provider_account",
            ),
            models.UniqueConstraint(
                fields=["customer", "currency"],
                condition=Q(kind=AccountKind.CUSTOMER_WALLET),
                name="ledger_account_one_wallet_per_customer_currency",
            ),
            models.UniqueConstraint(
                fields=["merchant", "provider_account_id", "currency"],
                condition=Q(kind=AccountKind.PROVIDER_CLEARING),
                name="ledger_account_one_clearing_per_provider_account",
            ),
            models.UniqueConstraint(
                fields=["merchant", "kind", "currency"],
                condition=Q(kind__in=SINGLETON_KINDS),
                name="ledger_account_one_per_merchant_kind_currency",
            ),
        ]

    def __str__(self) -> str:
        owner = self.customer_id or self.provider_account_id or self.merchant_id
        return f"{self.kind}:{owner}:{self.currency}"

    @property
    def available(self) -> int:
        return self.balance - self.held


class EntryKind(models.TextChoices):
    PROVIDER_PAYMENT = "provider_payment", "Provider payment"
    TRANSFER = "transfer", "Transfer"
    WALLET_PAYMENT = "wallet_payment", "Wallet payment"
    HOLD_SETTLEMENT = "hold_settlement", "Hold settlement"
    REVERSAL = "reversal", "Reversal"
    MANUAL = "manual", "Manual"


class JournalEntry(models.Model):
    """One balanced movement of money: two or more postings in one currency summing to
    zero. ``idempotency_key`` names the cause (``mpesa_callback:<CheckoutRequestID>``):
    posting the same key again returns this entry."""

    id = id_field("je")
    merchant = models.ForeignKey("tenants.Merchant", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=24, choices=EntryKind.choices)
    currency = models.CharField(max_length=3)
    idempotency_key = models.CharField(max_length=255, unique=True)
    cause_type = models.CharField(max_length=40, blank=True, default="")
    cause_id = models.CharField(max_length=100, blank=True, default="")
    memo = models.CharField(max_length=255, blank=True, default="")
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering: ClassVar = ["-id"]
        verbose_name_plural = "journal entries"
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(kind__in=EntryKind.values), name="ledger_entry_known_kind"
            ),
            models.CheckConstraint(
                condition=(Q(kind=EntryKind.REVERSAL, reverses__isnull=False)
                           | (~Q(kind=EntryKind.REVERSAL) & Q(reverses__isnull=True))),
                name="ledger_entry_reversal_names_original",
            ),
            # One credit per provider payment, whatever idempotency key the caller used.
            models.UniqueConstraint(
                fields=["cause_type", "cause_id"],
                condition=Q(kind=EntryKind.PROVIDER_PAYMENT) & ~Q(cause_id=""),
                name="ledger_entry_one_credit_per_provider_payment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.kind} {self.idempotency_key}"


class Posting(models.Model):
    """One line of an entry: ``amount`` (credit > 0, debit < 0) on one account, the
    account's balance right after it, and its position in the account's history."""

    id = id_field("pst")
    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="postings")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="postings")
    currency = models.CharField(max_length=3)
    amount = models.BigIntegerField()
    balance_after = models.BigIntegerField()
    sequence = models.PositiveBigIntegerField(
        help_text="1, 2, 3... per account, in the order the postings were applied."
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering: ClassVar = ["account", "sequence"]
        constraints: ClassVar = [
            models.CheckConstraint(condition=~Q(amount=0), name="ledger_posting_amount_not_0"),
            models.UniqueConstraint(
                fields=["account", "sequence"], name="ledger_posting_unique_account_sequence"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.account_id} {self.amount:+d}"

    @property
    def is_credit(self) -> bool:
        return self.amount > 0


class HoldState(models.TextChoices):
    ACTIVE = "active", "Active"
    SETTLED = "settled", "Settled"
    RELEASED = "released", "Released"


class Hold(models.Model):
    """Funds reserved on an account: ``available`` drops, ``balance`` does not, until the
    hold is settled (a posting to a destination) or released."""

    id = id_field("hold")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="holds")
    currency = models.CharField(max_length=3)
    amount = models.BigIntegerField()
    state = models.CharField(max_length=10, choices=HoldState.choices,
                             default=HoldState.ACTIVE)
    idempotency_key = models.CharField(max_length=255, unique=True)
    settlement_entry = models.OneToOneField(
        JournalEntry, null=True, blank=True, on_delete=models.PROTECT,
        related_name="settled_hold",
    )
    cause_type = models.CharField(max_length=40, blank=True, default="")
    cause_id = models.CharField(max_length=100, blank=True, default="")
    memo = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-id"]
        indexes: ClassVar = [models.Index(fields=["account", "state"])]
        constraints: ClassVar = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_hold_amount_gt_0"),
            models.CheckConstraint(
                condition=Q(state__in=HoldState.values), name="ledger_hold_known_state"
            ),
            models.CheckConstraint(
                condition=(Q(state=HoldState.SETTLED, settlement_entry__isnull=False)
                           | (~Q(state=HoldState.SETTLED) & Q(settlement_entry__isnull=True))),
                name="ledger_hold_settled_has_entry",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.amount} {self.currency} ({self.state})"
