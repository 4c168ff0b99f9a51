"""Double submits on PostgreSQL (real row locks, concurrent connections): however many
"Pay" or "Try again" requests arrive at once, one prompt goes out."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection

from pesarail.checkout import services
from pesarail.checkout.models import CheckoutSession
from pesarail.common.errors import ApplicationError
from pesarail.payments.models import IntentStatus, PaymentAttempt, PaymentIntent
from tests.checkout.helpers import make_session
from tests.factories import Tenant
from tests.sandbox_fixtures import DarajaSandbox

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

THREADS = 8


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serialises writers and has no row locks, so "
                    "it cannot show a concurrency bug (set DATABASE_URL=postgres://...)")


def at_once(call: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(THREADS)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return call(i)
        except ApplicationError as exc:
            return exc.code
        finally:
            connection.close()

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(run, range(THREADS)))


def test_concurrent_pay_sends_one_prompt(tenant: Tenant, daraja_account: Any,
                                         daraja_sandbox: DarajaSandbox) -> None:
    daraja_sandbox.configure(auto_answer_seconds=60, stkpush_latency=0.2)
    session = make_session(tenant)
    phones = ["0708374149", "0712345678"]  # even two different numbers
    at_once(lambda i: services.pay(CheckoutSession.objects.get(pk=session.pk),
                                   provider="mpesa_ke", phone=phones[i % 2]))
    assert daraja_sandbox.stats()["pushes"] == 1
    intent = PaymentIntent.objects.get()
    assert PaymentAttempt.objects.count() == 1
    assert CheckoutSession.objects.get(pk=session.pk).payment_id == intent.pk


def test_concurrent_try_again_makes_one_new_attempt(tenant: Tenant, daraja_account: Any,
                                                    daraja_sandbox: DarajaSandbox) -> None:
    daraja_sandbox.configure(auto_answer_seconds=60)
    session = make_session(tenant)
    services.pay(session, provider="mpesa_ke", phone="0708374149")
    [prompt] = daraja_sandbox.sim.prompts("254708374149")
    daraja_sandbox.answer(prompt["checkout_request_id"], "cancel")
    intent = PaymentIntent.objects.get()
    daraja_sandbox.wait_until_answered(prompt["checkout_request_id"])
    from pesarail.payments import services as payments

    payments.refresh_payment(intent)
    intent.refresh_from_db()
    assert intent.status == IntentStatus.CANCELLED
    daraja_sandbox.configure(stkpush_latency=0.2)
    at_once(lambda i: services.pay(CheckoutSession.objects.get(pk=session.pk),
                                   provider="mpesa_ke", phone="0708374149"))
    assert daraja_sandbox.stats()["pushes"] == 2
    assert PaymentIntent.objects.count() == 1
    assert PaymentAttempt.objects.filter(intent=intent).count() == 2
