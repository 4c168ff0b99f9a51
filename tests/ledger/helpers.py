"""Helpers for ledger and wallet tests: amounts in KES, top-ups through the service."""

from __future__ import annotations

from pesarail.common.money import Money
from pesarail.ledger import services as ledger
from pesarail.ledger.models import Account, AccountKind, JournalEntry
from pesarail.tenants.models import Customer

PROVIDER = "pa_test_mpesa"


def kes(amount: str) -> Money:
    return Money.parse(amount, "KES")


def topup(customer: Customer, amount: str, key: str, *, cause_id: str = "") -> JournalEntry:
    """A customer top-up as the M-Pesa flow will record it."""
    return ledger.record_provider_payment(
        merchant_id=customer.merchant_id, provider_account_id=PROVIDER, money=kes(amount),
        idempotency_key=key, customer_id=customer.pk, cause_id=cause_id,
    )


def wallet_account(customer: Customer, currency: str = "KES") -> Account:
    return ledger.get_or_create_account(AccountKind.CUSTOMER_WALLET, customer.merchant_id,
                                        currency, customer_id=customer.pk)


def settlement_account(merchant_id: str, currency: str = "KES") -> Account:
    return ledger.get_or_create_account(AccountKind.MERCHANT_SETTLEMENT, merchant_id, currency)


def clearing_account(merchant_id: str, currency: str = "KES") -> Account:
    return ledger.get_or_create_account(AccountKind.PROVIDER_CLEARING, merchant_id, currency,
                                        provider_account_id=PROVIDER)


def balance(account: Account) -> str:
    """The account's balance, fresh from the database, as a decimal string."""
    account.refresh_from_db()
    return Money(account.balance, account.currency).to_decimal_string()


def available(account: Account) -> str:
    account.refresh_from_db()
    return Money(account.available, account.currency).to_decimal_string()
