"""Property test: any sequence of ledger operations keeps every invariant.

Hypothesis draws sequences of top-ups, payments, transfers, holds, settlements,
releases, reversals and replays of earlier operations (same idempotency key). A plain
Python model predicts each outcome (done, or refused for insufficient funds / a hold not
active) and every balance; after the sequence the audit must pass and, on PostgreSQL,
the deferred zero-sum triggers must accept everything written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pesarail.common.errors import Conflict
from pesarail.common.money import Money
from pesarail.ledger import services as ledger
from pesarail.ledger.audit import run_audit
from pesarail.ledger.models import Account, Hold
from pesarail.ledger.services import InsufficientFunds
from pesarail.tenants import services as tenants
from tests.factories import CustomerFactory
from tests.ledger.helpers import PROVIDER

CUSTOMERS = 3
customer = st.integers(0, CUSTOMERS - 1)
amount = st.integers(1, 20_000)  # minor units, KES 0.01 .. 200.00
index = st.integers(0, 40)

OPERATION = st.one_of(
    st.tuples(st.just("topup"), customer, amount),
    st.tuples(st.just("pay"), customer, amount),
    st.tuples(st.just("transfer"), customer, customer, amount),
    st.tuples(st.just("hold"), customer, amount),
    st.tuples(st.just("settle"), index, st.booleans()),
    st.tuples(st.just("release"), index),
    st.tuples(st.just("reverse"), index),
    st.tuples(st.just("replay"), index),
)


@dataclass
class Model:
    allow_negative: dict[str, bool]
    balance: dict[str, int] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    entries: list[tuple[str, list[tuple[str, int]], Any]] = field(default_factory=list)
    reversed: set[str] = field(default_factory=set)
    holds: list[tuple[Hold, str]] = field(default_factory=list)
    hold_state: dict[str, str] = field(default_factory=dict)

    def fits(self, legs: list[tuple[str, int]], held_delta: dict[str, int] | None = None
             ) -> bool:
        balance, held = dict(self.balance), dict(self.held)
        for account, delta in (held_delta or {}).items():
            held[account] = held.get(account, 0) + delta
        for account, delta in legs:
            balance[account] = balance.get(account, 0) + delta
        return all(self.allow_negative[a] or balance.get(a, 0) >= held.get(a, 0)
                   for a in set(balance) | set(held))

    def apply(self, legs: list[tuple[str, int]]) -> None:
        for account, delta in legs:
            self.balance[account] = self.balance.get(account, 0) + delta


def _kes(minor: int) -> Money:
    return Money(minor, "KES")


def _run(ops: list[tuple[Any, ...]]) -> None:
    merchant, _ = tenants.create_merchant("Property Shop")
    people = [CustomerFactory(merchant=merchant) for _ in range(CUSTOMERS)]
    wallets = [ledger.get_or_create_account("customer_wallet", merchant.pk, "KES",
                                            customer_id=p.pk) for p in people]
    clearing = ledger.get_or_create_account("provider_clearing", merchant.pk, "KES",
                                            provider_account_id=PROVIDER)
    settlement = ledger.get_or_create_account("merchant_settlement", merchant.pk, "KES")
    accounts = [*wallets, clearing, settlement]
    model = Model({a.pk: a.allow_negative for a in accounts})

    def entry_op(key: str, legs: list[tuple[str, int]], call: Any) -> None:
        if model.fits(legs):
            entry = call()
            model.apply(legs)
            model.entries.append((entry.pk, legs, call))
        else:
            with pytest.raises(InsufficientFunds):
                call()

    for step, op in enumerate(ops):
        key = f"op-{step}"
        name = op[0]
        if name == "topup":
            _, c, minor = op
            entry_op(key, [(clearing.pk, -minor), (wallets[c].pk, minor)],
                     lambda c=c, minor=minor, key=key: ledger.record_provider_payment(
                         merchant_id=merchant.pk, provider_account_id=PROVIDER,
                         money=_kes(minor), idempotency_key=key, customer_id=people[c].pk,
                         cause_id=key))
        elif name == "pay":
            _, c, minor = op
            entry_op(key, [(wallets[c].pk, -minor), (settlement.pk, minor)],
                     lambda c=c, minor=minor, key=key: ledger.pay_merchant(
                         source=wallets[c], money=_kes(minor), idempotency_key=key))
        elif name == "transfer":
            _, a, b, minor = op
            if a == b:
                continue
            entry_op(key, [(wallets[a].pk, -minor), (wallets[b].pk, minor)],
                     lambda a=a, b=b, minor=minor, key=key: ledger.transfer(
                         source=wallets[a], destination=wallets[b], money=_kes(minor),
                         idempotency_key=key))
        elif name == "hold":
            _, c, minor = op
            account = wallets[c].pk
            if model.fits([], {account: minor}):
                held = ledger.hold(wallets[c], _kes(minor), idempotency_key=key)
                model.held[account] = model.held.get(account, 0) + minor
                model.holds.append((held, account))
                model.hold_state[held.pk] = "active"
            else:
                with pytest.raises(InsufficientFunds):
                    ledger.hold(wallets[c], _kes(minor), idempotency_key=key)
        elif name in {"settle", "release"} and model.holds:
            held, account = model.holds[op[1] % len(model.holds)]
            state = model.hold_state[held.pk]
            if name == "settle":
                minor = max(1, held.amount // 2) if op[2] else held.amount
                call = lambda held=held, minor=minor, key=key: ledger.settle_hold(  # noqa: E731
                    held, destination=settlement, idempotency_key=key, amount=_kes(minor))
                if state != "active":
                    with pytest.raises(Conflict):
                        call()
                    continue
                entry = call()
                model.held[account] -= held.amount
                legs = [(account, -minor), (settlement.pk, minor)]
                model.apply(legs)
                model.entries.append((entry.pk, legs, call))
                model.hold_state[held.pk] = "settled"
            elif state == "settled":
                with pytest.raises(Conflict):
                    ledger.release_hold(held)
            else:
                ledger.release_hold(held)
                if state == "active":
                    model.held[account] -= held.amount
                model.hold_state[held.pk] = "released"
        elif name == "reverse" and model.entries:
            entry_id, legs, _ = model.entries[op[1] % len(model.entries)]
            if entry_id in model.reversed:
                continue
            original = ledger.JournalEntry.objects.get(pk=entry_id)
            mirrored = [(a, -d) for a, d in legs]
            if model.fits(mirrored):
                ledger.reverse_entry(original, key)
                model.apply(mirrored)
                model.reversed.add(entry_id)
            else:
                with pytest.raises(InsufficientFunds):
                    ledger.reverse_entry(original, key)
        elif name == "replay" and model.entries:
            entry_id, _, call = model.entries[op[1] % len(model.entries)]
            assert call().pk == entry_id  # same key: same entry, nothing moves

        stored = {pk: (balance, held) for pk, balance, held in Account.objects.filter(
            pk__in=model.allow_negative).values_list("pk", "balance", "held")}
        expected = {pk: (model.balance.get(pk, 0), model.held.get(pk, 0))
                    for pk in model.allow_negative}
        assert stored == expected, (step, op)

    assert sum(Account.objects.values_list("balance", flat=True)) == 0
    report = run_audit()
    assert report.ok, report.render()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # run the deferred zero-sum triggers now
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


@pytest.mark.django_db
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(OPERATION, min_size=1, max_size=30))
def test_random_operations_keep_every_invariant(ops: list[tuple[Any, ...]]) -> None:
    with transaction.atomic():
        _run(ops)
        transaction.set_rollback(True)
