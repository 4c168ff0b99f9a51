"""The payments API: validation, idempotency, the per-phone throttle, list filters,
customers, cancel/retry, and wallet top-ups (end to end against the simulator)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from pesarail.api.models import IdempotencyRecord
from pesarail.ledger.models import JournalEntry
from pesarail.payments.models import PaymentAttempt, PaymentIntent
from pesarail.providers.models import ProviderAccount
from pesarail.providers.services import create_account
from pesarail.tenants import services as tenants
from pesarail.wallets import services as wallets
from tests.factories import CustomerFactory, Tenant
from tests.payments.conftest import Env
from tests.sandbox_fixtures import PHONES


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json()["error"])


# ------------------------------------------------------------------------ create


@pytest.fixture
def offline_account(tenant: Tenant) -> ProviderAccount:
    return create_account(
        tenant.merchant, provider="mpesa_ke", name="Offline", environment="custom",
        base_url="http://127.0.0.1:9", config={"shortcode": "174379"},
        credentials={"consumer_key": "offline-key", "consumer_secret": "offline-secret",
                     "passkey": "offline-passkey"})


@pytest.mark.parametrize(("changes", "field", "code"), [
    ({"amount": "10.50"}, "amount", "amount_not_whole"),
    ({"amount": "0"}, "amount", "validation_error"),
    ({"amount": 10}, "amount", "validation_error"),
    ({"amount": "1e3"}, "amount", "validation_error"),
    ({"currency": "USD"}, "currency", "currency_not_supported"),
    ({"currency": "XYZ"}, "currency", "validation_error"),
    ({"phone_number": "12345"}, "phone_number", "validation_error"),
    ({"phone_number": "+255712345678"}, "phone_number", "invalid_phone"),
    ({"provider": "nope"}, "provider", "validation_error"),
    ({"provider": None}, "provider", "validation_error"),
    ({"metadata": ["not", "an", "object"]}, "metadata", "validation_error"),
    ({"customer": "cus_nope"}, "customer", "not_found"),
])
@pytest.mark.django_db
def test_invalid_requests_are_refused_before_anything_is_sent(
        merchant_client: APIClient, offline_account: ProviderAccount,
        changes: dict[str, Any], field: str, code: str) -> None:
    """Refused before an intent exists (so before any provider call: the account points
    at a closed port and nothing is sent)."""
    body = {"amount": "10.00", "currency": "KES", "provider": "mpesa_ke",
            "phone_number": PHONES["success"], **changes}
    body = {k: v for k, v in body.items() if v is not None}
    response = merchant_client.post("/api/v1/payments/", body, format="json",
                                    HTTP_IDEMPOTENCY_KEY="bad-1")
    assert response.status_code in (400, 404), response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert field in error["fields"]
    assert not PaymentIntent.objects.exists()
    # Rejected before running: the key is free for the corrected request.
    assert not IdempotencyRecord.objects.exists()


def test_idempotency_key_is_required(env: Env) -> None:
    response = env.server.http.post(
        f"{env.server.url}/api/v1/payments/",
        json={"amount": "10.00", "provider": "mpesa_ke", "phone_number": PHONES["success"]},
        headers={"Authorization": f"Token {env.tenant.api_key}"})
    assert _error(response, 400)["code"] == "idempotency_key_required"
    assert env.sandbox.stats()["pushes"] == 0


def test_same_key_same_body_replays_without_a_second_push(env: Env) -> None:
    first = env.create(PHONES["success"], key="order-17")
    env.wait_status(first.json()["id"], "succeeded")
    second = env.create(PHONES["success"], key="order-17")
    assert second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert env.sandbox.stats()["pushes"] == 1
    with env.server.db():
        assert PaymentIntent.objects.count() == 1


def test_same_key_different_body_is_a_conflict(env: Env) -> None:
    assert env.create(PHONES["success"], "10.00", key="order-18").status_code == 201
    error = _error(env.create(PHONES["success"], "11.00", key="order-18"), 409)
    assert error["code"] == "idempotency_key_reused"
    assert env.sandbox.stats()["pushes"] == 1


def test_lost_idempotency_record_still_finds_the_intent(env: Env) -> None:
    """The database backstop: unique (merchant, idempotency key) on the intent."""
    first = env.create(PHONES["success"], key="order-19").json()
    with env.server.db():
        IdempotencyRecord.objects.all().delete()
    again = env.create(PHONES["success"], key="order-19")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"]
    assert env.sandbox.stats()["pushes"] == 1


def test_no_provider_account_is_unprocessable(env: Env) -> None:
    other = tenants.create_merchant("No Till Shop")[1].secret
    response = env.server.api(other, "POST", "/payments/", idempotency_key="k", json={
        "amount": "10.00", "provider": "mpesa_ke", "phone_number": PHONES["success"]})
    assert _error(response, 422)["code"] == "no_provider_account"


def test_second_prompt_to_a_busy_phone_is_refused(env: Env) -> None:
    env.sandbox.sim.update_config(auto_answer_seconds=60)
    first = env.create(PHONES["success"]).json()
    error = _error(env.create(PHONES["success"], "20.00"), 409)
    assert error["code"] == "phone_busy"
    assert "+254708***149" in error["message"]
    assert env.sandbox.stats()["pushes"] == 1
    # Another phone is fine; once the first is cancelled the phone is free again.
    assert env.create("+254711000222").status_code == 201
    cancel = env.server.api(env.tenant.api_key, "POST", f"/payments/{first['id']}/cancel/")
    assert cancel.status_code == 200
    env.sandbox.answer(first["provider_references"]["checkout_request_id"], "cancel")
    assert env.create(PHONES["success"], "30.00").status_code == 201


def test_retry_after_failure_is_a_new_attempt(env: Env) -> None:
    body = env.create(PHONES["insufficient_funds"]).json()
    env.wait_status(body["id"], "failed")
    # The customer topped up their M-Pesa; approve the next prompt by hand.
    env.sandbox.sim.update_config(auto_answer_seconds=60)
    retried = env.server.api(env.tenant.api_key, "POST", f"/payments/{body['id']}/retry/",
                             idempotency_key="retry-a")
    assert retried.status_code == 200, retried.text
    data = retried.json()
    assert data["status"] == "processing" and data["failure"] is None
    assert [a["state"] for a in data["attempts"]] == ["failed", "pending"]
    env.sandbox.answer(data["attempts"][1]["checkout_request_id"], "approve")
    intent = env.wait_status(body["id"], "succeeded")
    assert intent.attempt_count == 2
    kinds = [e["kind"] for e in env.get(body["id"])["events"]]
    assert kinds == ["created", "prompt_sent", "payment_failed", "retried", "prompt_sent",
                     "succeeded"]
    # A succeeded payment cannot be retried or cancelled.
    again = env.server.api(env.tenant.api_key, "POST", f"/payments/{body['id']}/retry/",
                           idempotency_key="retry-b")
    assert _error(again, 409)["code"] == "not_retryable"
    cancel = env.server.api(env.tenant.api_key, "POST", f"/payments/{body['id']}/cancel/")
    assert _error(cancel, 409)["code"] == "not_cancellable"


def test_expired_payment_cannot_be_retried(env: Env) -> None:
    body = env.create(PHONES["unreachable"]).json()
    env.wait_status(body["id"], "expired")
    response = env.server.api(env.tenant.api_key, "POST", f"/payments/{body['id']}/retry/",
                              idempotency_key="retry-x")
    assert _error(response, 409)["code"] == "not_retryable"


def test_refresh_asks_the_provider(env: Env) -> None:
    env.sandbox.configure(lose_callbacks=True)
    body = env.create(PHONES["success"]).json()
    env.sandbox.wait_until_answered(body["provider_references"]["checkout_request_id"])
    response = env.server.api(env.tenant.api_key, "POST", f"/payments/{body['id']}/refresh/")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    with env.server.db():
        assert PaymentAttempt.objects.get(intent_id=body["id"]).query_count == 1


def test_refresh_when_the_provider_is_down_is_503(env: Env) -> None:
    env.sandbox.sim.update_config(auto_answer_seconds=60)
    body = env.create(PHONES["success"]).json()
    env.sandbox.server.stop()
    response = env.server.api(env.tenant.api_key, "POST", f"/payments/{body['id']}/refresh/")
    assert _error(response, 503)["code"] == "provider_unavailable"


# -------------------------------------------------------------------------- list


def test_list_filters_and_search(env: Env) -> None:
    ok = env.create(PHONES["success"], reference="INV-1").json()
    bad = env.create(PHONES["cancelled"], reference="INV-2").json()
    env.wait_status(ok["id"], "succeeded")
    env.wait_status(bad["id"], "cancelled")

    def ids(query: str) -> list[str]:
        response = env.server.api(env.tenant.api_key, "GET", f"/payments/{query}")
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["results"]]

    assert ids("") == [bad["id"], ok["id"]]
    assert ids("?status=succeeded") == [ok["id"]]
    assert ids("?status=cancelled&provider=mpesa_ke") == [bad["id"]]
    assert ids("?reference=INV-2") == [bad["id"]]
    assert ids("?phone=0708374149") == [ok["id"]]
    assert ids("?search=INV-1") == [ok["id"]]
    assert ids("?created_after=2000-01-01T00:00:00Z&kind=payment") == [bad["id"], ok["id"]]
    assert ids("?created_before=2000-01-01T00:00:00Z") == []
    assert ids("?needs_review=false&limit=1") == [bad["id"]]
    for query in ("?status=paid", "?status=", "?phone=12", "?needs_review=yes",
                  "?created_after=yesterday", "?statuss=failed"):
        response = env.server.api(env.tenant.api_key, "GET", f"/payments/{query}")
        assert response.status_code == 400, (query, response.text)
    listed = env.server.api(env.tenant.api_key, "GET", "/payments/").json()["results"][0]
    assert "events" not in listed and listed["object"] == "payment_intent"


def test_customers_see_only_their_own_payments_and_cannot_create(env: Env) -> None:
    mine = env.create(PHONES["success"], customer=env.tenant.customer.pk).json()
    theirs = env.create("+254711000333").json()
    token = env.tenant.customer_token
    listed = env.server.api(token, "GET", "/payments/").json()["results"]
    assert [item["id"] for item in listed] == [mine["id"]]
    assert env.server.api(token, "GET", f"/payments/{theirs['id']}/").status_code == 404
    assert env.server.api(token, "GET", f"/payments/{mine['id']}/").status_code == 200
    response = env.server.api(token, "POST", "/payments/", idempotency_key="c1", json={
        "amount": "10.00", "provider": "mpesa_ke", "phone_number": PHONES["success"]})
    assert _error(response, 403)["type"] == "permission_error"


# ------------------------------------------------------------------------ top-up


def test_wallet_top_up_credits_the_wallet_once(env: Env) -> None:
    with env.server.db():
        wallet, _ = wallets.get_or_create_wallet(env.tenant.customer, "KES")
    response = env.server.api(env.tenant.customer_token, "POST",
                              f"/wallets/{wallet.pk}/top-up/", idempotency_key="topup-1",
                              json={"amount": "250.00", "provider": "mpesa_ke"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "wallet_top_up" and body["wallet"] == wallet.pk
    assert body["customer"] == env.tenant.customer.pk
    assert body["phone_number"] == env.tenant.customer.phone_number
    env.wait_status(body["id"], "succeeded")
    balance = env.server.api(env.tenant.customer_token, "GET", f"/wallets/{wallet.pk}/")
    assert balance.json()["balance"] == "250.00", balance.text
    with env.server.db():
        entry = JournalEntry.objects.get()
        assert entry.postings.get(amount__gt=0).account_id == wallet.account_id
    # The same request again: replayed, no second prompt, no second credit.
    again = env.server.api(env.tenant.customer_token, "POST", f"/wallets/{wallet.pk}/top-up/",
                           idempotency_key="topup-1",
                           json={"amount": "250.00", "provider": "mpesa_ke"})
    assert again.status_code == 201 and again.json()["id"] == body["id"]
    assert env.sandbox.stats()["pushes"] == 1


def test_top_up_of_someone_elses_wallet_is_not_found(env: Env) -> None:
    with env.server.db():
        stranger = CustomerFactory(merchant=env.tenant.merchant)
        wallet, _ = wallets.get_or_create_wallet(stranger, "KES")
    response = env.server.api(env.tenant.customer_token, "POST",
                              f"/wallets/{wallet.pk}/top-up/", idempotency_key="t2",
                              json={"amount": "10.00", "provider": "mpesa_ke"})
    assert response.status_code == 404
    # The merchant may top up any of its customers' wallets.
    by_merchant = env.server.api(env.tenant.api_key, "POST", f"/wallets/{wallet.pk}/top-up/",
                                 idempotency_key="t3",
                                 json={"amount": "10.00", "provider": "mpesa_ke",
                                       "phone_number": "0711000444"})
    assert by_merchant.status_code == 201, by_merchant.text
    assert by_merchant.json()["phone_number"] == "+254711000444"
