"""Concurrency on PostgreSQL (real row locks; SQLite serialises writers and would hide
bugs): identical callbacks racing, top-up credits racing, prompts racing for one phone,
two reconcilers racing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.core.management import call_command
from django.db import connections

from pesarail.ledger.models import JournalEntry
from pesarail.payments import reconcile
from pesarail.payments.models import CallbackRecord, CallbackStatus, PaymentEvent, PaymentIntent
from pesarail.wallets import services as wallets
from tests.payments.conftest import Env
from tests.sandbox_fixtures import PHONES

pytestmark = pytest.mark.postgres


def _race(n: int, call: Callable[[int], Any]) -> tuple[list[Any], float]:
    """Run ``call(i)`` on ``n`` threads released together; results in order, seconds."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except Exception as exc:  # reported by the assertions
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results, time.perf_counter() - started


def _held_callback(env: Env, response: httpx.Response) -> tuple[str, dict[str, Any]]:
    assert response.status_code == 201, response.text
    body = response.json()
    checkout = body["provider_references"]["checkout_request_id"]
    env.sandbox.wait_until_answered(checkout)
    return body["id"], env.sandbox.sim.callbacks(checkout)[0]["payload"]


def _fire(env: Env, payload: dict[str, Any], n: int) -> tuple[list[Any], float]:
    def post(i: int) -> tuple[int, Any]:
        with httpx.Client(timeout=30, trust_env=False) as client:
            response = client.post(env.account.callback_url, json=payload)
            return response.status_code, response.json()

    return _race(n, post)


def test_50_identical_callbacks_one_transition(postgres_only: None, env: Env,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    env.sandbox.configure(lose_callbacks=True)
    intent_id, payload = _held_callback(env, env.create(PHONES["success"], "10.00"))
    events_before = PaymentEvent.objects.filter(intent_id=intent_id).count()

    results, seconds = _fire(env, payload, 50)

    assert results == [(200, {"ResultCode": 0, "ResultDesc": "Accepted"})] * 50
    intent = PaymentIntent.objects.get(pk=intent_id)
    assert intent.status == "succeeded"
    new_events = PaymentEvent.objects.filter(intent_id=intent_id).order_by("id")[events_before:]
    assert [(e.from_status, e.to_status) for e in new_events] == [("processing", "succeeded")]
    assert JournalEntry.objects.count() == 1
    statuses = list(CallbackRecord.objects.values_list("status", flat=True))
    assert len(statuses) == 50
    assert statuses.count(CallbackStatus.APPLIED) == 1
    assert statuses.count(CallbackStatus.DUPLICATE) == 49
    with capsys.disabled():
        print(f"\n50 concurrent identical callbacks -> 1 transition, 1 event, 50x200 "
              f"in {seconds:.2f}s")


def test_top_up_success_20_times_concurrently_credits_once(postgres_only: None,
                                                           env: Env) -> None:
    env.sandbox.configure(lose_callbacks=True)
    wallet, _ = wallets.get_or_create_wallet(env.tenant.customer, "KES")
    response = env.server.api(env.tenant.customer_token, "POST", f"/wallets/{wallet.pk}/top-up/",
                              idempotency_key="topup-race",
                              json={"amount": "500.00", "provider": "mpesa_ke"})
    intent_id, payload = _held_callback(env, response)

    results, _ = _fire(env, payload, 20)

    assert {status for status, _ in results} == {200}
    assert PaymentIntent.objects.get(pk=intent_id).status == "succeeded"
    wallet.account.refresh_from_db()
    assert wallet.account.balance == 50000
    assert JournalEntry.objects.filter(cause_id=payload["Body"]["stkCallback"]
                                       ["CheckoutRequestID"]).count() == 1
    call_command("audit_ledger", stdout=_Sink())  # exits 1 on any broken invariant


def test_concurrent_prompts_to_one_phone_only_one_is_sent(postgres_only: None,
                                                          env: Env) -> None:
    env.sandbox.sim.update_config(auto_answer_seconds=60)
    results, _ = _race(10, lambda i: env.create(PHONES["success"], f"{10 + i}.00",
                                                key=f"race-{i}"))
    codes = sorted(r.status_code for r in results)
    assert codes == [201] + [409] * 9, [r.text for r in results]
    assert {r.json()["error"]["code"] for r in results if r.status_code == 409} == {
        "phone_busy"}
    assert env.sandbox.stats()["pushes"] == 1
    assert PaymentIntent.objects.count() == 1


def test_two_reconcilers_never_query_the_same_attempt(postgres_only: None, env: Env,
                                                      settings: Any) -> None:
    settings.PESARAIL_RECONCILE_AFTER_SECONDS = 0
    env.sandbox.configure(lose_callbacks=True)
    ids = [env.create(f"+2547110005{i:02d}").json()["id"] for i in range(12)]
    for prompt in env.sandbox.sim.prompts():
        env.sandbox.wait_until_answered(prompt["checkout_request_id"])
    queries_before = env.sandbox.stats()["queries"]

    results, _ = _race(2, lambda i: reconcile.reconcile_pending())

    assert sum(r["checked"] for r in results) == 12
    assert env.sandbox.stats()["queries"] - queries_before == 12
    assert set(PaymentIntent.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
        "succeeded"}


class _Sink:
    def write(self, *args: Any, **kwargs: Any) -> None:
        pass

    def flush(self) -> None:
        pass
