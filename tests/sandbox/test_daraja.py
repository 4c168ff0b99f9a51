"""The Daraja simulator over real HTTP: OAuth, STK push, STK query, callbacks, chaos."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from pesarail.sandbox.daraja import (
    DEFAULT_APP,
    EAT,
    DarajaApp,
    eat_now,
    stk_password,
    stk_timestamp,
)

from .conftest import SAFARICOM_TEST_MSISDN, Daraja, Receiver

PUSH = "/mpesa/stkpush/v1/processrequest"
QUERY = "/mpesa/stkpushquery/v1/query"
TOKEN = "/oauth/v1/generate"
REQUEST_ID = re.compile(r"^[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\d{7}$")
SECOND_APP = DarajaApp("second-key", "second-secret", "600100", "second-passkey", "second")


def assert_envelope(response: httpx.Response, status: int, code: str, message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"requestId", "errorCode", "errorMessage"}
    assert body["errorCode"] == code
    assert body["errorMessage"] == message
    assert body["requestId"]


def stk_callback(body: Any) -> dict[str, Any]:
    assert set(body) == {"Body"}
    assert set(body["Body"]) == {"stkCallback"}
    callback: dict[str, Any] = body["Body"]["stkCallback"]
    return callback


# --- OAuth ---------------------------------------------------------------------------


def test_token_success_shape_and_count(daraja: Daraja) -> None:
    response = daraja.get_token()
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in"}
    assert re.fullmatch(r"[A-Za-z0-9]{28}", body["access_token"])
    assert body["expires_in"] == "3599"  # a string, like real Daraja
    daraja.get_token()
    assert daraja.sim.token_issue_count("pesarail-sandbox") == 2
    assert daraja.control("GET", "stats").json()["token_issues"] == {"pesarail-sandbox": 2}


def test_token_expires_in_as_number_switch(make_daraja: Callable[..., Daraja]) -> None:
    daraja = make_daraja(expires_in_as_number=True, token_ttl_seconds=120)
    assert daraja.get_token().json()["expires_in"] == 120


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + "cGVzYXJhaWwtc2FuZGJveC1rZXk6d3Jvbmc="},  # key:wrong
        {"Authorization": "Basic not-base64!!"},
        {"Authorization": "Bearer something"},
        {"Authorization": "Basic " + "bm8tY29sb24="},  # "no-colon"
    ],
    ids=["missing", "wrong-secret", "bad-base64", "bearer-scheme", "no-colon"],
)
def test_token_bad_authentication(daraja: Daraja, headers: dict[str, str]) -> None:
    response = daraja.http.get(TOKEN, params={"grant_type": "client_credentials"}, headers=headers)
    assert_envelope(response, 400, "400.008.01", "Invalid Authentication passed")
    assert daraja.sim.token_issue_count() == 0


@pytest.mark.parametrize("params", [{}, {"grant_type": "password"}], ids=["missing", "wrong"])
def test_token_bad_grant_type(daraja: Daraja, params: dict[str, str]) -> None:
    response = daraja.http.get(
        TOKEN, params=params, auth=(DEFAULT_APP.consumer_key, DEFAULT_APP.consumer_secret)
    )
    assert_envelope(response, 400, "400.008.02", "Invalid grant type passed")


def test_token_post_is_method_not_allowed(daraja: Daraja) -> None:
    response = daraja.http.post(
        TOKEN,
        params={"grant_type": "client_credentials"},
        auth=(DEFAULT_APP.consumer_key, DEFAULT_APP.consumer_secret),
    )
    assert response.status_code == 405
    assert response.json()["errorCode"] == "405.001"


def test_new_token_invalidates_previous_one_of_same_app_only(daraja: Daraja) -> None:
    daraja.sim.add_app(SECOND_APP)
    other = daraja.token(SECOND_APP)
    first = daraja.token()
    second = daraja.token()
    assert first != second
    assert_envelope(daraja.push(token=first), 404, "404.001.03", "Invalid Access Token")
    assert daraja.push("254711000001", token=second).status_code == 200
    # the second app's token is untouched by the first app's refresh
    assert daraja.push("254711000002", token=other, app=SECOND_APP).status_code == 200


def test_token_expires(make_daraja: Callable[..., Daraja]) -> None:
    daraja = make_daraja(token_ttl_seconds=0.3)
    token = daraja.token()
    assert daraja.push("254711000003", token=token).status_code == 200
    time.sleep(0.4)
    assert_envelope(
        daraja.push("254711000004", token=token), 404, "404.001.03", "Invalid Access Token"
    )


def test_revoke_tokens(daraja: Daraja) -> None:
    token = daraja.token()
    assert daraja.control("POST", "revoke-tokens").json() == {"revoked": 1}
    assert_envelope(daraja.push(token=token), 404, "404.001.03", "Invalid Access Token")
    assert daraja.push(token=daraja.token()).status_code == 200


# --- gateway errors on API calls ----------------------------------------------------


def test_missing_and_wrong_bearer(daraja: Daraja) -> None:
    body = daraja.push_body()
    assert_envelope(daraja.http.post(PUSH, json=body), 404, "404.001.03", "Invalid Access Token")
    bad = {"Authorization": "Bearer not-a-token"}
    assert_envelope(
        daraja.http.post(PUSH, json=body, headers=bad), 404, "404.001.03", "Invalid Access Token"
    )
    basic = {"Authorization": "Basic cGVzYXJhaWwtc2FuZGJveC1rZXk6cGVzYXJhaWwtc2FuZGJveC1zZWNyZXQ="}
    response = daraja.http.post(PUSH, json=body, headers=basic)
    assert_envelope(response, 404, "404.001.04", "Invalid Authenticator Header")


@pytest.mark.parametrize("path", [PUSH, QUERY])
def test_get_on_post_endpoint_is_405(daraja: Daraja, path: str) -> None:
    response = daraja.http.get(path, headers=daraja.bearer())
    assert response.status_code == 405
    assert response.json()["errorCode"] == "405.001"


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[1, 2]", b"\xff\xfe"], ids=["broken", "array", "binary"]
)
def test_malformed_payload(daraja: Daraja, raw: bytes) -> None:
    headers = {**daraja.bearer(), "Content-Type": "application/json"}
    response = daraja.http.post(PUSH, content=raw, headers=headers)
    assert_envelope(response, 400, "400.002.05", "Invalid request payload")


def test_unknown_path(daraja: Daraja) -> None:
    response = daraja.http.post(
        "/mpesa/stkpush/v9/processrequest", json={}, headers=daraja.bearer()
    )
    assert_envelope(response, 404, "404.001.01", "Resource not found")


# --- STK push validation ------------------------------------------------------------


def _two_hours_ago() -> str:
    return stk_timestamp(eat_now() - timedelta(hours=2))


INVALID_FIELDS: list[tuple[str, Any, str]] = [
    ("BusinessShortCode", 600000, "BusinessShortCode"),
    ("BusinessShortCode", "abc", "BusinessShortCode"),
    ("Timestamp", "2024", "Timestamp"),
    ("Timestamp", "20241340999999", "Timestamp"),
    ("Timestamp", "__two_hours_ago__", "Timestamp"),
    ("TransactionType", "CustomerPay", "TransactionType"),
    ("Amount", "1.50", "Amount"),
    ("Amount", 1.5, "Amount"),
    ("Amount", 0, "Amount"),
    ("Amount", -5, "Amount"),
    ("Amount", "ten", "Amount"),
    ("Amount", True, "Amount"),
    ("PartyA", "0708374149", "PartyA"),
    ("PartyA", 25470837414, "PartyA"),
    ("PartyB", "till-1", "PartyB"),
    ("PhoneNumber", "+254708374149", "PhoneNumber"),
    ("PhoneNumber", 255712345678, "PhoneNumber"),
    ("CallBackURL", "ftp://127.0.0.1/cb", "CallBackURL"),
    ("CallBackURL", "not a url", "CallBackURL"),
    ("CallBackURL", "", "CallBackURL"),
    ("AccountReference", "X" * 13, "AccountReference"),
    ("TransactionDesc", "X" * 14, "TransactionDesc"),
]


@pytest.mark.parametrize(
    ("field", "value", "named"), INVALID_FIELDS, ids=[f"{f}={v!r}" for f, v, _ in INVALID_FIELDS]
)
def test_push_rejects_invalid_field(daraja: Daraja, field: str, value: Any, named: str) -> None:
    if value == "__two_hours_ago__":
        value = _two_hours_ago()
    response = daraja.push(**{field: value})
    assert_envelope(response, 400, "400.002.02", f"Bad Request - Invalid {named}")
    assert daraja.sim.prompts() == []


@pytest.mark.parametrize(
    "field",
    [
        "BusinessShortCode",
        "Timestamp",
        "TransactionType",
        "Amount",
        "PartyA",
        "PartyB",
        "PhoneNumber",
        "CallBackURL",
        "AccountReference",
    ],
)
def test_push_rejects_missing_field(daraja: Daraja, field: str) -> None:
    response = daraja.push(drop=[field])
    assert_envelope(response, 400, "400.002.02", f"Bad Request - Invalid {field}")


def test_push_accepts_valid_variants(daraja: Daraja) -> None:
    assert daraja.push("254711000010", Amount="1").status_code == 200
    assert (
        daraja.push("254111000011", PartyA="254111000011", PhoneNumber="254111000011").status_code
        == 200
    )
    assert (
        daraja.push(
            "254711000012",
            AccountReference="X" * 12,
            TransactionDesc="Y" * 13,
            TransactionType="CustomerBuyGoodsOnline",
            PartyB=5432101,
        ).status_code
        == 200
    )
    assert daraja.push("254711000013", drop=["TransactionDesc"]).status_code == 200
    assert (
        daraja.push(
            "254711000014", BusinessShortCode="174379", CallBackURL="https://localhost/cb"
        ).status_code
        == 200
    )


def test_push_success_response_shape(daraja: Daraja) -> None:
    before = eat_now().replace(microsecond=0)
    response = daraja.push()
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "MerchantRequestID",
        "CheckoutRequestID",
        "ResponseCode",
        "ResponseDescription",
        "CustomerMessage",
    }
    assert body["ResponseCode"] == "0"
    assert body["ResponseDescription"] == "Success. Request accepted for processing"
    assert body["CustomerMessage"] == "Success. Request accepted for processing"
    assert REQUEST_ID.match(body["MerchantRequestID"])
    match = re.fullmatch(r"ws_CO_(\d{14})(\d{3})(\d{9})", body["CheckoutRequestID"])
    assert match, body["CheckoutRequestID"]
    stamp = datetime.strptime(match.group(1), "%d%m%Y%H%M%S").replace(tzinfo=EAT)
    assert abs((stamp - before).total_seconds()) <= 2
    assert match.group(3) == SAFARICOM_TEST_MSISDN[3:]


def test_push_wrong_password(daraja: Daraja) -> None:
    ts = stk_timestamp()
    for password in (
        "bm90LXRoZS1wYXNzd29yZA==",
        stk_password("174379", "another-passkey", ts),
        123,
    ):
        response = daraja.push(Timestamp=ts, Password=password)
        assert_envelope(response, 500, "500.001.1001", "Wrong credentials")
    assert daraja.sim.prompts() == []


def test_password_must_use_the_sent_timestamp(daraja: Daraja) -> None:
    ts = stk_timestamp()
    earlier = stk_timestamp(eat_now() - timedelta(minutes=5))
    response = daraja.push(
        Timestamp=ts, Password=stk_password("174379", DEFAULT_APP.passkey, earlier)
    )
    assert_envelope(response, 500, "500.001.1001", "Wrong credentials")


def test_shortcode_of_another_app_is_rejected(daraja: Daraja) -> None:
    daraja.sim.add_app(SECOND_APP)
    token = daraja.token()  # the default app's token
    response = daraja.push(token=token, app=SECOND_APP)  # SECOND_APP's shortcode and password
    assert_envelope(response, 400, "400.002.02", "Bad Request - Invalid BusinessShortCode")


def test_subscriber_lock(daraja: Daraja) -> None:
    checkout_id = daraja.push_ok("254711000020")
    response = daraja.push("254711000020")
    assert_envelope(
        response,
        500,
        "500.001.1001",
        "Unable to lock subscriber, a transaction is already in process for the current subscriber",
    )
    assert daraja.push("254711000021").status_code == 200  # other subscribers are free
    daraja.sim.answer(checkout_id, "cancel")
    assert daraja.push("254711000020").status_code == 200  # lock released once answered


# --- outcomes and callbacks ---------------------------------------------------------

OUTCOMES = [
    ("254711111032", 1032, "Request cancelled by user"),
    ("254711110001", 1, "The balance is insufficient for the transaction."),
    ("254711111037", 1037, "DS timeout user cannot be reached"),
    ("254711112001", 2001, "The initiator information is invalid."),
    (
        "254711111001",
        1001,
        "Unable to lock subscriber, a transaction is already in process for the current subscriber",
    ),
    ("254711111019", 1019, "Transaction has expired."),
    ("254708374149", 0, "The service request is processed successfully."),
    ("254112345678", 0, "The service request is processed successfully."),
]


@pytest.mark.parametrize(("phone", "code", "desc"), OUTCOMES, ids=[o[0] for o in OUTCOMES])
def test_scripted_outcome_callback(
    daraja: Daraja, receiver: Receiver, phone: str, code: int, desc: str
) -> None:
    response = daraja.push(phone, Amount=25)
    assert response.status_code == 200
    accepted = response.json()
    calls = receiver.wait(1)
    assert len(calls) == 1
    assert calls[0].path == "/mpesa/callback"
    callback = stk_callback(calls[0].body)
    assert callback["MerchantRequestID"] == accepted["MerchantRequestID"]
    assert callback["CheckoutRequestID"] == accepted["CheckoutRequestID"]
    assert type(callback["ResultCode"]) is int
    assert callback["ResultCode"] == code
    assert callback["ResultDesc"] == desc
    if code != 0:
        assert set(callback) == {
            "MerchantRequestID",
            "CheckoutRequestID",
            "ResultCode",
            "ResultDesc",
        }
        return
    items = callback["CallbackMetadata"]["Item"]
    assert [i["Name"] for i in items] == [
        "Amount",
        "MpesaReceiptNumber",
        "Balance",
        "TransactionDate",
        "PhoneNumber",
    ]
    values = {i["Name"]: i.get("Value") for i in items}
    assert "Value" not in items[2]  # Balance comes without a value
    assert values["Amount"] == 25.0 and isinstance(values["Amount"], float)
    assert re.fullmatch(r"[A-Z][A-Z0-9]{9}", values["MpesaReceiptNumber"])
    assert isinstance(values["TransactionDate"], int)
    when = datetime.strptime(str(values["TransactionDate"]), "%Y%m%d%H%M%S").replace(tzinfo=EAT)
    assert abs((eat_now() - when).total_seconds()) < 5  # EAT, not UTC
    assert values["PhoneNumber"] == int(phone)


def test_receipts_are_unique(daraja: Daraja, receiver: Receiver) -> None:
    for i in range(8):
        daraja.push_ok(f"2547110002{i:02d}")
    calls = receiver.wait(8)
    receipts = [stk_callback(c.body)["CallbackMetadata"]["Item"][1]["Value"] for c in calls]
    assert len(receipts) == 8
    assert len(set(receipts)) == 8


def test_callback_log_records_each_attempt(daraja: Daraja, receiver: Receiver) -> None:
    checkout_id = daraja.push_ok()
    entries = daraja.sim.wait_for_callbacks(1)
    log = daraja.control("GET", "callbacks").json()["callbacks"]
    assert log == entries
    assert len(log) == 1
    entry = log[0]
    assert entry["checkout_request_id"] == checkout_id
    assert entry["url"] == receiver.url()
    assert entry["outcome"] == "delivered"
    assert entry["http_status"] == 200
    assert entry["error"] is None
    assert entry["payload"] == receiver.calls[0].body
    assert entry["at"].endswith("+03:00")
    stats = daraja.sim.stats()
    assert (stats["callbacks_sent"], stats["callbacks_failed"]) == (1, 0)


def test_failed_callback_is_logged(daraja: Daraja, receiver: Receiver) -> None:
    receiver.status = "500 Internal Server Error"
    daraja.push_ok()
    entry = daraja.sim.wait_for_callbacks(1)[0]
    assert (entry["outcome"], entry["http_status"], entry["error"]) == ("failed", 500, "HTTP 500")
    daraja.push_ok("254711000030", CallBackURL="http://127.0.0.1:9/closed")
    entries = daraja.sim.wait_for_callbacks(2)
    assert entries[1]["outcome"] == "failed"
    assert entries[1]["http_status"] is None
    assert "ConnectError" in entries[1]["error"]
    assert daraja.sim.stats()["callbacks_failed"] == 2


@pytest.mark.parametrize(
    "url", ["http://example.com/cb", "https://10.0.0.1/cb", "http://127.0.0.2/cb"]
)
def test_callback_to_non_loopback_host_is_refused(daraja: Daraja, url: str) -> None:
    checkout_id = daraja.push_ok(CallBackURL=url)
    entry = daraja.sim.wait_for_callbacks(1)[0]
    assert entry["checkout_request_id"] == checkout_id
    assert entry["outcome"] == "refused"
    assert entry["http_status"] is None
    assert "not loopback" in entry["error"]
    assert daraja.sim.stats()["callbacks_refused"] == 1
    # the payment itself went through and is queryable
    assert daraja.query(checkout_id).json()["ResultCode"] == "0"


# --- STK query ------------------------------------------------------------------------


def test_query_pending_then_final(make_daraja: Callable[..., Daraja]) -> None:
    daraja = make_daraja(auto_answer_seconds=0.4)
    checkout_id = daraja.push_ok("254711111032")
    pending = daraja.query(checkout_id)
    assert_envelope(pending, 500, "500.001.1001", "The transaction is being processed")
    assert pending.json()["requestId"] == checkout_id
    daraja.sim.wait_for_callbacks(1)
    final = daraja.query(checkout_id)
    assert final.status_code == 200
    body = final.json()
    assert body == {
        "ResponseCode": "0",
        "ResponseDescription": "The service request has been accepted successsfully",
        "MerchantRequestID": body["MerchantRequestID"],
        "CheckoutRequestID": checkout_id,
        "ResultCode": "1032",
        "ResultDesc": "Request cancelled by user",
    }
    assert REQUEST_ID.match(body["MerchantRequestID"])


def test_query_errors(daraja: Daraja) -> None:
    assert_envelope(
        daraja.query("ws_CO_000000000000000000000000"),
        400,
        "400.002.02",
        "Bad Request - Invalid CheckoutRequestID",
    )
    checkout_id = daraja.push_ok()
    assert_envelope(
        daraja.query(checkout_id, Password="d3Jvbmc="), 500, "500.001.1001", "Wrong credentials"
    )
    assert_envelope(
        daraja.query(checkout_id, Timestamp=_two_hours_ago()),
        400,
        "400.002.02",
        "Bad Request - Invalid Timestamp",
    )
    assert_envelope(
        daraja.query(checkout_id, BusinessShortCode="600000"),
        400,
        "400.002.02",
        "Bad Request - Invalid BusinessShortCode",
    )


def test_query_cannot_see_another_apps_checkout(daraja: Daraja) -> None:
    daraja.sim.add_app(SECOND_APP)
    checkout_id = daraja.push_ok()
    daraja.sim.answer(checkout_id, "approve")
    other = daraja.token(SECOND_APP)
    response = daraja.query(checkout_id, token=other, app=SECOND_APP)
    assert_envelope(response, 400, "400.002.02", "Bad Request - Invalid CheckoutRequestID")


def test_lost_callback_is_still_queryable(
    make_daraja: Callable[..., Daraja], receiver: Receiver
) -> None:
    daraja = make_daraja(lose_callbacks=True)
    checkout_id = daraja.push_ok()
    entry = daraja.sim.wait_for_callbacks(1)[0]
    assert entry["outcome"] == "lost"
    assert receiver.wait(1, timeout=0.4) == []
    body = daraja.query(checkout_id).json()
    assert (body["ResultCode"], body["ResultDesc"]) == (
        "0",
        "The service request is processed successfully.",
    )
    assert daraja.sim.stats()["callbacks_lost"] == 1


# --- chaos switches -------------------------------------------------------------------


def test_duplicate_callbacks(make_daraja: Callable[..., Daraja], receiver: Receiver) -> None:
    daraja = make_daraja(duplicate_callbacks=2)
    daraja.push_ok()
    calls = receiver.wait(3)
    assert len(calls) == 3
    assert calls[0].body == calls[1].body == calls[2].body
    assert receiver.wait(4, timeout=0.3) == calls  # and no fourth
    copies = sorted(e["copy"] for e in daraja.sim.callbacks())
    assert copies == [0, 1, 2]


def test_callback_delay_and_late_callback(
    make_daraja: Callable[..., Daraja], receiver: Receiver
) -> None:
    daraja = make_daraja(
        auto_answer_seconds=30, callback_delay_seconds=0.2, late_callback_seconds=0.3
    )
    checkout_id = daraja.push_ok()
    answered = time.monotonic()
    daraja.sim.answer(checkout_id, "approve")
    # the outcome is queryable before the (late) callback shows up
    assert daraja.query(checkout_id).json()["ResultCode"] == "0"
    assert receiver.calls == []
    calls = receiver.wait(1)
    assert len(calls) == 1
    assert calls[0].at - answered >= 0.5


def test_out_of_order_shuffles_but_delivers_everything(
    make_daraja: Callable[..., Daraja], receiver: Receiver
) -> None:
    daraja = make_daraja(
        out_of_order=True, out_of_order_window_seconds=0.3, seed=7, auto_answer_seconds=60
    )
    ids = [daraja.push_ok(f"2547110003{i:02d}") for i in range(6)]
    for checkout_id in ids:
        daraja.sim.answer(checkout_id, "approve")
    calls = receiver.wait(6)
    delivered = [stk_callback(c.body)["CheckoutRequestID"] for c in calls]
    assert sorted(delivered) == sorted(ids)
    # answered back to back, yet spread over the window and not in answer order
    # (seed 7 gives arrival order 5, 2, 0, 4, 3, 1 over ~0.25 s)
    assert max(c.at for c in calls) - min(c.at for c in calls) >= 0.15
    assert delivered != ids


def test_push_fault_500(make_daraja: Callable[..., Daraja]) -> None:
    daraja = make_daraja(push_fault="500")
    assert_envelope(daraja.push(), 500, "500.003.02", "System is busy")
    assert daraja.sim.prompts() == []
    daraja.control("POST", "config", json={"push_fault": None})
    assert daraja.push().status_code == 200  # no subscriber lock was left behind


def test_push_fault_timeout_prompt_still_proceeds(
    make_daraja: Callable[..., Daraja], receiver: Receiver
) -> None:
    daraja = make_daraja(push_fault="timeout", timeout_hold_seconds=2.0, auto_answer_seconds=0.3)
    body = daraja.push_body()
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        daraja.http.post(
            PUSH, json=body, headers=daraja.bearer(), timeout=httpx.Timeout(5, read=0.5)
        )
    assert time.monotonic() - started < 1.5
    prompts = daraja.sim.prompts(SAFARICOM_TEST_MSISDN)
    assert len(prompts) == 1
    calls = receiver.wait(1)
    assert stk_callback(calls[0].body)["CheckoutRequestID"] == prompts[0]["checkout_request_id"]
    assert stk_callback(calls[0].body)["ResultCode"] == 0


def test_latency_does_not_block_other_requests(daraja: Daraja) -> None:
    token = daraja.token()
    response = daraja.control("POST", "config", json={"stkpush_latency": 0.4})
    assert response.status_code == 200
    assert response.json()["stkpush_latency"] == {"fixed": 0.4, "median": None, "p99": None}
    barrier = threading.Barrier(5)

    def one(i: int) -> tuple[int, float]:
        barrier.wait()
        t0 = time.monotonic()
        r = daraja.push(f"2547110004{i:02d}", token=token)
        return r.status_code, time.monotonic() - t0

    started = time.monotonic()
    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(one, range(5)))
    assert all(status == 200 for status, _ in results)
    assert all(elapsed >= 0.4 for _, elapsed in results)
    assert time.monotonic() - started < 1.2  # parallel, not 5 x 0.4 s


def test_token_and_query_latency(make_daraja: Callable[..., Daraja]) -> None:
    daraja = make_daraja(token_latency=0.3, query_latency={"fixed": 0.2})
    t0 = time.monotonic()
    daraja.token()
    assert time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    daraja.query("ws_CO_unknown")
    assert time.monotonic() - t0 >= 0.2


def test_fifty_concurrent_pushes(daraja: Daraja, receiver: Receiver) -> None:
    token = daraja.token()
    barrier = threading.Barrier(50)

    def one(i: int) -> httpx.Response:
        barrier.wait()
        return daraja.push(f"2547120005{i:02d}", token=token)

    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(one, range(50)))
    assert [r.status_code for r in responses] == [200] * 50
    ids = {r.json()["CheckoutRequestID"] for r in responses}
    assert len(ids) == 50
    assert daraja.sim.stats()["pushes"] == 50
    assert daraja.sim.token_issue_count() == 1
    calls = receiver.wait(50, timeout=10)
    assert {stk_callback(c.body)["CheckoutRequestID"] for c in calls} == ids
