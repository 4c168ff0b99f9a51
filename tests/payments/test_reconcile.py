"""Reconciliation against the simulator: lost callbacks, pushes that time out, expiry,
provider faults, and the task running through the django-tasks-db backend."""

from __future__ import annotations

import signal
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from pesarail.payments import reconcile, tasks
from pesarail.payments.models import (
    AttemptState,
    CallbackRecord,
    CallbackStatus,
    PaymentAttempt,
    PaymentEvent,
    PaymentIntent,
    PushOutcome,
)
from tests.payments.conftest import Env
from tests.sandbox_fixtures import PHONES


@pytest.fixture
def reconcile_now(settings: Any) -> None:
    """Query attempts as soon as they have no result (instead of after 30 s)."""
    settings.PESARAIL_RECONCILE_AFTER_SECONDS = 0


def _expire_now(env: Env, intent_id: str) -> None:
    """Two minutes pass: move the intent's expiry into the past."""
    with env.server.db():
        PaymentIntent.objects.filter(pk=intent_id).update(
            expires_at=timezone.now() - timedelta(seconds=1))


def test_lost_callback_is_resolved_by_the_reconciler(env: Env, reconcile_now: None) -> None:
    env.sandbox.configure(lose_callbacks=True)
    body = env.create(PHONES["success"]).json()
    checkout = body["provider_references"]["checkout_request_id"]
    env.sandbox.wait_until_answered(checkout)
    assert env.intent(body["id"]).status == "processing"  # no callback came

    with env.server.db():
        counts = tasks.reconcile_pending.call()
    assert counts == {"checked": 1, "applied": 1}
    intent = env.intent(body["id"])
    assert intent.status == "succeeded"
    assert intent.ledger_entry_id is not None
    with env.server.db():
        event = PaymentEvent.objects.filter(intent=intent).last()
        assert event is not None and event.data["source"] == "status_query"
        attempt = PaymentAttempt.objects.get(intent=intent)
        assert attempt.query_count == 1 and attempt.last_queried_at is not None
        assert not CallbackRecord.objects.exists()
    assert env.sandbox.stats()["callbacks_lost"] == 1


def test_lost_failure_callback_resolves_to_the_failure(env: Env, reconcile_now: None) -> None:
    env.sandbox.configure(lose_callbacks=True)
    body = env.create(PHONES["wrong_pin"]).json()
    env.sandbox.wait_until_answered(body["provider_references"]["checkout_request_id"])
    with env.server.db():
        reconcile.reconcile_pending()
    intent = env.intent(body["id"])
    assert (intent.status, intent.failure_code) == ("failed", "2001")


def test_unanswered_prompt_is_left_alone_then_expires_after_a_final_query(
        env: Env, reconcile_now: None) -> None:
    env.sandbox.sim.update_config(auto_answer_seconds=60)
    body = env.create(PHONES["success"]).json()
    with env.server.db():
        assert reconcile.reconcile_pending() == {"checked": 1, "pending": 1}
    assert env.intent(body["id"]).status == "processing"

    _expire_now(env, body["id"])
    with env.server.db():
        assert reconcile.reconcile_pending() == {"checked": 1, "expired": 1}
    intent = env.intent(body["id"])
    assert intent.status == "expired" and intent.failure_code == "expired"
    assert "did not answer the prompt in time" in intent.failure_message
    with env.server.db():
        attempt = PaymentAttempt.objects.get(intent=intent)
        assert attempt.state == AttemptState.EXPIRED and attempt.query_count == 2
    # Expired is terminal; nothing further happens on the next run.
    with env.server.db():
        assert reconcile.reconcile_pending() == {"checked": 0}


def test_reconciler_waits_for_the_threshold(env: Env, settings: Any) -> None:
    settings.PESARAIL_RECONCILE_AFTER_SECONDS = 30
    env.sandbox.configure(lose_callbacks=True)
    body = env.create(PHONES["success"]).json()
    env.sandbox.wait_until_answered(body["provider_references"]["checkout_request_id"])
    with env.server.db():
        assert reconcile.reconcile_pending() == {"checked": 0}
        later = timezone.now() + timedelta(seconds=31)
        assert reconcile.reconcile_pending(now=later) == {"checked": 1, "applied": 1}


