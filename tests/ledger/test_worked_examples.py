"""Worked examples: each story with the balances written out, in KES.

Sign convention: + is a credit to the account's owner, - a debit. The provider clearing
account goes negative when the provider owes us the money it collected.
"""

from __future__ import annotations

import pytest

from pesarail.common.errors import Conflict
from pesarail.ledger import selectors
from pesarail.ledger import services as ledger
from pesarail.ledger.audit import run_audit
from pesarail.ledger.models import EntryKind, HoldState, Posting
from pesarail.ledger.services import InsufficientFunds
from tests.factories import CustomerFactory, Tenant
from tests.ledger.helpers import (
    available,
    balance,
    clearing_account,
    kes,
    settlement_account,
    topup,
    wallet_account,
)

pytestmark = pytest.mark.django_db


def _history(account_id: str) -> list[tuple[int, int]]:
    return list(Posting.objects.filter(account_id=account_id).order_by("sequence")
                .values_list("amount", "balance_after"))


def test_top_up(tenant: Tenant) -> None:
    """Amina tops up KES 1,000.00 through M-Pesa."""
    entry = topup(tenant.customer, "1000.00", "mpesa_callback:ws_CO_1")
    wallet, clearing = wallet_account(tenant.customer), clearing_account(tenant.merchant.pk)

    assert entry.kind == EntryKind.PROVIDER_PAYMENT
    assert balance(wallet) == "1000.00"      # +1,000.00 credit
    assert balance(clearing) == "-1000.00"   # the provider owes us 1,000.00
    assert _history(wallet.pk) == [(100000, 100000)]
    assert _history(clearing.pk) == [(-100000, -100000)]
    assert run_audit().ok


def test_pay(tenant: Tenant) -> None:
    """Amina (KES 1,000.00) pays the merchant KES 250.00 from her wallet."""
    topup(tenant.customer, "1000.00", "mpesa_callback:ws_CO_2")
    wallet = wallet_account(tenant.customer)

    ledger.pay_merchant(source=wallet, money=kes("250.00"), idempotency_key="order-17")

    settlement = settlement_account(tenant.merchant.pk)
    assert balance(wallet) == "750.00"          # 1,000.00 - 250.00
    assert balance(settlement) == "250.00"      # the merchant is owed 250.00
    assert balance(clearing_account(tenant.merchant.pk)) == "-1000.00"
    assert _history(wallet.pk) == [(100000, 100000), (-25000, 75000)]
    assert run_audit().ok


def test_transfer(tenant: Tenant) -> None:
    """Amina (KES 1,000.00) sends KES 300.00 to Baraka (KES 0.00)."""
    baraka = CustomerFactory(merchant=tenant.merchant)
    topup(tenant.customer, "1000.00", "mpesa_callback:ws_CO_3")
    amina_wallet, baraka_wallet = wallet_account(tenant.customer), wallet_account(baraka)

    ledger.transfer(source=amina_wallet, destination=baraka_wallet, money=kes("300.00"),
                    idempotency_key="transfer-1")

    assert balance(amina_wallet) == "700.00"
    assert balance(baraka_wallet) == "300.00"
    assert _history(baraka_wallet.pk) == [(30000, 30000)]
    assert run_audit().ok


def test_hold_then_settle(tenant: Tenant) -> None:
    """Amina (KES 1,000.00) books a ride: KES 400.00 is held, then captured."""
    topup(tenant.customer, "1000.00", "mpesa_callback:ws_CO_4")
    wallet = wallet_account(tenant.customer)

    reserved = ledger.hold(wallet, kes("400.00"), idempotency_key="ride-9:hold")
    assert balance(wallet) == "1000.00"      # balance unchanged
    assert available(wallet) == "600.00"     # 1,000.00 - 400.00 held
    assert selectors.balances_of(wallet).held == kes("400.00")

    # The held money cannot be spent twice: 700.00 > 600.00 available.
    with pytest.raises(InsufficientFunds):
        ledger.pay_merchant(source=wallet, money=kes("700.00"), idempotency_key="greedy")

    settlement = settlement_account(tenant.merchant.pk)
    entry = ledger.settle_hold(reserved, destination=settlement,
                               idempotency_key="ride-9:capture")
    assert reserved.state == HoldState.SETTLED and reserved.settlement_entry_id == entry.pk
    assert balance(wallet) == "600.00"
    assert available(wallet) == "600.00"     # nothing held any more
    assert balance(settlement) == "400.00"
    # Settling again with the same key returns the same entry; another key conflicts.
    assert ledger.settle_hold(reserved, destination=settlement,
                              idempotency_key="ride-9:capture").pk == entry.pk
    with pytest.raises(Conflict):
        ledger.settle_hold(reserved, destination=settlement, idempotency_key="ride-9:again")
    assert balance(wallet) == "600.00"
    assert run_audit().ok


