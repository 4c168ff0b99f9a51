"""The wallet API under concurrent requests (PostgreSQL, real threads)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from pesarail.ledger.models import JournalEntry
from pesarail.wallets.models import Wallet
from tests.factories import Tenant
from tests.ledger.concurrency import run_concurrently
from tests.ledger.helpers import balance, topup

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def _pay(api_key: str, wallet_id: str, key: str, amount: str = "1.00") -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_key}")
    response = client.post(f"/api/v1/wallets/{wallet_id}/pay/", {"amount": amount},
                           format="json", HTTP_IDEMPOTENCY_KEY=key)
    return response.status_code


def test_concurrent_payments(postgres_only: None, tenant: Tenant) -> None:
    """One transactional test (each costs a database flush), two stories."""
    topup(tenant.customer, "11.00", "fund")
    wallet = Wallet.objects.get(customer=tenant.customer)

    # 20 requests with the same Idempotency-Key at once: the first pays; the others
    # replay it (201) or are told it is still in progress (409). One debit.
    outcome = run_concurrently([lambda: _pay(tenant.api_key, wallet.pk, "double-tap")] * 20)
    assert not outcome.errors, outcome.errors[:3]
    assert set(outcome.results) <= {201, 409} and 201 in outcome.results
    assert JournalEntry.objects.filter(kind="wallet_payment").count() == 1
    assert balance(wallet.account) == "10.00"

    # 30 different payments of 1.00 against 10.00: ten succeed, twenty get 422.
    jobs = [lambda n=n: _pay(tenant.api_key, wallet.pk, f"pay-{n}") for n in range(30)]
    outcome = run_concurrently(jobs)
    assert not outcome.errors, outcome.errors[:3]
    assert sorted(outcome.results) == [201] * 10 + [422] * 20
    assert balance(wallet.account) == "0.00"
    out = StringIO()
    call_command("audit_ledger", stdout=out)
    assert out.getvalue().startswith("Ledger audit: OK")
