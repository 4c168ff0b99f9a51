"""``pesarail audit-ledger`` passes on a healthy ledger and fails, with a report, on a
deliberately corrupted row."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from pesarail.ledger import services as ledger
from pesarail.ledger.audit import Check, run_audit
from pesarail.ledger.models import Account, Hold, Posting
from tests.factories import CustomerFactory, Tenant
from tests.ledger.helpers import kes, settlement_account, topup, wallet_account

pytestmark = pytest.mark.django_db


def audit(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("audit_ledger", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def _busy_ledger(tenant: Tenant) -> None:
    other = CustomerFactory(merchant=tenant.merchant)
    topup(tenant.customer, "500.00", "a1", cause_id="pay_1")
    topup(other, "80.00", "a2", cause_id="pay_2")
    wallet = wallet_account(tenant.customer)
    ledger.pay_merchant(source=wallet, money=kes("120.00"), idempotency_key="a3")
    ledger.transfer(source=wallet, destination=wallet_account(other), money=kes("30.00"),
                    idempotency_key="a4")
    held = ledger.hold(wallet, kes("50.00"), idempotency_key="a5")
    ledger.settle_hold(held, destination=settlement_account(tenant.merchant.pk),
                       idempotency_key="a6")
    ledger.hold(wallet, kes("10.00"), idempotency_key="a7")
    entry = topup(other, "5.00", "a8", cause_id="pay_3")
    ledger.reverse_entry(entry, "a9")


@contextmanager
def _triggers_off() -> Iterator[None]:
    """Corrupt like a bad migration or a hand-edit would: bypass the append-only guards
    (PostgreSQL: replica mode until the test's transaction is rolled back; SQLite: drop
    the trigger, which the rollback restores)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Check what was written so far, then stop queueing checks.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            cursor.execute("SET LOCAL session_replication_role = replica")
        else:
            cursor.execute("DROP TRIGGER ledger_posting_no_update")
    yield


def test_passes_on_a_healthy_ledger(tenant: Tenant) -> None:
    _busy_ledger(tenant)
    code, out, _ = audit()
    assert code == 0, out
    assert out.startswith("Ledger audit: OK")
    assert "[FAIL]" not in out
    code, out, _ = audit("--json")
    report = json.loads(out)
    assert report["ok"] is True and report["totals"]["entries"] == 7
    assert {c["name"] for c in report["checks"]} >= {
        "entries_balanced", "zero_sum_per_currency", "balance_matches_postings",
        "history_consistent", "no_forbidden_negative", "held_matches_active_holds",
        "one_credit_per_provider_payment", "currencies_consistent",
        "reversals_mirror_originals", "database_guards_installed"}


def test_fails_on_a_corrupted_balance(tenant: Tenant) -> None:
    _busy_ledger(tenant)
    wallet = wallet_account(tenant.customer)
    Account.objects.filter(pk=wallet.pk).update(balance=wallet.balance + 100)  # a cent appears

    code, out, err = audit()
    assert code == 1
    assert out.startswith("Ledger audit: FAILED")
    assert "[FAIL] balance_matches_postings" in out
    assert f"account {wallet.pk}: balance {wallet.balance + 100}" in out
    assert "[FAIL] zero_sum_per_currency" in out  # the invented cent breaks the total
    assert "balance_matches_postings" in err
    report = json.loads(audit("--json")[1])
    failed = {c["name"] for c in report["checks"] if not c["ok"]}
    assert failed == {"balance_matches_postings", "zero_sum_per_currency"}


def test_fails_on_a_corrupted_posting(tenant: Tenant) -> None:
    _busy_ledger(tenant)
    posting = Posting.objects.filter(account__customer=tenant.customer).order_by(
        "sequence").first()
    assert posting is not None
    with _triggers_off():
        Posting.objects.filter(pk=posting.pk).update(amount=posting.amount + 1)
    report = run_audit()
    failed = {c.name for c in report.failures}
    assert {"entries_balanced", "zero_sum_per_currency", "balance_matches_postings",
            "history_consistent"} <= failed
    assert audit()[0] == 1


def test_fails_on_a_wrong_held_amount(tenant: Tenant) -> None:
    _busy_ledger(tenant)
    Hold.objects.filter(state="active").update(state="released")  # held stays at 10.00
    report = run_audit()
    assert [c.name for c in report.failures] == ["held_matches_active_holds"]


def test_extra_checks_from_other_apps(tenant: Tenant) -> None:
    with override_settings(PESARAIL_LEDGER_AUDIT_CHECKS=[f"{__name__}.failing_check"]):
        code, out, _ = audit()
    assert code == 1
    assert "[FAIL] payments_have_one_credit" in out and "pay_7 has no credit" in out


def failing_check() -> list[Check]:
    return [Check("payments_have_one_credit", "every successful payment has one credit",
                  count=1, samples=["pay_7 has no credit"])]