def test_reconciler_batch_is_bounded(env: Env, reconcile_now: None) -> None:
    env.sandbox.configure(lose_callbacks=True)
    phones = ["+254711000101", "+254711000102", "+254711000103"]
    ids = [env.create(phone).json()["id"] for phone in phones]
    for intent_id in ids:
        env.wait_for(lambda i=intent_id: PaymentAttempt.objects.get(intent_id=i)
                     .checkout_request_id, what="pushed")
    for prompt in env.sandbox.sim.prompts():
        env.sandbox.wait_until_answered(prompt["checkout_request_id"])
    with env.server.db():
        assert reconcile.reconcile_pending(limit=2) == {"checked": 2, "applied": 2}
        assert reconcile.reconcile_pending(limit=2) == {"checked": 1, "applied": 1}
    assert {env.intent(i).status for i in ids} == {"succeeded"}


def test_push_timeout_is_unknown_then_the_callback_resolves_it(env: Env, settings: Any) -> None:
    """Daraja accepted the push but the answer never came: unknown, never failed, never
    re-pushed. The callback names the attempt (``?attempt=`` in the callback URL)."""
    settings.PESARAIL_STK_PUSH_TIMEOUT_SECONDS = 0.5
    env.sandbox.configure(push_fault="timeout", timeout_hold_seconds=3, auto_answer_seconds=1)
    response = env.create(PHONES["success"])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "processing"
    assert body["attempts"][0]["state"] == "unknown"
    assert body["provider_references"]["checkout_request_id"] is None
    assert "confirming" in body["next_action"]["message"]
    assert [e["kind"] for e in body["events"]] == ["created", "push_unknown"]

    intent = env.wait_status(body["id"], "succeeded")
    with env.server.db():
        attempt = PaymentAttempt.objects.get(intent=intent)
        assert attempt.push_outcome == PushOutcome.TIMEOUT
        assert attempt.checkout_request_id and attempt.state == AttemptState.SUCCEEDED
        assert PaymentEvent.objects.filter(intent=intent,
                                           kind="provider_reference_learned").exists()
    assert env.sandbox.stats()["pushes"] == 1  # never re-sent


def test_push_timeout_and_lost_callback_expires_at_expiry(env: Env, settings: Any,
                                                          reconcile_now: None) -> None:
    settings.PESARAIL_STK_PUSH_TIMEOUT_SECONDS = 0.5
    env.sandbox.configure(push_fault="timeout", timeout_hold_seconds=2, lose_callbacks=True)
    body = env.create(PHONES["success"]).json()
    with env.server.db():
        assert reconcile.reconcile_pending() == {"checked": 0}  # nothing to query with
    _expire_now(env, body["id"])
    with env.server.db():
        assert reconcile.reconcile_pending() == {"checked": 1, "expired": 1}
    intent = env.intent(body["id"])
    assert intent.status == "expired"
    assert "never confirmed the prompt" in intent.failure_message


def test_provider_busy_fails_retryably_with_nothing_sent(env: Env) -> None:
    env.sandbox.configure(push_fault="500")
    body = env.create(PHONES["success"]).json()
    assert body["status"] == "failed"
    assert body["failure"]["code"] == "provider_unavailable"
    assert body["failure"]["retryable"] is True
    assert "busy" in body["failure"]["message"]
    assert body["next_action"] is None
    # The phone is free again and a retry works once the provider is back.
    env.sandbox.configure(push_fault=None)
    retried = env.server.api(env.tenant.api_key, "POST", f"/payments/{body['id']}/retry/",
                             idempotency_key="retry-1")
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "processing"
    intent = env.wait_status(body["id"], "succeeded")
    assert intent.attempt_count == 2


def test_final_query_unavailable_waits_for_the_grace_period(env: Env, settings: Any,
                                                            reconcile_now: None) -> None:
    env.sandbox.sim.update_config(auto_answer_seconds=60)
    body = env.create(PHONES["success"]).json()
    _expire_now(env, body["id"])
    env.sandbox.server.stop()  # the provider is unreachable
    with env.server.db():
        assert reconcile.reconcile_pending() == {"checked": 1, "unavailable": 1}
        assert env.intent(body["id"]).status == "processing"
        after_grace = timezone.now() + timedelta(seconds=301)
        assert reconcile.reconcile_pending(now=after_grace) == {"checked": 1, "expired": 1}
    assert "could not be asked" in env.intent(body["id"]).failure_message


def test_reconcile_runs_through_the_database_task_backend(env: Env, reconcile_now: None) -> None:
    """Enqueue the periodic task as the scheduler does, then let the worker run it."""
    env.sandbox.configure(lose_callbacks=True)
    body = env.create(PHONES["success"]).json()
    env.sandbox.wait_until_answered(body["provider_references"]["checkout_request_id"])
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with env.server.db():
        result = tasks.reconcile_pending.enqueue()
        assert DBTaskResult.objects.filter(pk=result.id, status="READY").exists()
        call_command("worker", "--batch", "--queue-name", "*", stdout=_Null())
        result.refresh()
        assert result.status == "SUCCESSFUL"
        assert result.return_value == {"checked": 1, "applied": 1}
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == previous
    assert env.intent(body["id"]).status == "succeeded"


