"""Callback intake security: forged, malformed, duplicate and mismatched callbacks are
stored with their reason and never mark anything paid."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from pesarail.ledger.models import JournalEntry
from pesarail.payments import reconcile
from pesarail.payments.models import CallbackRecord, CallbackStatus, PaymentEvent
from tests.payments.conftest import Env
from tests.sandbox_fixtures import PHONES

ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}
REJECTED = {"ResultCode": 1, "ResultDesc": "Rejected"}


@pytest.fixture
def held(env: Env) -> dict[str, Any]:
    """A real payment whose real success callback the simulator kept (not delivered):
    ``{"intent": id, "checkout": CheckoutRequestID, "payload": the callback body}``."""
    env.sandbox.configure(lose_callbacks=True)
    body = env.create(PHONES["success"], "10.00").json()
    checkout = body["provider_references"]["checkout_request_id"]
    env.sandbox.wait_until_answered(checkout)
    payload = env.sandbox.sim.callbacks(checkout)[0]["payload"]
    return {"intent": body["id"], "checkout": checkout, "payload": payload}


def _post(env: Env, payload: Any, url: str | None = None, **kwargs: Any) -> Any:
    return env.server.http.post(url or env.account.callback_url,
                                content=json.dumps(payload).encode(),
                                headers={"Content-Type": "application/json"}, **kwargs)


def _item(payload: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    forged = copy.deepcopy(payload)
    for item in forged["Body"]["stkCallback"]["CallbackMetadata"]["Item"]:
        if item["Name"] == name:
            item["Value"] = value
    return forged


def _nothing_paid(env: Env, intent_id: str) -> None:
    intent = env.intent(intent_id)
    assert intent.status == "processing"
    assert intent.ledger_entry_id is None
    with env.server.db():
        assert not JournalEntry.objects.exists()


def test_the_real_callback_applies_once_and_a_repeat_is_a_duplicate(
        env: Env, held: dict[str, Any]) -> None:
    first = _post(env, held["payload"])
    assert (first.status_code, first.json()) == (200, ACCEPTED)
    assert env.intent(held["intent"]).status == "succeeded"
    second = _post(env, held["payload"])
    assert (second.status_code, second.json()) == (200, ACCEPTED)
    with env.server.db():
        statuses = list(CallbackRecord.objects.order_by("received_at", "id")
                        .values_list("status", flat=True))
        assert statuses == [CallbackStatus.APPLIED, CallbackStatus.DUPLICATE]
        assert JournalEntry.objects.count() == 1
        assert PaymentEvent.objects.filter(intent_id=held["intent"]).count() == 3


def test_wrong_token_is_rejected_and_stored(env: Env, held: dict[str, Any]) -> None:
    url = env.server.url + "/hooks/mpesa_ke/not-the-token/"
    response = _post(env, held["payload"], url=url)
    assert (response.status_code, response.json()) == (403, REJECTED)
    with env.server.db():
        record = CallbackRecord.objects.get()
        assert (record.status, record.reason_code) == (CallbackStatus.REJECTED, "unknown_token")
        assert record.reason and record.provider_account_id is None
        assert json.loads(record.body_text) == held["payload"]
        assert record.source_ip == "127.0.0.1"
        assert "not-the-token" not in json.dumps(record.headers)
    _nothing_paid(env, held["intent"])


def test_unknown_checkout_request_id_is_rejected(env: Env, held: dict[str, Any]) -> None:
    forged = copy.deepcopy(held["payload"])
    forged["Body"]["stkCallback"]["CheckoutRequestID"] = "ws_CO_01012026000000000000000000"
    response = _post(env, forged)
    assert (response.status_code, response.json()) == (200, REJECTED)
    with env.server.db():
        record = CallbackRecord.objects.get()
        assert (record.status, record.reason_code) == (CallbackStatus.REJECTED,
                                                       "unknown_checkout")
        assert record.checkout_request_id == "ws_CO_01012026000000000000000000"
    _nothing_paid(env, held["intent"])


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("Amount", 1.0, "amount mismatch"),
    ("Amount", 10.5, "amount mismatch"),
    ("PhoneNumber", 254711222333, "phone mismatch"),
])
def test_mismatch_is_flagged_never_credited(env: Env, held: dict[str, Any], name: str,
                                            value: Any, problem: str, settings: Any) -> None:
    response = _post(env, _item(held["payload"], name, value))
    assert (response.status_code, response.json()) == (200, ACCEPTED)
    with env.server.db():
        record = CallbackRecord.objects.get()
        assert record.status == CallbackStatus.FLAGGED
        assert problem in record.reason
        assert record.dedupe_key is None  # it does not block the genuine callback
    intent = env.intent(held["intent"])
    assert intent.needs_review and problem in intent.review_reason
    _nothing_paid(env, held["intent"])

    # The genuine callback (or the provider's own status query) still decides.
    genuine = _post(env, held["payload"])
    assert genuine.status_code == 200
    intent = env.wait_status(held["intent"], "succeeded")
    assert intent.needs_review  # staff still see the forged one
    with env.server.db():
        assert JournalEntry.objects.count() == 1
        assert JournalEntry.objects.get().postings.get(amount__gt=0).amount == 1000


def test_malformed_callback_is_rejected_and_stored(env: Env, held: dict[str, Any]) -> None:
    for body in (b"not json", b'{"Body": {}}', b'{"Body": {"stkCallback": {"ResultCode": 0}}}'):
        response = env.server.http.post(env.account.callback_url, content=body)
        assert (response.status_code, response.json()) == (200, REJECTED)
    with env.server.db():
        records = list(CallbackRecord.objects.all())
        assert len(records) == 3
        assert {(r.status, r.reason_code) for r in records} == {
            (CallbackStatus.REJECTED, "malformed")}
        assert {bytes(r.body) for r in records} == {
            b"not json", b'{"Body": {}}', b'{"Body": {"stkCallback": {"ResultCode": 0}}}'}
    _nothing_paid(env, held["intent"])


def test_ip_allow_list(env: Env, held: dict[str, Any]) -> None:
    with env.server.db():
        env.account.config = {**env.account.config, "ip_allowlist": ["196.201.214.0/24"]}
        env.account.save(update_fields=["config"])
    response = _post(env, held["payload"])
    assert (response.status_code, response.json()) == (403, REJECTED)
    with env.server.db():
        record = CallbackRecord.objects.get()
        assert (record.status, record.reason_code) == (CallbackStatus.REJECTED,
                                                       "ip_not_allowed")
    _nothing_paid(env, held["intent"])

    with env.server.db():
        env.account.config = {**env.account.config, "ip_allowlist": ["127.0.0.0/8"]}
        env.account.save(update_fields=["config"])
    assert _post(env, held["payload"]).status_code == 200
    assert env.intent(held["intent"]).status == "succeeded"


def test_forged_success_is_not_trusted_when_callbacks_are_confirmed(env: Env) -> None:
    """Confirmation on: a success callback the provider's query contradicts is flagged,
    and the provider's answer (the customer cancelled) is what happens."""
    with env.server.db():
        env.account.config = {**env.account.config, "confirm_callbacks_with_query": True}
        env.account.save(update_fields=["config"])
    env.sandbox.configure(lose_callbacks=True)
    body = env.create(PHONES["cancelled"], "10.00").json()
    checkout = body["provider_references"]["checkout_request_id"]
    env.sandbox.wait_until_answered(checkout)
    real = env.sandbox.sim.callbacks(checkout)[0]["payload"]["Body"]["stkCallback"]
    forged = {"Body": {"stkCallback": {
        "MerchantRequestID": real["MerchantRequestID"], "CheckoutRequestID": checkout,
        "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
        "CallbackMetadata": {"Item": [
            {"Name": "Amount", "Value": 10.0}, {"Name": "MpesaReceiptNumber", "Value": "FAKE0001"},
            {"Name": "TransactionDate", "Value": 20260101120000},
            {"Name": "PhoneNumber", "Value": 254700001032}]}}}}
    response = _post(env, forged)
    assert (response.status_code, response.json()) == (200, ACCEPTED)
    intent = env.intent(body["id"])
    assert intent.status == "cancelled" and intent.ledger_entry_id is None
    with env.server.db():
        record = CallbackRecord.objects.get()
        assert (record.status, record.reason_code) == (CallbackStatus.FLAGGED,
                                                       "contradicted_by_query")
        assert not JournalEntry.objects.exists()


