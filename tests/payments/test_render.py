"""pesarail.payments.render gives exactly what the DRF serializers give (same keys, same
order, same values, so the same JSON bytes), for payments in every state reached through
the real flow against the simulator; and a status poll is cheap: a few queries, the
provider account's credentials never decrypted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from pesarail.payments import reconcile, render, states
from pesarail.payments.models import (
    AttemptState,
    IntentStatus,
    PaymentAttempt,
    PaymentEvent,
    PaymentIntent,
)
from pesarail.payments.serializers import PaymentIntentDetailSerializer, PaymentIntentSerializer
from pesarail.payments.views import _detail
from pesarail.providers import crypto
from pesarail.providers.models import ProviderAccount
from pesarail.providers.services import create_account
from pesarail.wallets import services as wallets
from tests.factories import Tenant
from tests.payments.conftest import Env
from tests.sandbox_fixtures import PHONES

# ------------------------------------------------------------------ comparisons


def _same_json(actual: Any, expected: Any) -> None:
    """Equal, and equal once encoded: key order and types (True is not 1) count."""
    assert actual == expected
    assert json.dumps(actual, sort_keys=False) == json.dumps(expected, sort_keys=False)
    assert JSONRenderer().render(actual) == JSONRenderer().render(expected)


def _detail_pair(intent_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(rendered, serialized) for one intent, each from its own fresh read."""
    intent = PaymentIntent.objects.get(pk=intent_id)
    rendered = render.intent_detail(intent, render.attempts_of(intent),
                                    render.events_of(intent))
    serialized = dict(PaymentIntentDetailSerializer(
        PaymentIntent.objects.select_related("provider_account")
        .prefetch_related("attempts").get(pk=intent_id)).data)
    return rendered, serialized


def _check(env: Env, intent_id: str) -> dict[str, Any]:
    """The renderer equals the serializers for this intent (detail and list shapes), and
    the API's answer is byte for byte what the serializer would have produced."""
    response = env.server.api(env.tenant.api_key, "GET", f"/payments/{intent_id}/")
    assert response.status_code == 200, response.text
    with env.server.db():
        rendered, serialized = _detail_pair(intent_id)
        listed = PaymentIntent.objects.prefetch_related("attempts").get(pk=intent_id)
        summary = render.payment_intent(listed)
        summary_serialized = dict(PaymentIntentSerializer(listed).data)
        unprefetched = PaymentIntent.objects.get(pk=intent_id)
        summary_unprefetched = render.payment_intent(unprefetched)
    _same_json(rendered, serialized)
    _same_json(summary, summary_serialized)
    _same_json(summary_unprefetched, summary_serialized)
    assert response.content == JSONRenderer().render(serialized)
    return rendered


def _check_response(env: Env, response: Any) -> dict[str, Any]:
    """A create/cancel/retry/refresh answer is what the serializer gives for the intent
    as it is now (call only when nothing can change it meanwhile)."""
    assert response.status_code in (200, 201), response.text
    intent_id = response.json()["id"]
    with env.server.db():
        serialized = _detail_pair(intent_id)[1]
    assert response.content == JSONRenderer().render(serialized)
    return serialized


# ------------------------------------------------------------------ every state


@pytest.fixture
def slow_phone(env: Env) -> Env:
    """Prompts stay on the phone until a test answers them."""
    env.sandbox.sim.update_config(auto_answer_seconds=60)
    return env


def test_pending_with_a_created_attempt(env: Env) -> None:
    """The moment between the insert and the push (made by hand: the real flow sends
    the push within the request)."""
    with env.server.db():
        intent = PaymentIntent.objects.create(
            merchant=env.tenant.merchant, provider="mpesa_ke", provider_account=env.account,
            amount_minor=1050, currency="KES", phone=PHONES["success"],
            expires_at=timezone.now() + timedelta(minutes=2), idempotency_key="by-hand",
            attempt_count=1)
        attempt = PaymentAttempt.objects.create(
            intent=intent, number=1, provider="mpesa_ke", provider_account=env.account,
            phone=intent.phone)
        states.append_event(intent, "created", to_status=IntentStatus.PENDING,
                            message="Payment of KES 10.50 created.")
    body = _check(env, intent.pk)
    assert body["status"] == "pending" and body["attempts"][0]["id"] == attempt.pk
    assert body["attempts"][0]["state"] == "created"
    assert body["next_action"]["message"] == "Sending the payment prompt to your phone…"
    assert body["provider_references"] == {"checkout_request_id": None,
                                           "merchant_request_id": None, "receipt": None}
    assert body["amount"] == "10.50" and body["description"] == ""


