"""Concurrency on PostgreSQL (SQLite serialises writers and would hide lock bugs).

Real threads, each with its own connection, hit the same accounts at once. Every test
ends with ``pesarail audit-ledger`` passing on what was committed.
"""

from __future__ import annotations

import copy
import random
from io import StringIO

import pytest
from django.core.management import call_command

from pesarail.ledger import services as ledger
from pesarail.ledger.models import Account, Hold, HoldState, JournalEntry, Posting
from pesarail.wallets import services as wallets
from pesarail.wallets.models import Wallet
from tests.factories import CustomerFactory, Tenant
from tests.ledger.concurrency import run_concurrently
from tests.ledger.helpers import (
    PROVIDER,
    balance,
    kes,
    settlement_account,
    topup,
    wallet_account,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def assert_audit_passes() -> None:
    out = StringIO()
    call_command("audit_ledger", stdout=out, stderr=StringIO())  # SystemExit(1) on failure
    assert out.getvalue().startswith("Ledger audit: OK"), out.getvalue()


def test_200_debits_against_100_units(postgres_only: None, tenant: Tenant) -> None:
    """The wallet holds exactly 100 x KES 1.00; 200 debits of 1.00 race for it."""
    topup(tenant.customer, "100.00", "fund")
    loaded = wallet_account(tenant.customer)
    wallet_id = loaded.pk

    def debit(n: int) -> JournalEntry:
        # A private copy per call: the service locks and re-reads the row anyway.
        return ledger.pay_merchant(source=copy.copy(loaded), money=kes("1.00"),
                                   idempotency_key=f"debit-{n}")

    outcome = run_concurrently([lambda n=n: debit(n) for n in range(200)])
    print("\n200 debits:", outcome.summary())

    kinds = outcome.kinds
    assert (kinds["ok"], kinds["insufficient_funds"]) == (100, 100), outcome.summary()
    assert kinds["deadlock"] == kinds["other"] == 0, outcome.errors[:3]
    wallet = Account.objects.get(pk=wallet_id)
    assert balance(wallet) == "0.00"
    afters = list(Posting.objects.filter(account_id=wallet_id, amount__lt=0)
                  .order_by("sequence").values_list("balance_after", flat=True))
    # No lost update: every debit saw the one before it, down to exactly zero.
    assert afters == [10000 - 100 * i for i in range(1, 101)]
    assert min(afters) >= 0
    assert balance(settlement_account(tenant.merchant.pk)) == "100.00"
    assert_audit_passes()


def test_500_transfers_both_ways_never_deadlock(postgres_only: None, tenant: Tenant) -> None:
    """250 transfers A->B and 250 B->A at once: locks are always taken in primary-key
    order, so no two transactions wait on each other in a cycle."""
    other = CustomerFactory(merchant=tenant.merchant)
    topup(tenant.customer, "1000.00", "fund-a")
    topup(other, "1000.00", "fund-b")
    loaded = {w.pk: w for w in (wallet_account(tenant.customer), wallet_account(other))}
    a, b = list(loaded)

    def move(n: int, source_id: str, destination_id: str) -> JournalEntry:
        return ledger.transfer(source=copy.copy(loaded[source_id]),
                               destination=copy.copy(loaded[destination_id]),
                               money=kes("1.00"), idempotency_key=f"move-{n}")

    directions = [(a, b)] * 250 + [(b, a)] * 250
    random.Random(7).shuffle(directions)
    jobs = [lambda n=n, s=s, d=d: move(n, s, d) for n, (s, d) in enumerate(directions)]
    outcome = run_concurrently(jobs)
    print("\n500 transfers:", outcome.summary())

    assert outcome.kinds["ok"] == 500, (outcome.summary(), outcome.errors[:3])
    assert outcome.kinds["deadlock"] == 0
    assert balance(Account.objects.get(pk=a)) == "1000.00"
    assert balance(Account.objects.get(pk=b)) == "1000.00"
    assert Posting.objects.filter(account_id__in=[a, b]).count() == 1002
    assert_audit_passes()


def test_same_callback_applied_concurrently_credits_once(postgres_only: None,
                                                         tenant: Tenant) -> None:
    """The provider delivers the same successful callback 40 times at once (and the
    payment is also recorded under other keys): one credit."""

    def apply(n: int) -> JournalEntry:
        key = "mpesa_callback:ws_CO_191220191020363925" if n % 2 else f"retry-{n}"
        return ledger.record_provider_payment(
            merchant_id=tenant.merchant.pk, provider_account_id=PROVIDER,
            money=kes("250.00"), idempotency_key=key, customer_id=tenant.customer.pk,
            cause_id="pay_once",
        )

    outcome = run_concurrently([lambda n=n: apply(n) for n in range(40)])
    print("\nsame callback x40:", outcome.summary())

    assert outcome.kinds["ok"] == 40, (outcome.summary(), outcome.errors[:3])
    assert len({entry.pk for entry in outcome.results}) == 1
    assert JournalEntry.objects.count() == 1
    assert balance(wallet_account(tenant.customer)) == "250.00"
    assert Wallet.objects.filter(customer=tenant.customer).count() == 1
    assert_audit_passes()


def test_settle_and_release_race_resolves_each_hold_once(postgres_only: None,
                                                         tenant: Tenant) -> None:
    topup(tenant.customer, "100.00", "fund")
    wallet = wallet_account(tenant.customer)
    settlement = settlement_account(tenant.merchant.pk)
    holds = [ledger.hold(wallet, kes("5.00"), idempotency_key=f"hold-{n}") for n in range(20)]

    def settle(held: Hold) -> object:
        return ledger.settle_hold(Hold.objects.get(pk=held.pk), destination=settlement,
                                  idempotency_key=f"settle-{held.pk}")

    def release(held: Hold) -> object:
        return ledger.release_hold(Hold.objects.get(pk=held.pk))

    jobs = [lambda h=h: settle(h) for h in holds] + [lambda h=h: release(h) for h in holds]
    random.Random(3).shuffle(jobs)
    outcome = run_concurrently(jobs)
    print("\nsettle/release race:", outcome.summary())

    assert outcome.kinds["ok"] == 20 and outcome.kinds["conflict"] == 20, outcome.summary()
    states = list(Hold.objects.values_list("state", flat=True))
    assert HoldState.ACTIVE not in states
    settled = states.count(HoldState.SETTLED)
    wallet.refresh_from_db()
    assert wallet.held == 0
    assert wallet.balance == 10000 - settled * 500
    assert_audit_passes()


def test_wallet_created_on_demand_once(postgres_only: None, tenant: Tenant) -> None:
    customer = CustomerFactory(merchant=tenant.merchant)
    outcome = run_concurrently([lambda: wallets.get_or_create_wallet(customer, "KES")] * 20)
    assert outcome.kinds["ok"] == 20, outcome.errors[:3]
    assert len({wallet.pk for wallet, _ in outcome.results}) == 1
    assert sum(created for _, created in outcome.results) == 1
    assert Wallet.objects.filter(customer=customer).count() == 1
    assert Account.objects.filter(customer=customer).count() == 1