def test_forged_success_while_the_prompt_is_open_waits_for_the_provider(env: Env) -> None:
    with env.server.db():
        env.account.config = {**env.account.config, "confirm_callbacks_with_query": True}
        env.account.save(update_fields=["config"])
    env.sandbox.sim.update_config(auto_answer_seconds=60)
    body = env.create(PHONES["success"], "10.00").json()
    checkout = body["provider_references"]["checkout_request_id"]
    forged = {"Body": {"stkCallback": {
        "MerchantRequestID": "x", "CheckoutRequestID": checkout, "ResultCode": 0,
        "ResultDesc": "ok", "CallbackMetadata": {"Item": [
            {"Name": "Amount", "Value": 10.0}, {"Name": "MpesaReceiptNumber", "Value": "FAKE2"},
            {"Name": "PhoneNumber", "Value": 254708374149}]}}}}
    assert _post(env, forged).status_code == 200
    with env.server.db():
        record = CallbackRecord.objects.get()
        assert (record.status, record.reason_code) == (CallbackStatus.RECEIVED, "unconfirmed")
    _nothing_paid(env, body["id"])


def test_confirmed_genuine_callback_applies(env: Env) -> None:
    with env.server.db():
        env.account.config = {**env.account.config, "confirm_callbacks_with_query": True}
        env.account.save(update_fields=["config"])
    body = env.create(PHONES["success"], "10.00").json()
    intent = env.wait_status(body["id"], "succeeded")
    assert intent.ledger_entry_id is not None
    assert env.sandbox.stats()["queries"] >= 1