def test_processing_with_a_pending_attempt(slow_phone: Env) -> None:
    env = slow_phone
    created = env.create(PHONES["success"], "1500.00")
    body = _check_response(env, created)
    assert body["status"] == "processing" and body["attempts"][0]["state"] == "pending"
    assert body["next_action"]["message"].startswith("Check your phone")
    assert "1,500.00" in body["next_action"]["message"]  # the provider's own message
    assert body["events"][-1]["attempt"] == body["attempts"][0]["id"]
    assert body["events"][0]["attempt"] is None
    _check(env, body["id"])


def test_unknown_attempt(env: Env, settings: Any) -> None:
    settings.PESARAIL_STK_PUSH_TIMEOUT_SECONDS = 0.5
    env.sandbox.configure(push_fault="timeout", timeout_hold_seconds=2, lose_callbacks=True)
    body = _check_response(env, env.create(PHONES["success"]))
    assert body["attempts"][0]["state"] == "unknown"
    assert "confirming" in body["next_action"]["message"]
    _check(env, body["id"])


def test_succeeded_with_receipt_and_ledger_entry(env: Env) -> None:
    created = env.create(PHONES["success"], "10.00", description="", reference="")
    intent = env.wait_status(created.json()["id"], "succeeded")
    assert intent.ledger_entry_id and intent.provider_receipt
    body = _check(env, intent.pk)
    assert body["provider_references"]["receipt"] == intent.provider_receipt
    assert body["succeeded_at"] is not None and body["next_action"] is None
    assert body["attempts"][0]["resolved_at"] is not None
    assert body["description"] == "" and body["reference"] == ""


@pytest.mark.parametrize(("phone", "status"), [
    (PHONES["insufficient_funds"], "failed"),
    (PHONES["cancelled"], "cancelled"),
    (PHONES["unreachable"], "expired"),
])
def test_failed_cancelled_and_expired(env: Env, phone: str, status: str) -> None:
    created = env.create(phone)
    intent = env.wait_status(created.json()["id"], status)
    body = _check(env, intent.pk)
    assert body["failure"] == {"code": intent.failure_code,
                               "message": intent.failure_message,
                               "retryable": intent.failure_retryable}
    assert body["next_action"] is None


def test_push_refused_by_an_unavailable_provider(env: Env) -> None:
    env.sandbox.configure(push_fault="500")
    body = _check_response(env, env.create(PHONES["success"]))
    assert body["status"] == "failed" and body["failure"]["retryable"] is True
    assert body["provider_references"]["checkout_request_id"] is None
    _check(env, body["id"])


def test_cancelled_by_the_merchant_then_late_success(slow_phone: Env) -> None:
    env = slow_phone
    created = env.create(PHONES["success"], "40.00").json()
    cancelled = env.server.api(env.tenant.api_key, "POST", f"/payments/{created['id']}/cancel/")
    body = _check_response(env, cancelled)
    assert body["status"] == "cancelled"
    assert body["failure"]["code"] == "cancelled_by_merchant"
    _check(env, created["id"])
    env.sandbox.answer(created["provider_references"]["checkout_request_id"], "approve")
    intent = env.wait_status(created["id"], "succeeded")
    assert intent.late_success and intent.needs_review
    body = _check(env, created["id"])
    assert body["late_success"] is True and body["review_reason"]


def test_late_success_after_expiry_needs_review(slow_phone: Env, settings: Any) -> None:
    env = slow_phone
    settings.PESARAIL_RECONCILE_AFTER_SECONDS = 0
    created = env.create(PHONES["success"], "25.00").json()
    with env.server.db():
        PaymentIntent.objects.filter(pk=created["id"]).update(
            expires_at=timezone.now() - timedelta(seconds=1))
        assert reconcile.reconcile_pending() == {"checked": 1, "expired": 1}
    body = _check(env, created["id"])
    assert body["status"] == "expired" and body["attempts"][0]["query_count"] == 1
    assert body["attempts"][0]["last_queried_at"] is not None
    env.sandbox.answer(created["provider_references"]["checkout_request_id"], "approve")
    env.wait_status(created["id"], "succeeded")
    body = _check(env, created["id"])
    assert body["needs_review"] is True and body["late_success"] is True
    assert body["events"][-1]["data"]["late"] is True


