"""The Daraja adapter against the real simulator over HTTP (no mocks of Daraja)."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import pytest

from pesarail.common.errors import ValidationFailed
from pesarail.common.money import Money
from pesarail.providers.base import (
    ChargeRequest,
    MalformedCallback,
    PaymentStatus,
    ProviderAuthError,
    ProviderError,
    ProviderEvent,
    ProviderTimeout,
    ProviderUnavailable,
)
from pesarail.providers.models import ProviderAccount
from pesarail.providers.mpesa_ke import (
    EAT,
    RESULT_CODES,
    DarajaProvider,
    DarajaTimeouts,
    daraja_timestamp,
    stk_password,
)
from pesarail.providers.registry import get_provider
from pesarail.sandbox.daraja import SCRIPTED_OUTCOMES
from tests.sandbox_fixtures import PHONES, CallbackReceiver, DarajaSandbox, LoopbackGuard

pytestmark = pytest.mark.django_db


def _charge(receiver: CallbackReceiver, phone: str = PHONES["success"], amount: str = "10",
            currency: str = "KES", **overrides: Any) -> ChargeRequest:
    fields: dict[str, Any] = {
        "intent_id": "pi_0QxTestIntent000000001",
        "attempt_id": "pat_0QxTestAttempt00000001",
        "money": Money.parse(amount, currency),
        "phone_e164": phone,
        "reference": "INV-2024-0001",
        "description": "Alpha Shop order",
        "callback_url": receiver.url(),
    }
    fields.update(overrides)
    return ChargeRequest(**fields)


def _adapter(account: ProviderAccount, **options: Any) -> DarajaProvider:
    provider = get_provider(account, **options)
    assert isinstance(provider, DarajaProvider)
    return provider


# ------------------------------------------------------------------ start_charge


def test_start_charge_success_callback_and_status(
    daraja_account: ProviderAccount, daraja_sandbox: DarajaSandbox,
    callback_receiver: CallbackReceiver,
) -> None:
    provider = _adapter(daraja_account)
    started = provider.start_charge(_charge(callback_receiver))

    assert started.provider_reference.startswith("ws_CO_")
    assert started.secondary_reference
    assert started.next_action["type"] == "phone_prompt"
    assert started.next_action["phone"] == "+254708***149"
    assert "KES 10.00" in started.next_action["message"]
    assert started.next_action["expires_in_seconds"] == 120
    assert started.raw["ResponseCode"] == "0"

    prompt = daraja_sandbox.prompt(started.provider_reference)
    assert prompt["amount"] == 10
    assert prompt["msisdn"] == "254708374149"
    assert prompt["account_reference"] == "INV-2024-000"  # 12 characters
    assert prompt["transaction_desc"] == "Alpha Shop or"  # 13 characters

    received = callback_receiver.wait_for_checkout(started.provider_reference)
    event = provider.parse_callback(received.body, received.headers)
    assert event.status is PaymentStatus.SUCCEEDED
    assert event.result_code == "0"
    assert event.source == "callback"
    assert event.provider_reference == started.provider_reference
    assert event.secondary_reference == started.secondary_reference
    assert event.amount == Money.parse("10", "KES")
    assert event.receipt and len(event.receipt) == 10
    assert event.phone_e164 == PHONES["success"]
    assert event.paid_at is not None and event.paid_at.utcoffset().total_seconds() == 3 * 3600
    assert event.dedupe_key == f"mpesa_ke:stk_callback:{started.provider_reference}"
    assert event.raw == received.json()

    status = provider.fetch_status(started.provider_reference)
    assert status.status is PaymentStatus.SUCCEEDED
    assert status.source == "status_query"
    assert status.receipt is None  # the STK query never returns the receipt


@pytest.mark.parametrize(
    ("outcome", "status", "code"),
    [
        ("cancelled", PaymentStatus.CANCELLED, "1032"),
        ("insufficient_funds", PaymentStatus.FAILED, "1"),
        ("unreachable", PaymentStatus.EXPIRED, "1037"),
        ("wrong_pin", PaymentStatus.FAILED, "2001"),
        ("busy", PaymentStatus.FAILED, "1001"),
        ("expired", PaymentStatus.EXPIRED, "1019"),
    ],
)
def test_scripted_failures_map_to_statuses_and_human_messages(
    outcome: str, status: PaymentStatus, code: str, daraja_account: ProviderAccount,
    daraja_sandbox: DarajaSandbox, callback_receiver: CallbackReceiver,
) -> None:
    assert SCRIPTED_OUTCOMES[PHONES[outcome][-4:]] == int(code)
    provider = _adapter(daraja_account)
    started = provider.start_charge(_charge(callback_receiver, phone=PHONES[outcome]))
    received = callback_receiver.wait_for_checkout(started.provider_reference)

    event = provider.parse_callback(received.body, received.headers)
    assert (event.status, event.result_code) == (status, code)
    assert event.message == RESULT_CODES[code].message
    assert event.retryable is True
    assert event.receipt is None and event.amount is None
    assert event.provider_message  # Daraja's own ResultDesc is kept

    queried = provider.fetch_status(started.provider_reference)
    assert (queried.status, queried.result_code) == (status, code)


def test_cancelled_message_is_for_the_customer() -> None:
    assert RESULT_CODES["1032"].message == "You cancelled the M-Pesa prompt."


def test_fetch_status_is_pending_while_the_customer_has_not_answered(
    daraja_account: ProviderAccount, daraja_sandbox: DarajaSandbox,
    callback_receiver: CallbackReceiver,
) -> None:
    daraja_sandbox.configure(auto_answer_seconds=30)
    provider = _adapter(daraja_account)
    started = provider.start_charge(_charge(callback_receiver))

    pending = provider.fetch_status(started.provider_reference)
    assert pending.status is PaymentStatus.PENDING and pending.pending
    assert not pending.is_final

    daraja_sandbox.answer(started.provider_reference, "cancel")
    final = provider.fetch_status(started.provider_reference)
    assert final.status is PaymentStatus.CANCELLED
    assert final.message == "You cancelled the M-Pesa prompt."


def test_fetch_status_of_an_unknown_reference_is_a_definite_error(
    daraja_account: ProviderAccount, daraja_sandbox: DarajaSandbox,
) -> None:
    with pytest.raises(ProviderError) as info:
        _adapter(daraja_account).fetch_status("ws_CO_000000000000000000000000")
    assert info.value.code == "400.002.02"
    assert not isinstance(info.value, ProviderAuthError)


def test_second_push_to_a_phone_with_an_open_prompt_is_refused_retryably(
    daraja_account: ProviderAccount, daraja_sandbox: DarajaSandbox,
    callback_receiver: CallbackReceiver,
) -> None:
    daraja_sandbox.configure(auto_answer_seconds=30)
    provider = _adapter(daraja_account)
    provider.start_charge(_charge(callback_receiver))
    with pytest.raises(ProviderError) as info:
        provider.start_charge(_charge(callback_receiver))
    assert info.value.code == "500.001.1001"
    assert info.value.retryable is True
    assert info.value.message.startswith("Another M-Pesa request is already waiting")


# -------------------------------------------------------------- refused up front


@pytest.mark.parametrize(
    ("money", "message"),
    [
        (Money.parse("10.50", "KES"), "M-Pesa accepts whole shillings only; got KES 10.50."),
        (Money.parse("10", "USD"), "M-Pesa Kenya takes KES only; got USD."),
    ],
)
def test_amounts_mpesa_cannot_take_are_refused_before_any_request(
    money: Money, message: str, daraja_account: ProviderAccount,
    daraja_sandbox: DarajaSandbox, callback_receiver: CallbackReceiver,
) -> None:
    with pytest.raises(ValidationFailed) as info:
        _adapter(daraja_account).start_charge(_charge(callback_receiver, money=money))
    assert info.value.message == message
    assert set(info.value.fields) & {"amount", "currency"}
    stats = daraja_sandbox.stats()
    assert stats["pushes"] == 0 and stats["tokens_issued"] == 0


def test_non_kenyan_phone_is_refused_before_any_request(
    daraja_account: ProviderAccount, daraja_sandbox: DarajaSandbox,
    callback_receiver: CallbackReceiver,
) -> None:
    with pytest.raises(ValidationFailed) as info:
        _adapter(daraja_account).start_charge(_charge(callback_receiver, phone="+255712345678"))
    assert "Kenyan mobile number" in info.value.message
    assert "phone_number" in info.value.fields
    assert "345" not in info.value.message.replace("+255712***678", "")  # masked
    assert daraja_sandbox.stats()["pushes"] == 0


def test_validate_charge_checks_without_io(
    daraja_account: ProviderAccount, daraja_sandbox: DarajaSandbox,
) -> None:
    provider = _adapter(daraja_account)
    provider.validate_charge(Money.parse("100", "KES"), "+254110000123")
    with pytest.raises(ValidationFailed):
        provider.validate_charge(Money.parse("0.50", "KES"), "+254708374149")
    with pytest.raises(ValidationFailed):
        provider.validate_charge(Money.parse("1", "KES"), "+251911234567")
    assert daraja_sandbox.stats()["tokens_issued"] == 0


def test_new_2541_numbers_are_accepted(
    daraja_account: ProviderAccount, daraja_sandbox: DarajaSandbox,
    callback_receiver: CallbackReceiver,
) -> None:
    started = _adapter(daraja_account).start_charge(
        _charge(callback_receiver, phone="+254110000123"))
    assert daraja_sandbox.prompt(started.provider_reference)["msisdn"] == "254110000123"


# ---------------------------------------------------------------------- failures


def test_push_timeout_is_unknown_outcome_not_failure(
    daraja_account: ProviderAccount, daraja_sandbox: DarajaSandbox,
    callback_receiver: CallbackReceiver,
) -> None:
    daraja_sandbox.configure(push_fault="timeout", timeout_hold_seconds=3)
    provider = _adapter(daraja_account, timeouts=DarajaTimeouts(push_read=0.5))
    with pytest.raises(ProviderTimeout) as info:
        provider.start_charge(_charge(callback_receiver))
    assert info.value.code == "timeout"
    assert "unknown" in info.value.message
    # The push really went through: the phone got the prompt. Never resend it.
    assert daraja_sandbox.stats()["pushes"] == 1


def test_push_500_system_busy_is_unavailable(
    daraja_account: ProviderAccount, daraja_sandbox: DarajaSandbox,
    callback_receiver: CallbackReceiver,
) -> None:
    daraja_sandbox.configure(push_fault="500")
    with pytest.raises(ProviderUnavailable) as info:
        _adapter(daraja_account).start_charge(_charge(callback_receiver))
    assert info.value.code == "500.003.02"
    assert info.value.retryable is True
    assert daraja_sandbox.stats()["pushes"] == 0


def test_connection_refused_is_unavailable(
    make_daraja_account: Any, callback_receiver: CallbackReceiver,
) -> None:
    account = make_daraja_account(base_url="http://127.0.0.1:9")  # discard port: closed
    with pytest.raises(ProviderUnavailable) as info:
        _adapter(account).start_charge(_charge(callback_receiver))
    assert "nothing was sent" in info.value.message


def test_wrong_passkey_is_an_auth_error(
    make_daraja_account: Any, daraja_sandbox: DarajaSandbox,
    callback_receiver: CallbackReceiver,
) -> None:
    account = make_daraja_account(credentials={**daraja_sandbox.credentials,
                                               "passkey": "not-the-passkey"})
    with pytest.raises(ProviderAuthError) as info:
        _adapter(account).start_charge(_charge(callback_receiver))
    assert "passkey" in info.value.message
    assert "not-the-passkey" not in info.value.message


def test_wrong_consumer_secret_is_an_auth_error_and_nothing_is_pushed(
    make_daraja_account: Any, daraja_sandbox: DarajaSandbox,
    callback_receiver: CallbackReceiver,
) -> None:
    account = make_daraja_account(credentials={**daraja_sandbox.credentials,
                                               "consumer_secret": "wrong-secret"})
    with pytest.raises(ProviderAuthError) as info:
        _adapter(account).start_charge(_charge(callback_receiver))
    assert info.value.code == "400.008.01"
    assert "wrong-secret" not in info.value.message
    assert daraja_sandbox.stats()["pushes"] == 0


def test_production_account_never_leaves_the_machine_in_tests(
    tenant: Any, loopback_only_http: LoopbackGuard, callback_receiver: CallbackReceiver,
) -> None:
    from pesarail.providers.services import create_account

    account = create_account(
        tenant.merchant, provider="mpesa_ke", name="Live", environment="production",
        config={"shortcode": "174379"},
        credentials={"consumer_key": "k" * 20, "consumer_secret": "s" * 20, "passkey": "p" * 20},
    )
    assert account.api_base_url == "https://api.safaricom.co.ke"
    with pytest.raises(ProviderUnavailable):
        _adapter(account).start_charge(_charge(callback_receiver))
    assert loopback_only_http.blocked  # the guard refused it; nothing was sent
    assert all("safaricom.co.ke" in url for url in loopback_only_http.blocked)


# ------------------------------------------------------------------ parse_callback


def _callback(code: Any = 0, items: list[dict[str, Any]] | None = None,
              desc: str = "The service request is processed successfully.") -> bytes:
    callback: dict[str, Any] = {
        "MerchantRequestID": "29115-34620561-1",
        "CheckoutRequestID": "ws_CO_191220191020363925",
        "ResultCode": code,
        "ResultDesc": desc,
    }
    if items is not None:
        callback["CallbackMetadata"] = {"Item": items}
    return json.dumps({"Body": {"stkCallback": callback}}).encode()


def _parse(body: bytes) -> ProviderEvent:
    provider = DarajaProvider(base_url="http://127.0.0.1:9", credentials={},
                              config={"shortcode": "174379"})
    return provider.parse_callback(body, {})


@pytest.mark.parametrize("amount", [1, 1.0, "1.00", "1"])
def test_callback_amount_shapes(amount: Any) -> None:
    event = _parse(_callback(items=[
        {"Name": "Amount", "Value": amount},
        {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
    ]))
    assert event.amount == Money.parse("1", "KES")


def test_callback_items_in_any_order_and_balance_without_value() -> None:
    event = _parse(_callback(code="0", items=[
        {"Name": "PhoneNumber", "Value": 254708374149},
        {"Name": "Balance"},
        {"Name": "TransactionDate", "Value": 20191219102115},
        {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
        {"Name": "Amount", "Value": 32009.9},
    ]))
    assert event.status is PaymentStatus.SUCCEEDED
    assert event.result_code == "0"
    assert event.amount == Money.parse("32009.90", "KES")
    assert event.receipt == "NLJ7RT61SV"
    assert event.phone_e164 == "+254708374149"
    assert event.paid_at == datetime(2019, 12, 19, 10, 21, 15, tzinfo=EAT)


def test_callback_unknown_code_fails_with_the_provider_text() -> None:
    event = _parse(_callback(code=4242, desc="Something new happened"))
    assert event.status is PaymentStatus.FAILED
    assert event.result_code == "4242"
    assert "Something new happened" in event.message
    assert event.retryable is False


def test_callback_masked_phone_is_dropped_not_fatal() -> None:
    event = _parse(_callback(items=[{"Name": "PhoneNumber", "Value": "2547 ***** 126"},
                                    {"Name": "MpesaReceiptNumber", "Value": "R1"}]))
    assert event.phone_e164 is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"Body": {}}',
        json.dumps({"Body": {"stkCallback": {"ResultCode": 0}}}).encode(),
        json.dumps({"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1"}}}).encode(),
        _callback(items=[{"Name": "Amount", "Value": "ten"}]),
        _callback(items=[{"Name": "Amount", "Value": 1.001}]),
        _callback(items=[{"Name": "TransactionDate", "Value": 2019}]),
        json.dumps({"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_1", "ResultCode": 0,
                                             "CallbackMetadata": {"Item": 5}}}}).encode(),
    ],
)
def test_malformed_callbacks_raise_value_errors(body: bytes) -> None:
    with pytest.raises(MalformedCallback):
        _parse(body)
    assert issubclass(MalformedCallback, ValueError)


def test_callback_ack_is_what_daraja_clients_send() -> None:
    provider = DarajaProvider(base_url="http://127.0.0.1:9", credentials={}, config={})
    assert provider.callback_ack(True) == (200, {"ResultCode": 0, "ResultDesc": "Accepted"})
    assert provider.callback_ack(False)[1]["ResultCode"] != 0


# ------------------------------------------------------------------------ helpers


def test_timestamp_is_east_africa_time_and_password_is_base64() -> None:
    utc_noon = datetime(2024, 7, 1, 12, 0, 0, tzinfo=EAT).astimezone(EAT)
    assert daraja_timestamp(utc_noon) == "20240701120000"
    from datetime import UTC
    assert daraja_timestamp(datetime(2024, 7, 1, 21, 30, 5, tzinfo=UTC)) == "20240702003005"
    password = stk_password("174379", "passkey", "20240702003005")
    assert base64.b64decode(password).decode() == "174379passkey20240702003005"


def test_every_result_code_of_the_reference_is_mapped() -> None:
    documented = {"0", "1", "2", "3", "4", "8", "17", "26", "1001", "1019", "1025", "1032",
                  "1037", "2001", "2028", "8006", "9999", "SFC_IC0003"}
    assert documented <= set(RESULT_CODES)
    for code, info in RESULT_CODES.items():
        assert info.message and info.message[0].isupper(), code