def test_callback_endpoint_answers_only_post(env: Env) -> None:
    response = env.server.http.get(env.account.callback_url)
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "method_not_allowed"
    unknown = env.server.http.post(env.server.url + "/hooks/nosuch/abc/", content=b"{}")
    assert unknown.status_code == 404
    with env.server.db():
        assert CallbackRecord.objects.get().reason_code == "unknown_provider"


def test_reconciler_resolves_a_flagged_payment_by_query(env: Env, held: dict[str, Any],
                                                        settings: Any) -> None:
    settings.PESARAIL_RECONCILE_AFTER_SECONDS = 0
    _post(env, _item(held["payload"], "Amount", 1.0))
    with env.server.db():
        assert reconcile.reconcile_pending() == {"checked": 1, "applied": 1}
    intent = env.intent(held["intent"])
    assert intent.status == "succeeded" and intent.needs_review
    with env.server.db():
        assert JournalEntry.objects.get().postings.get(amount__gt=0).amount == 1000


def test_a_first_delivery_costs_two_commits_and_records_everything(
        env: Env, held: dict[str, Any]) -> None:
    """Store the raw callback (one commit), then apply it and record on its row what was
    learned in one transaction: no separate autocommitted updates of the row (each would
    wait for its own WAL flush)."""
    from django.db import connection

    from pesarail.payments import callbacks

    writes: list[tuple[str, bool]] = []

    def spy(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        verb = sql.lstrip().split(None, 1)[0].upper()
        if verb in {"INSERT", "UPDATE", "DELETE"}:
            table = sql.split('"')[1] if '"' in sql else ""
            writes.append((f"{verb} {table}", connection.in_atomic_block))
        return execute(sql, params, many, context)

    path = env.account.callback_url.rstrip("/").split("/")
    inbound = callbacks.Inbound(
        provider="mpesa_ke", token=path[-1], method="POST",
        headers={"Content-Type": "application/json"},
        body=json.dumps(held["payload"]).encode(), source_ip="127.0.0.1")
    with connection.execute_wrapper(spy):
        answer = callbacks.handle(inbound)
    assert (answer.status, answer.body) == (200, ACCEPTED)
    outside = [what for what, atomic in writes if not atomic]
    assert outside == ["INSERT payments_callbackrecord"]
    assert [w for w, _ in writes].count("UPDATE payments_callbackrecord") == 2  # claim, outcome
    record = CallbackRecord.objects.get(pk=answer.record_id)
    assert record.status == CallbackStatus.APPLIED
    assert record.provider_account_id == env.account.pk
    assert record.checkout_request_id == held["checkout"]
    assert record.result_code == "0"
    assert record.attempt_id is not None and record.dedupe_key == f"{held['checkout']}:0"
    assert env.intent(held["intent"]).status == "succeeded"


def test_a_rejected_callback_still_records_what_was_learned(
        env: Env, held: dict[str, Any]) -> None:
    """A callback for a reference no attempt has is kept with its account, reference
    and result code, in the one final update."""
    payload = copy.deepcopy(held["payload"])
    payload["Body"]["stkCallback"]["CheckoutRequestID"] = "ws_CO_nobody_knows_this"
    response = _post(env, payload)
    assert (response.status_code, response.json()) == (200, REJECTED)
    with env.server.db():
        record = CallbackRecord.objects.get()
        assert (record.status, record.reason_code) == (CallbackStatus.REJECTED,
                                                       "unknown_checkout")
        assert record.provider_account_id == env.account.pk
        assert record.checkout_request_id == "ws_CO_nobody_knows_this"
        assert record.result_code == "0" and record.attempt_id is None
