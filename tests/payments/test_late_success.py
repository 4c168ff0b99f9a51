"""The late-success policy (docs/payments.md): a success that arrives after the intent
expired or was cancelled is recorded, credited once, and flagged; never lost."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from pesarail.ledger.models import Account, AccountKind, JournalEntry
from pesarail.payments import reconcile
from pesarail.payments.models import CallbackRecord, CallbackStatus, PaymentEvent, PaymentIntent
from tests.payments.conftest import Env
from tests.sandbox_fixtures import PHONES


@pytest.fixture(autouse=True)
def _slow_phone(env: Env, settings: Any) -> None:
    settings.PESARAIL_RECONCILE_AFTER_SECONDS = 0
    env.sandbox.sim.update_config(auto_answer_seconds=60)  # the customer is slow


def _settlement_balance(env: Env) -> int:
    with env.server.db():
        account = Account.objects.filter(merchant=env.tenant.merchant,
                                         kind=AccountKind.MERCHANT_SETTLEMENT).first()
        return account.balance if account else 0


def test_success_after_expiry_is_credited_and_flagged(env: Env) -> None:
    body = env.create(PHONES["success"], "25.00").json()
    checkout = body["provider_references"]["checkout_request_id"]
    with env.server.db():
        PaymentIntent.objects.filter(pk=body["id"]).update(
            expires_at=timezone.now() - timedelta(seconds=1))
        assert reconcile.reconcile_pending() == {"checked": 1, "expired": 1}
    assert env.intent(body["id"]).status == "expired"

    # The customer enters the PIN just after the final check; the callback comes late.
    env.sandbox.configure(late_callback_seconds=0.3)
    env.sandbox.answer(checkout, "approve")
    intent = env.wait_status(body["id"], "succeeded")
    assert intent.late_success is True
    assert intent.needs_review is True
    assert "after the intent was expired" in intent.review_reason
    assert _settlement_balance(env) == 2500

    detail = env.get(body["id"])
    kinds = [(e["kind"], e["from_status"], e["to_status"]) for e in detail["events"]]
    assert kinds[-2:] == [("expired", "processing", "expired"),
                          ("late_success", "expired", "succeeded")]
    assert detail["events"][-1]["data"]["late"] is True
    assert detail["late_success"] is True and detail["needs_review"] is True
    with env.server.db():
        assert CallbackRecord.objects.get().status == CallbackStatus.APPLIED
        assert JournalEntry.objects.count() == 1


def test_success_after_cancel_is_credited_and_flagged(env: Env) -> None:
    body = env.create(PHONES["success"], "40.00").json()
    checkout = body["provider_references"]["checkout_request_id"]
    cancelled = env.server.api(env.tenant.api_key, "POST", f"/payments/{body['id']}/cancel/")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["failure"]["code"] == "cancelled_by_merchant"

    env.sandbox.answer(checkout, "approve")  # the prompt was still on the phone
    intent = env.wait_status(body["id"], "succeeded")
    assert intent.late_success and intent.needs_review
    assert _settlement_balance(env) == 4000
    with env.server.db():
        assert PaymentEvent.objects.filter(intent=intent, kind="late_success").count() == 1


def test_late_failure_after_expiry_changes_nothing(env: Env) -> None:
    body = env.create(PHONES["success"]).json()
    checkout = body["provider_references"]["checkout_request_id"]
    with env.server.db():
        PaymentIntent.objects.filter(pk=body["id"]).update(
            expires_at=timezone.now() - timedelta(seconds=1))
        reconcile.reconcile_pending()
        events = PaymentEvent.objects.filter(intent_id=body["id"]).count()
    env.sandbox.answer(checkout, "cancel")
    record = env.wait_for(lambda: CallbackRecord.objects.filter(
        status=CallbackStatus.IGNORED).first(), what="ignored callback")
    assert "already expired" in record.reason
    intent = env.intent(body["id"])
    assert intent.status == "expired" and not intent.needs_review
    with env.server.db():
        assert PaymentEvent.objects.filter(intent_id=body["id"]).count() == events


def test_refresh_finds_a_late_success(env: Env) -> None:
    """The callback is lost and the payment expired; asking the provider later finds the
    success (refresh), which follows the same policy."""
    env.sandbox.configure(lose_callbacks=True)
    body = env.create(PHONES["success"]).json()
    checkout = body["provider_references"]["checkout_request_id"]
    with env.server.db():
        PaymentIntent.objects.filter(pk=body["id"]).update(
            expires_at=timezone.now() - timedelta(seconds=1))
        reconcile.reconcile_pending()
    env.sandbox.answer(checkout, "approve")
    response = env.server.api(env.tenant.api_key, "POST", f"/payments/{body['id']}/refresh/")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    assert response.json()["late_success"] is True


def test_cancel_refused_when_the_customer_already_paid(env: Env) -> None:
    env.sandbox.configure(lose_callbacks=True)
    body = env.create(PHONES["success"]).json()
    env.sandbox.answer(body["provider_references"]["checkout_request_id"], "approve")
    response = env.server.api(env.tenant.api_key, "POST", f"/payments/{body['id']}/cancel/")
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "already_succeeded"
    intent = env.intent(body["id"])
    assert intent.status == "succeeded" and not intent.late_success