def test_retried_with_two_attempts(env: Env) -> None:
    created = env.create(PHONES["insufficient_funds"]).json()
    env.wait_status(created["id"], "failed")
    env.sandbox.sim.update_config(auto_answer_seconds=60)
    retried = env.server.api(env.tenant.api_key, "POST", f"/payments/{created['id']}/retry/",
                             idempotency_key="retry-render")
    body = _check_response(env, retried)
    assert [a["number"] for a in body["attempts"]] == [1, 2]
    assert [a["state"] for a in body["attempts"]] == ["failed", "pending"]
    assert body["failure"] is None and body["attempt_count"] == 2
    assert (body["provider_references"]["checkout_request_id"]
            == body["attempts"][1]["checkout_request_id"])
    _check(env, created["id"])
    env.sandbox.answer(body["attempts"][1]["checkout_request_id"], "approve")
    env.wait_status(created["id"], "succeeded")
    refreshed = env.server.api(env.tenant.api_key, "POST",
                               f"/payments/{created['id']}/refresh/")
    _check_response(env, refreshed)
    _check(env, created["id"])


def test_wallet_top_up(env: Env) -> None:
    with env.server.db():
        wallet, _ = wallets.get_or_create_wallet(env.tenant.customer, "KES")
    response = env.server.api(env.tenant.customer_token, "POST",
                              f"/wallets/{wallet.pk}/top-up/", idempotency_key="topup-render",
                              json={"amount": "250.00", "provider": "mpesa_ke"})
    intent_id = response.json()["id"]
    env.wait_status(intent_id, "succeeded")
    body = _check(env, intent_id)
    assert body["kind"] == "wallet_top_up" and body["wallet"] == wallet.pk
    assert body["customer"] == env.tenant.customer.pk


def test_metadata_description_reference_and_customer(slow_phone: Env) -> None:
    env = slow_phone
    metadata = {"order": 17, "paid": False, "ratio": 0.5, "tags": ["a", "b"],
                "nested": {"x": None, "y": [1, {"z": "ü…"}]}, "note": "ünïcode …", "empty": {}}
    created = env.create("+254711000555", "99.00", metadata=metadata,
                         description="Två kaffe", reference="INV-2024/17",
                         customer=env.tenant.customer.pk)
    body = _check_response(env, created)
    assert body["metadata"] == metadata  # key order: as stored (jsonb sorts the keys)
    assert body["customer"] == env.tenant.customer.pk and body["wallet"] is None
    _check(env, body["id"])


def test_list_matches_the_serializer(slow_phone: Env) -> None:
    env = slow_phone
    for phone in ("+254711000601", "+254711000602", PHONES["insufficient_funds"]):
        assert env.create(phone, metadata={"phone": phone}).status_code == 201
    response = env.server.api(env.tenant.api_key, "GET", "/payments/?limit=2")
    assert response.status_code == 200, response.text
    page = response.json()
    with env.server.db():
        ids = [item["id"] for item in page["results"]]
        expected = PaymentIntentSerializer(
            PaymentIntent.objects.prefetch_related("attempts").filter(pk__in=ids)
            .order_by("-pk"), many=True).data
    assert len(ids) == 2 and page["next"]
    _same_json(page["results"], list(expected))


# ------------------------------------------------------------------ cost of a poll