def test_hold_then_settle_less_frees_the_rest(tenant: Tenant) -> None:
    """The ride cost KES 150.00 of the 400.00 held: 150.00 moves, 250.00 is freed."""
    topup(tenant.customer, "1000.00", "mpesa_callback:ws_CO_5")
    wallet = wallet_account(tenant.customer)
    reserved = ledger.hold(wallet, kes("400.00"), idempotency_key="ride-10:hold")

    ledger.settle_hold(reserved, destination=settlement_account(tenant.merchant.pk),
                       idempotency_key="ride-10:capture", amount=kes("150.00"))

    assert balance(wallet) == "850.00"
    assert available(wallet) == "850.00"
    assert run_audit().ok


def test_hold_then_release(tenant: Tenant) -> None:
    """Amina (KES 1,000.00): KES 400.00 held, then the ride is cancelled."""
    topup(tenant.customer, "1000.00", "mpesa_callback:ws_CO_6")
    wallet = wallet_account(tenant.customer)
    reserved = ledger.hold(wallet, kes("400.00"), idempotency_key="ride-11:hold")
    assert available(wallet) == "600.00"

    ledger.release_hold(reserved)
    assert reserved.state == HoldState.RELEASED
    assert balance(wallet) == "1000.00"
    assert available(wallet) == "1000.00"
    ledger.release_hold(reserved)  # releasing twice is harmless
    assert available(wallet) == "1000.00"
    with pytest.raises(Conflict):
        ledger.settle_hold(reserved, destination=settlement_account(tenant.merchant.pk),
                           idempotency_key="ride-11:capture")
    assert balance(wallet) == "1000.00"
    assert run_audit().ok


def test_hold_more_than_available_is_refused(tenant: Tenant) -> None:
    topup(tenant.customer, "100.00", "mpesa_callback:ws_CO_7")
    wallet = wallet_account(tenant.customer)
    with pytest.raises(InsufficientFunds):
        ledger.hold(wallet, kes("100.01"), idempotency_key="too-much")
    assert available(wallet) == "100.00"
    assert not selectors.active_holds(wallet).exists()


def test_reversal(tenant: Tenant) -> None:
    """A top-up recorded by mistake is reversed: every balance returns to zero, and the
    history keeps both entries."""
    entry = topup(tenant.customer, "500.00", "mpesa_callback:ws_CO_8")
    wallet, clearing = wallet_account(tenant.customer), clearing_account(tenant.merchant.pk)

    reversal = ledger.reverse_entry(entry, "reverse:ws_CO_8")

    assert reversal.reverses_id == entry.pk and reversal.kind == EntryKind.REVERSAL
    assert balance(wallet) == "0.00"
    assert balance(clearing) == "0.00"
    assert _history(wallet.pk) == [(50000, 50000), (-50000, 0)]
    # One reversal per entry, whatever the key.
    assert ledger.reverse_entry(entry, "reverse:other-key").pk == reversal.pk
    assert run_audit().ok


def test_reversal_of_spent_money_is_refused(tenant: Tenant) -> None:
    entry = topup(tenant.customer, "500.00", "mpesa_callback:ws_CO_9")
    wallet = wallet_account(tenant.customer)
    ledger.pay_merchant(source=wallet, money=kes("200.00"), idempotency_key="spent")
    with pytest.raises(InsufficientFunds):
        ledger.reverse_entry(entry, "reverse:ws_CO_9")
    assert balance(wallet) == "300.00"
