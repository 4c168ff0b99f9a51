"""``/sandbox/phone/<msisdn>/``: the simulated phone, against the real Daraja simulator."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from pesarail.common.money import Money
from pesarail.providers.base import ChargeRequest
from pesarail.providers.registry import get_provider
from tests.sandbox_fixtures import DarajaSandbox, LoopbackGuard

pytestmark = pytest.mark.django_db

PHONE_URL = "/sandbox/phone/254708374149/"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def prompt_id(daraja_account: Any, daraja_sandbox: DarajaSandbox, sandbox_url: str) -> str:
    """A KES 1,500.00 prompt waiting on 254708374149 (nobody answers it by itself), sent
    by the real Daraja adapter as a payment would send it."""
    daraja_sandbox.configure(auto_answer_seconds=60)
    started = get_provider(daraja_account).start_charge(ChargeRequest(
        intent_id="pay_test", attempt_id="att_test", money=Money.parse("1500", "KES"),
        phone_e164="+254708374149", reference="ORDER-1001", description="Alpha Shop",
        callback_url=daraja_account.callback_url))
    return started.provider_reference


def html(response: Any) -> str:
    return response.content.decode()


def test_shows_the_waiting_prompt_as_a_phone_does(client: Client, prompt_id: str) -> None:
    response = client.get(PHONE_URL)
    assert response.status_code == 200
    text = html(response)
    assert "Pay KES 1,500.00 to ALPHA SHOP?" in text
    assert "Account no. ORDER-1001" in text
    assert "Enter M-Pesa PIN" in text
    for label in ("Approve", "Cancel", "Wrong PIN", "Ignore (let it time out)"):
        assert f">{label}</button>" in text
    assert f'action="/sandbox/phone/254708374149/prompts/{prompt_id}/"' in text
    assert "0708 374149" in text
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]


def test_other_spellings_of_the_number_work(client: Client, prompt_id: str) -> None:
    for number in ("0708374149", "+254708374149", "708374149"):
        assert "Pay KES 1,500.00" in html(client.get(f"/sandbox/phone/{number}/"))
    empty = html(client.get("/sandbox/phone/0712345678/"))
    assert "No M-Pesa request is waiting on this phone." in empty
    assert client.get("/sandbox/phone/not-a-number/").status_code == 404


@pytest.mark.parametrize(("action", "status", "code"), [
    ("approve", "completed", 0),
    ("cancel", "cancelled", 1032),
    ("wrong_pin", "failed", 2001),
])
def test_each_answer_makes_the_simulator_send_the_real_callback(
        client: Client, prompt_id: str, daraja_sandbox: DarajaSandbox, action: str,
        status: str, code: int) -> None:
    response = client.post(f"{PHONE_URL}prompts/{prompt_id}/", {"action": action}, **HX)
    assert response.status_code == 200
    text = html(response)
    assert 'role="status"' in text
    assert "Enter M-Pesa PIN" not in text  # the prompt left the screen
    prompt = daraja_sandbox.prompt(prompt_id)
    assert prompt["status"] == status and prompt["result_code"] == code
    assert prompt["answered_by"] == "control"
    daraja_sandbox.sim.wait_for_callbacks(1, timeout=5)
    [callback] = daraja_sandbox.sim.callbacks(prompt_id)
    assert callback["payload"]["Body"]["stkCallback"]["ResultCode"] == code
    if action == "approve":
        assert "Confirmed." in text  # the confirmation "SMS"


def test_ignore_leaves_the_prompt_to_time_out(client: Client, prompt_id: str,
                                              daraja_sandbox: DarajaSandbox) -> None:
    text = html(client.post(f"{PHONE_URL}prompts/{prompt_id}/", {"action": "ignore"}, **HX))
    assert "You dismissed the request." in text
    assert "Dismissed. Times out at" in text
    assert daraja_sandbox.prompt(prompt_id)["status"] == "ignored"
    again = html(client.post(f"{PHONE_URL}prompts/{prompt_id}/", {"action": "approve"}, **HX))
    assert "This request was already answered." in again


def test_without_htmx_the_answer_redirects_back_with_a_message(
        client: Client, prompt_id: str) -> None:
    response = client.post(f"{PHONE_URL}prompts/{prompt_id}/", {"action": "approve"})
    assert response.status_code == 303 and response["Location"] == PHONE_URL
    assert "You entered your PIN." in html(client.get(PHONE_URL))


def test_refuses_bad_actions_and_other_phones_prompts(
        client: Client, prompt_id: str, daraja_sandbox: DarajaSandbox) -> None:
    bad = html(client.post(f"{PHONE_URL}prompts/{prompt_id}/", {"action": "pay-twice"}, **HX))
    assert "Choose Approve, Cancel, Wrong PIN or Ignore." in bad
    other = html(client.post(f"/sandbox/phone/0712345678/prompts/{prompt_id}/",
                             {"action": "approve"}, **HX))
    assert "This request is not on this phone any more." in other
    unknown = html(client.post(f"{PHONE_URL}prompts/ws_CO_nope/", {"action": "approve"}, **HX))
    assert "This request is not on this phone any more." in unknown
    assert daraja_sandbox.prompt(prompt_id)["status"] == "open"
    assert client.get(f"{PHONE_URL}prompts/{prompt_id}/").status_code == 405


def test_screen_polling_swaps_only_when_something_changed(
        client: Client, prompt_id: str, daraja_sandbox: DarajaSandbox) -> None:
    first = html(client.get(f"{PHONE_URL}screen/", **HX))
    assert first.strip().startswith('<div id="screen"')
    version = first.split("screen/?v=")[1].split('"')[0]
    unchanged = client.get(f"{PHONE_URL}screen/?v={version}", **HX)
    assert unchanged.status_code == 204
    daraja_sandbox.answer(prompt_id, "approve")
    changed = client.get(f"{PHONE_URL}screen/?v={version}", **HX)
    assert changed.status_code == 200 and "Confirmed." in html(changed)


def test_404_when_the_sandbox_is_disabled(client: Client, settings: Any,
                                          sandbox_url: str) -> None:
    settings.PESARAIL_SANDBOX_ENABLED = False
    assert client.get(PHONE_URL).status_code == 404
    assert client.get(f"{PHONE_URL}screen/").status_code == 404
    assert client.post(f"{PHONE_URL}prompts/ws_CO_x/", {"action": "approve"}).status_code == 404


def test_never_under_the_production_settings(client: Client, settings: Any,
                                             sandbox_url: str) -> None:
    settings.PESARAIL_SANDBOX_ENABLED = True
    settings.SETTINGS_MODULE = "pesarail.settings.production"
    assert client.get(PHONE_URL).status_code == 404


def test_talks_only_to_a_loopback_simulator(client: Client, settings: Any,
                                            loopback_only_http: LoopbackGuard) -> None:
    settings.PESARAIL_SANDBOX_URL = "http://sandbox.example.com:8089"
    response = client.get(PHONE_URL)
    assert response.status_code == 503
    assert "only talks to a simulator on this machine" in html(response)
    assert loopback_only_http.blocked == []  # it did not even try
    settings.PESARAIL_SANDBOX_URL = None
    assert "PESARAIL_SANDBOX_URL is not set" in html(client.get(PHONE_URL))


def test_a_simulator_that_is_down_is_explained(client: Client, settings: Any) -> None:
    settings.PESARAIL_SANDBOX_URL = "http://127.0.0.1:9"
    response = client.get(PHONE_URL)
    assert response.status_code == 503
    assert "did not answer" in html(response)
