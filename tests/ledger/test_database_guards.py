"""The database refuses what the service would never write: unbalanced entries (at
commit, PostgreSQL), postings in the wrong currency, zero amounts, updates of postings,
forbidden negative balances. Raw SQL stands in for a buggy or hostile writer."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from pesarail.ledger import db_guards
from pesarail.ledger.models import Account, JournalEntry, Posting
from tests.factories import Tenant
from tests.ledger.helpers import clearing_account, settlement_account, topup, wallet_account


def _insert_entry(entry_id: str, merchant_id: str, currency: str = "KES") -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_journalentry (id, merchant_id, kind, currency, "
            "idempotency_key, cause_type, cause_id, memo, reverses_id, created_at) "
            "VALUES (%s, %s, 'manual', %s, %s, '', '', '', NULL, %s)",
            [entry_id, merchant_id, currency, "raw:" + entry_id, timezone.now()],
        )


def _insert_posting(posting_id: str, entry_id: str, account: Account, amount: int,
                    sequence: int, currency: str = "KES") -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_posting (id, entry_id, account_id, currency, amount, "
            "balance_after, sequence, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [posting_id, entry_id, account.pk, currency, amount, amount, sequence,
             timezone.now()],
        )


# ----------------------------------------------------------------- both databases


@pytest.mark.django_db
def test_postings_cannot_be_updated(tenant: Tenant) -> None:
    topup(tenant.customer, "10.00", "k")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Posting.objects.update(amount=1)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        JournalEntry.objects.update(memo="edited")


@pytest.mark.django_db
def test_zero_amount_posting_is_refused(tenant: Tenant) -> None:
    clearing = clearing_account(tenant.merchant.pk)
    with pytest.raises(IntegrityError), transaction.atomic():
        _insert_entry("je_zero", tenant.merchant.pk)
        _insert_posting("pst_zero", "je_zero", clearing, 0, 1)


@pytest.mark.django_db
def test_wallet_balance_cannot_go_negative_even_by_sql(tenant: Tenant) -> None:
    wallet = wallet_account(tenant.customer)
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(pk=wallet.pk).update(balance=-1)
    topup(tenant.customer, "10.00", "k")
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(pk=wallet.pk).update(held=1001)  # held > balance
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(pk=wallet.pk).update(allow_negative=True)
    # Provider clearing may be negative.
    assert clearing_account(tenant.merchant.pk).balance == -1000


@pytest.mark.django_db
def test_posting_currency_must_match_its_account(tenant: Tenant) -> None:
    clearing = clearing_account(tenant.merchant.pk)
    settlement = settlement_account(tenant.merchant.pk)
    with pytest.raises(IntegrityError), transaction.atomic():
        _insert_entry("je_usd", tenant.merchant.pk, currency="USD")
        _insert_posting("pst_usd_1", "je_usd", clearing, -5, 1, currency="USD")
        _insert_posting("pst_usd_2", "je_usd", settlement, 5, 1, currency="USD")
        _fire_deferred()


@pytest.mark.django_db
def test_guards_are_installed() -> None:
    expected, present = db_guards.installed(connection)
    assert expected and present == expected


def _fire_deferred() -> None:
    """Run PostgreSQL's deferred constraint triggers now (no-op on SQLite)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


# ----------------------------------------------------------------- PostgreSQL only


@pytest.mark.django_db(transaction=True)
def test_deferred_trigger_checks_every_entry_at_commit(postgres_only: None,
                                                       tenant: Tenant) -> None:
    """Real commits (one transactional test: each costs a database flush)."""
    clearing = clearing_account(tenant.merchant.pk)
    settlement = settlement_account(tenant.merchant.pk)

    # Unbalanced: every statement succeeds; the deferred trigger refuses the COMMIT.
    with pytest.raises(IntegrityError, match="unbalanced"), transaction.atomic():
        _insert_entry("je_unbalanced", tenant.merchant.pk)
        _insert_posting("pst_u1", "je_unbalanced", clearing, -500, 1)
        _insert_posting("pst_u2", "je_unbalanced", settlement, 499, 1)
    # A single posting, or none at all.
    with pytest.raises(IntegrityError, match="unbalanced"), transaction.atomic():
        _insert_entry("je_single", tenant.merchant.pk)
        _insert_posting("pst_s1", "je_single", clearing, -500, 1)
    with pytest.raises(IntegrityError, match="unbalanced"), transaction.atomic():
        _insert_entry("je_empty", tenant.merchant.pk)
    assert not JournalEntry.objects.exists() and not Posting.objects.exists()

    # A balanced entry commits: the trigger is not in the way of correct writes.
    with transaction.atomic():
        _insert_entry("je_ok", tenant.merchant.pk)
        _insert_posting("pst_ok1", "je_ok", clearing, -500, 1)
        _insert_posting("pst_ok2", "je_ok", settlement, 500, 1)
    assert Posting.objects.filter(entry_id="je_ok").count() == 2

    # Adding a posting to a committed entry unbalances it: refused too.
    with pytest.raises(IntegrityError, match="unbalanced"), transaction.atomic():
        _insert_posting("pst_ok3", "je_ok", settlement, 1, 2)
    assert Posting.objects.filter(entry_id="je_ok").count() == 2


@pytest.mark.django_db
def test_unbalanced_entry_refused_when_constraints_fire(postgres_only: None,
                                                        tenant: Tenant) -> None:
    clearing = clearing_account(tenant.merchant.pk)
    with pytest.raises(IntegrityError, match="unbalanced"), transaction.atomic():
        _insert_entry("je_imm", tenant.merchant.pk)
        _insert_posting("pst_imm", "je_imm", clearing, 7, 1)
        _fire_deferred()


@pytest.mark.django_db
def test_postings_cannot_be_deleted(postgres_only: None, tenant: Tenant) -> None:
    topup(tenant.customer, "10.00", "k")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Posting.objects.all().delete()