@pytest.fixture
def decrypts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every decryption of a stored secret (provider credentials, tokens) is recorded."""
    calls: list[str] = []
    original = crypto.decrypt

    def counting(token: str) -> str:
        calls.append(token)
        return original(token)

    monkeypatch.setattr(crypto, "decrypt", counting)
    yield calls


def _offline_account(t: Tenant) -> ProviderAccount:
    return create_account(
        t.merchant, provider="mpesa_ke", name="Offline", environment="custom",
        base_url="http://127.0.0.1:9", config={"shortcode": "174379"},
        credentials={"consumer_key": "offline-key", "consumer_secret": "offline-secret",
                     "passkey": "offline-passkey"})


def _retried_intent(t: Tenant, account: ProviderAccount, n: int = 0) -> PaymentIntent:
    """A failed attempt and an open retry with its events (rows made directly)."""
    now = timezone.now()
    intent = PaymentIntent.objects.create(
        merchant=t.merchant, provider="mpesa_ke", provider_account=account,
        customer=t.customer, amount_minor=1000 + n, currency="KES",
        phone=f"+2547110007{n:02d}", status=IntentStatus.PROCESSING, attempt_count=2,
        metadata={"n": n}, expires_at=now + timedelta(minutes=2), idempotency_key=f"poll-{n}")
    first = PaymentAttempt.objects.create(
        intent=intent, number=1, provider="mpesa_ke", provider_account=account,
        phone=intent.phone, state=AttemptState.FAILED, checkout_request_id=f"ws_CO_{n}_1",
        merchant_request_id=f"mr-{n}-1", result_code="1", resolved_at=now)
    second = PaymentAttempt.objects.create(
        intent=intent, number=2, provider="mpesa_ke", provider_account=account,
        phone=intent.phone, state=AttemptState.PENDING, checkout_request_id=f"ws_CO_{n}_2",
        next_action={"message": "Enter your PIN."}, requested_at=now)
    states.append_event(intent, "created", to_status=IntentStatus.PENDING)
    states.append_event(intent, "payment_failed", attempt=first, data={"code": "1"})
    states.append_event(intent, "retried", attempt=second)
    return intent


def _tables(queries: list[dict[str, Any]]) -> list[str]:
    names = {model._meta.db_table: model.__name__ for model in
             (PaymentIntent, PaymentAttempt, ProviderAccount, PaymentEvent)}
    found = []
    for query in queries:
        sql = query["sql"].split(" WHERE ")[0]
        found += [name for table, name in names.items() if f'FROM "{table}"' in sql]
    return found


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["merchant", "customer"])
def test_a_poll_reads_the_intent_once_and_decrypts_nothing(
        tenant: Tenant, client_for: Callable[[str | None], APIClient],
        decrypts: list[str], django_assert_max_num_queries: Any, who: str) -> None:
    intent = _retried_intent(tenant, _offline_account(tenant))
    client = client_for(tenant.api_key if who == "merchant" else tenant.customer_token)
    expected = JSONRenderer().render(PaymentIntentDetailSerializer(
        PaymentIntent.objects.get(pk=intent.pk)).data)
    assert client.get(f"/api/v1/payments/{intent.pk}/").status_code == 200  # first use of
    decrypts.clear()  # the key also records when it was used; a poll that follows:
    with django_assert_max_num_queries(4), CaptureQueriesContext(connection) as captured:
        response = client.get(f"/api/v1/payments/{intent.pk}/")
    assert response.status_code == 200, response.content
    assert response.content == expected
    assert decrypts == []
    assert sorted(_tables(captured.captured_queries)) == [
        "PaymentAttempt", "PaymentEvent", "PaymentIntent"]


@pytest.mark.django_db
def test_a_poll_is_scoped_to_the_principal(
        tenant: Tenant, other_tenant: Tenant,
        client_for: Callable[[str | None], APIClient]) -> None:
    intent = _retried_intent(tenant, _offline_account(tenant))
    for secret in (other_tenant.api_key, other_tenant.customer_token):
        response = client_for(secret).get(f"/api/v1/payments/{intent.pk}/")
        assert response.status_code == 404, response.content


@pytest.mark.django_db
def test_the_list_costs_the_same_for_one_row_or_many_and_decrypts_nothing(
        tenant: Tenant, merchant_client: APIClient, decrypts: list[str]) -> None:
    account = _offline_account(tenant)
    _retried_intent(tenant, account, 0)
    assert merchant_client.get("/api/v1/payments/").status_code == 200  # the key's first use
    with CaptureQueriesContext(connection) as one:
        assert merchant_client.get("/api/v1/payments/").status_code == 200
    intents = [_retried_intent(tenant, account, n) for n in range(1, 6)]
    decrypts.clear()
    with CaptureQueriesContext(connection) as many:
        response = merchant_client.get("/api/v1/payments/")
    assert response.status_code == 200
    assert len(many.captured_queries) == len(one.captured_queries) <= 3
    assert decrypts == []
    expected = PaymentIntentSerializer(
        PaymentIntent.objects.prefetch_related("attempts").order_by("-pk"), many=True).data
    assert len(expected) == len(intents) + 1
    _same_json(response.json()["results"], list(expected))


@pytest.mark.django_db
def test_detail_after_a_service_call_rereads_the_intent_in_three_queries(
        tenant: Tenant, decrypts: list[str], django_assert_num_queries: Any) -> None:
    intent = _retried_intent(tenant, _offline_account(tenant))
    stale = PaymentIntent.objects.get(pk=intent.pk)
    PaymentIntent.objects.filter(pk=intent.pk).update(  # as a service would
        status=IntentStatus.FAILED, failure_code="1", failure_message="Insufficient funds.")
    decrypts.clear()
    with django_assert_num_queries(3):
        body = _detail(stale)
    assert decrypts == []
    assert body["status"] == "failed" and body["failure"]["code"] == "1"
    _same_json(body, dict(PaymentIntentDetailSerializer(
        PaymentIntent.objects.get(pk=intent.pk)).data))
