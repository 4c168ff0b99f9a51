"""The whole payment path against the Daraja simulator over real HTTP: create -> prompt
-> callback -> final status, for success and every scripted failure."""

from __future__ import annotations

from pesarail.ledger.models import Account, AccountKind, JournalEntry
from pesarail.payments.models import AttemptState, CallbackRecord, CallbackStatus, PaymentEvent
from pesarail.providers.mpesa_ke import RESULT_CODES
from tests.payments.conftest import Env
from tests.sandbox_fixtures import PHONES


def test_success_end_to_end(env: Env) -> None:
    response = env.create(PHONES["success"], "10.00")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "processing"
    assert body["amount"] == "10.00" and body["currency"] == "KES"
    assert body["next_action"]["type"] == "phone_prompt"
    assert body["next_action"]["phone"] == "+254708***149"
    assert "M-Pesa PIN" in body["next_action"]["message"]
    checkout = body["provider_references"]["checkout_request_id"]
    assert checkout.startswith("ws_CO_")
    assert body["attempts"][0]["state"] == "pending"

    intent = env.wait_status(body["id"], "succeeded")
    assert intent.provider_receipt and intent.succeeded_at is not None
    assert intent.ledger_entry_id is not None
    detail = env.get(body["id"])
    assert detail["next_action"] is None
    assert detail["provider_references"]["receipt"] == intent.provider_receipt
    assert [e["kind"] for e in detail["events"]] == ["created", "prompt_sent", "succeeded"]
    assert [(e["from_status"], e["to_status"]) for e in detail["events"]] == [
        ("", "pending"), ("pending", "processing"), ("processing", "succeeded")]
    assert detail["attempts"][0]["state"] == "succeeded"

    with env.server.db():
        entry = JournalEntry.objects.get(pk=intent.ledger_entry_id)
        assert entry.idempotency_key == f"mpesa_ke:{checkout}"
        settlement = Account.objects.get(merchant=env.tenant.merchant,
                                         kind=AccountKind.MERCHANT_SETTLEMENT)
        assert settlement.balance == 1000
        record = CallbackRecord.objects.get(checkout_request_id=checkout)
        assert record.status == CallbackStatus.APPLIED
        assert record.provider_account_id == env.account.pk
        assert env.account.callback_token not in record.body_text
        assert record.token_hash and record.token_hash != env.account.callback_token


SCRIPTED = [  # phone, final status, result code
    (PHONES["cancelled"], "cancelled", "1032"),
    (PHONES["insufficient_funds"], "failed", "1"),
    (PHONES["unreachable"], "expired", "1037"),
    (PHONES["wrong_pin"], "failed", "2001"),
    (PHONES["busy"], "failed", "1001"),
    (PHONES["expired"], "expired", "1019"),
]


def test_scripted_failures(env: Env) -> None:
    """Every scripted failure at once (six phones, six prompts): each ends in its
    status with the adapter's message, and nothing reaches the ledger."""
    created = {}
    for phone, status, code in SCRIPTED:
        response = env.create(phone, "10.00")
        assert response.status_code == 201, response.text
        created[response.json()["id"]] = (status, code)
    for intent_id, (status, code) in created.items():
        intent = env.wait_status(intent_id, status)
        assert intent.failure_code == code, (status, code)
        assert intent.failure_message == RESULT_CODES[code].message
        assert intent.failure_retryable is RESULT_CODES[code].retryable
        assert intent.ledger_entry_id is None
        detail = env.get(intent.pk)
        assert detail["failure"] == {"code": code, "message": RESULT_CODES[code].message,
                                     "retryable": RESULT_CODES[code].retryable}
        assert detail["events"][-1]["to_status"] == status
        assert [e["kind"] for e in detail["events"]] == ["created", "prompt_sent",
                                                         f"payment_{status}"]
        assert detail["attempts"][0]["state"] in {AttemptState.FAILED, AttemptState.CANCELLED,
                                                  AttemptState.EXPIRED}
    with env.server.db():
        assert not JournalEntry.objects.exists()
        assert PaymentEvent.objects.count() == 3 * len(SCRIPTED)
