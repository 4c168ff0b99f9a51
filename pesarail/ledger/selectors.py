"""Read-only queries over the ledger: balances and statements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from pesarail.common.money import Money
from pesarail.ledger.models import Account, AccountKind, Hold, HoldState, Posting


@dataclass(frozen=True)
class Balances:
    balance: Money
    held: Money
    available: Money


def _account_id(account: Account | str) -> str:
    return account if isinstance(account, str) else account.pk


def balances_of(account: Account | str) -> Balances:
    """Current balance, held and available amounts, read fresh from the database."""
    currency, balance, held = Account.objects.values_list("currency", "balance", "held").get(
        pk=_account_id(account)
    )
    return Balances(Money(balance, currency), Money(held, currency),
                    Money(balance - held, currency))


def balance_of(account: Account | str) -> Money:
    """The account's balance (the sum of its postings), read fresh from the database."""
    return balances_of(account).balance


def find_account(
    kind: str,
    merchant_id: str,
    currency: str,
    *,
    customer_id: str | None = None,
    provider_account_id: str | None = None,
) -> Account | None:
    """The account for this owner and currency, or None when it was never created."""
    return Account.objects.filter(
        kind=kind, merchant_id=merchant_id, currency=currency.upper(),
        customer_id=customer_id or None, provider_account_id=provider_account_id or "",
    ).first()


def merchant_settlement(merchant_id: str, currency: str) -> Account | None:
    return find_account(AccountKind.MERCHANT_SETTLEMENT, merchant_id, currency)


def statement(
    account: Account | str,
    *,
    direction: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    cause_type: str | None = None,
) -> QuerySet[Posting]:
    """The account's postings, newest first, with their entries.

    ``direction`` is ``"credit"`` (amount > 0) or ``"debit"``; ``created_after`` is
    inclusive, ``created_before`` exclusive; ``cause_type`` matches the entry's.
    """
    queryset = (Posting.objects.filter(account_id=_account_id(account))
                .select_related("entry").order_by("-sequence"))
    if direction == "credit":
        queryset = queryset.filter(amount__gt=0)
    elif direction == "debit":
        queryset = queryset.filter(amount__lt=0)
    elif direction is not None:
        raise ValueError("direction must be 'credit' or 'debit'")
    if created_after is not None:
        queryset = queryset.filter(created_at__gte=created_after)
    if created_before is not None:
        queryset = queryset.filter(created_at__lt=created_before)
    if cause_type:
        queryset = queryset.filter(entry__cause_type=cause_type)
    return queryset


def active_holds(account: Account | str) -> QuerySet[Hold]:
    return Hold.objects.filter(account_id=_account_id(account), state=HoldState.ACTIVE)