def test_callback_that_cannot_be_confirmed_waits_for_the_reconciler(
        env: Env, reconcile_now: None) -> None:
    """With confirmation on and the provider unreachable for the query, the callback is
    kept as ``received`` (not applied) and a per-attempt reconcile task is queued."""
    with env.server.db():
        env.account.config = {**env.account.config, "confirm_callbacks_with_query": True}
        env.account.save(update_fields=["config"])
    env.sandbox.configure(lose_callbacks=True)
    body = env.create(PHONES["success"]).json()
    checkout = body["provider_references"]["checkout_request_id"]
    env.sandbox.wait_until_answered(checkout)
    payload = env.sandbox.sim.callbacks(checkout)[0]["payload"]
    env.sandbox.server.stop()
    response = env.server.http.post(env.account.callback_url, json=payload)
    assert response.status_code == 200
    assert response.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    with env.server.db():
        record = CallbackRecord.objects.get()
        assert (record.status, record.reason_code) == (CallbackStatus.RECEIVED, "unconfirmed")
        assert DBTaskResult.objects.filter(task_path__endswith="reconcile_attempt").count() == 1
    assert env.intent(body["id"]).status == "processing"


class _Null:
    def write(self, *args: Any, **kwargs: Any) -> None:
        pass

    def flush(self) -> None:
        pass


def test_push_timeout_result_matched_by_phone_without_the_attempt_in_the_url(
        env: Env, settings: Any) -> None:
    """A success callback to the account's plain URL (no attempt id) for a push that
    timed out is matched by the payer's phone (one open prompt per phone)."""
    settings.PESARAIL_STK_PUSH_TIMEOUT_SECONDS = 0.5
    env.sandbox.configure(push_fault="timeout", timeout_hold_seconds=2, lose_callbacks=True,
                          auto_answer_seconds=0.2)
    body = env.create(PHONES["success"]).json()
    assert body["attempts"][0]["state"] == "unknown"
    entries = env.sandbox.sim.wait_for_callbacks(1, timeout=5)
    assert entries[0]["url"].endswith(f"/{body['attempts'][0]['id']}/")
    response = env.server.http.post(env.account.callback_url, json=entries[0]["payload"])
    assert response.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    assert env.intent(body["id"]).status == "succeeded"


def test_attempt_id_in_the_url_cannot_reach_another_accounts_attempt(
        env: Env, make_daraja_account: Any) -> None:
    """The attempt id only narrows the search inside the token's own account."""
    from tests.factories import make_tenant

    env.sandbox.configure(lose_callbacks=True)
    body = env.create(PHONES["success"]).json()
    checkout = body["provider_references"]["checkout_request_id"]
    env.sandbox.wait_until_answered(checkout)
    payload = env.sandbox.sim.callbacks(checkout)[0]["payload"]
    with env.server.db():
        intruder = make_daraja_account(merchant=make_tenant("Mallory").merchant)
    url = f"{intruder.callback_url}{body['attempts'][0]['id']}/"
    response = env.server.http.post(url, json=payload)
    assert response.json() == {"ResultCode": 1, "ResultDesc": "Rejected"}
    with env.server.db():
        record = CallbackRecord.objects.get()
        assert (record.status, record.reason_code) == (CallbackStatus.REJECTED,
                                                       "unknown_checkout")
    assert env.intent(body["id"]).status == "processing"


def test_a_leased_attempt_is_left_to_the_reconciler_holding_it(env: Env,
                                                               reconcile_now: None) -> None:
    env.sandbox.sim.update_config(auto_answer_seconds=60)
    body = env.create(PHONES["success"]).json()
    attempt_id = body["attempts"][0]["id"]
    with env.server.db():
        leased = timezone.now() + timedelta(minutes=1)
        PaymentAttempt.objects.filter(pk=attempt_id).update(reconcile_lease_until=leased)
        assert tasks.reconcile_attempt.call(attempt_id) == "busy"
        assert reconcile.reconcile_pending() == {"checked": 0}
        PaymentAttempt.objects.filter(pk=attempt_id).update(reconcile_lease_until=None)
        assert tasks.reconcile_attempt.call(attempt_id) == "pending"
        assert reconcile.reconcile_pending() == {"checked": 1, "pending": 1}
        attempt = PaymentAttempt.objects.get(pk=attempt_id)
    assert attempt.reconcile_lease_until is None  # released after each run
    assert attempt.query_count == 2
