"""Wallet services. Money moves only through :mod:`pesarail.ledger.services`; this module
maps wallets to their ledger accounts and applies the wallet rules (same merchant, same
currency)."""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import IntegrityError, transaction

from pesarail.common.errors import Unprocessable, ValidationFailed
from pesarail.common.money import Money, MoneyError, parse_currency
from pesarail.ledger import services as ledger
from pesarail.ledger.models import Account, AccountKind, JournalEntry
from pesarail.tenants.models import Customer
from pesarail.wallets.models import Wallet


def ledger_key(operation: str, scope: str, client_key: str) -> str:
    """The ledger idempotency key for an API request: the operation, the caller's scope
    and a digest of its ``Idempotency-Key``. A request replayed after its API record was
    lost (e.g. a crash after commit) still lands on the same ledger entry."""
    digest = hashlib.sha256(client_key.encode()).hexdigest()[:40]
    return f"api:{operation}:{scope}:{digest}"


def ensure_wallet_for_account(account: Account) -> tuple[Wallet, bool]:
    """The Wallet row of a customer wallet account (created if missing, race-safe)."""
    existing = Wallet.objects.filter(account=account).first()
    if existing is not None:
        return existing, False
    assert account.customer_id is not None, "not a customer wallet account"
    try:
        with transaction.atomic():
            wallet = Wallet.objects.create(merchant_id=account.merchant_id,
                                           customer_id=account.customer_id,
                                           currency=account.currency, account=account)
    except IntegrityError:
        found = Wallet.objects.filter(account=account).first()
        if found is None:
            raise
        return found, False
    return wallet, True


def on_account_created(sender: Any, account: Account, **kwargs: Any) -> None:
    """Every customer wallet account gets its Wallet row in the same transaction, also
    when it is created by a provider payment (``record_provider_payment``)."""
    if account.kind == AccountKind.CUSTOMER_WALLET:
        ensure_wallet_for_account(account)


def get_or_create_wallet(customer: Customer, currency: str) -> tuple[Wallet, bool]:
    """The customer's wallet in ``currency`` and whether this call created it."""
    try:
        currency = parse_currency(currency)
    except MoneyError as exc:
        raise ValidationFailed(str(exc), fields={"currency": [str(exc)]}) from exc
    existing = (Wallet.objects.select_related("account")
                .filter(customer=customer, currency=currency).first())
    if existing is not None:
        return existing, False
    with transaction.atomic():
        account, account_created = ledger.ensure_account(
            AccountKind.CUSTOMER_WALLET, customer.merchant_id, currency,
            customer_id=customer.pk,
        )
        wallet, wallet_created = ensure_wallet_for_account(account)
    wallet = Wallet.objects.select_related("account").get(pk=wallet.pk)
    return wallet, account_created or wallet_created


def parse_amount(value: str, currency: str, field: str = "amount") -> Money:
    try:
        return Money.parse(value, currency)
    except MoneyError as exc:
        raise ValidationFailed(f"Invalid {field}: {exc}", fields={field: [str(exc)]}) from exc


def pay(wallet: Wallet, money: Money, *, idempotency_key: str, description: str = "",
        reference: str = "") -> JournalEntry:
    """Pay the wallet's merchant from the wallet balance (422 when it is not enough)."""
    if money.currency != wallet.currency:
        raise Unprocessable(f"The wallet is in {wallet.currency}, not {money.currency}.",
                            code="currency_mismatch")
    return ledger.pay_merchant(source=wallet.account, money=money,
                               idempotency_key=idempotency_key, memo=description,
                               cause_type="wallet_payment", cause_id=reference)


def transfer(source: Wallet, destination: Wallet, money: Money, *, idempotency_key: str,
             description: str = "") -> JournalEntry:
    """Wallet to wallet, within one merchant and one currency."""
    if source.pk == destination.pk:
        raise ValidationFailed("from_wallet and to_wallet must differ.",
                               fields={"to_wallet": ["Must differ from from_wallet."]})
    if source.merchant_id != destination.merchant_id:
        raise Unprocessable("Both wallets must belong to the same merchant.",
                            code="merchant_mismatch")
    if source.currency != destination.currency:
        raise Unprocessable(
            f"Cannot transfer between a {source.currency} wallet and a "
            f"{destination.currency} wallet.", code="currency_mismatch")
    if money.currency != source.currency:
        raise Unprocessable(f"The wallets are in {source.currency}, not {money.currency}.",
                            code="currency_mismatch")
    return ledger.transfer(source=source.account, destination=destination.account,
                           money=money, idempotency_key=idempotency_key, memo=description,
                           cause_type="wallet_transfer", cause_id="")
