"""The simulator's control plane (/_sandbox/...) and its Python twin."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from pesarail.sandbox.daraja import (
    DEFAULT_APP,
    DarajaApp,
    PromptAlreadyAnswered,
    PromptNotFound,
    normalize_msisdn,
)

from .conftest import SAFARICOM_TEST_MSISDN, Daraja, Receiver


def callback_code(receiver: Receiver, index: int = 0) -> int:
    calls = receiver.wait(index + 1)
    code: int = calls[index].body["Body"]["stkCallback"]["ResultCode"]
    return code


def test_health_needs_no_token_but_others_do(make_daraja: Callable[..., Daraja]) -> None:
    daraja = make_daraja(control_token="s3cret")
    health = daraja.control("GET", "health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["provider"] == "mpesa_ke"
    assert daraja.control("GET", "stats").status_code == 401
    assert daraja.control("GET", "stats", headers={"X-Sandbox-Token": "wrong"}).status_code == 401
    assert daraja.control("GET", "stats", headers={"X-Sandbox-Token": "s3cret"}).status_code == 200
    config = daraja.control("GET", "config", headers={"X-Sandbox-Token": "s3cret"}).json()
    assert "s3cret" not in str(config)
    assert config["control_token_set"] is True


def test_prompts_listing(make_daraja: Callable[..., Daraja]) -> None:
    daraja = make_daraja(auto_answer_seconds=60)
    first = daraja.push_ok(Amount=70, AccountReference="ORDER-7", TransactionDesc="Mama Mboga")
    daraja.sim.answer(first, "cancel")
    second = daraja.push_ok(Amount=80)
    daraja.push_ok("254711000040")
    response = daraja.control("GET", "prompts", params={"msisdn": "0708 374 149"})
    assert response.status_code == 200
    prompts = response.json()["prompts"]
    assert [p["checkout_request_id"] for p in prompts] == [second, first]  # newest first
    newest, older = prompts
    assert (newest["status"], newest["pending"], newest["amount"]) == ("open", True, 80)
    assert (older["status"], older["result_code"], older["answered_by"]) == (
        "cancelled",
        1032,
        "control",
    )
    assert older["shortcode"] == "174379"
    assert older["account_reference"] == "ORDER-7"
    assert older["business_name"] == "Mama Mboga"
    assert older["msisdn"] == SAFARICOM_TEST_MSISDN
    assert older["created_at"].endswith("+03:00")
    pending = daraja.control("GET", "prompts", params={"status": "pending"}).json()["prompts"]
    assert len(pending) == 2
    one = daraja.control("GET", f"prompts/{second}")
    assert one.status_code == 200 and one.json()["checkout_request_id"] == second
    assert daraja.control("GET", "prompts/ws_CO_nope").status_code == 404


@pytest.mark.parametrize(
    ("action", "code"), [("approve", 0), ("cancel", 1032), ("wrong_pin", 2001)]
)
def test_answer_actions(
    make_daraja: Callable[..., Daraja], receiver: Receiver, action: str, code: int
) -> None:
    daraja = make_daraja(auto_answer_seconds=60)
    # a number scripted to fail with 1 (insufficient funds): the person's answer wins
    checkout_id = daraja.push_ok("254711110001")
    response = daraja.control("POST", f"prompts/{checkout_id}/answer", json={"action": action})
    assert response.status_code == 200
    assert response.json()["result_code"] == code
    assert response.json()["answered_by"] == "control"
    assert callback_code(receiver) == code
    assert daraja.query(checkout_id).json()["ResultCode"] == str(code)
    again = daraja.control("POST", f"prompts/{checkout_id}/answer", json={"action": "approve"})
    assert again.status_code == 409
    assert again.json()["prompt"]["result_code"] == code


def test_answer_errors(daraja: Daraja) -> None:
    missing = daraja.control("POST", "prompts/ws_CO_unknown/answer", json={"action": "approve"})
    assert missing.status_code == 404
    checkout_id = daraja.push_ok()
    for body in ({"action": "dance"}, {}, {"action": 1}):
        assert daraja.control("POST", f"prompts/{checkout_id}/answer", json=body).status_code == 400
    bad_json = daraja.control("POST", f"prompts/{checkout_id}/answer", content=b"{")
    assert bad_json.status_code == 400
    assert daraja.control("GET", f"prompts/{checkout_id}/answer").status_code == 405
    with pytest.raises(PromptNotFound):
        daraja.sim.answer("ws_CO_unknown", "approve")
    with pytest.raises(ValueError, match="action"):
        daraja.sim.answer(checkout_id, "dance")


def test_ignore_times_out_with_1037(make_daraja: Callable[..., Daraja], receiver: Receiver) -> None:
    daraja = make_daraja(auto_answer_seconds=0.4)
    checkout_id = daraja.push_ok()  # scripted to succeed
    ignored = daraja.sim.answer(checkout_id, "ignore")
    assert (ignored["status"], ignored["pending"]) == ("ignored", True)
    assert daraja.query(checkout_id).json()["errorMessage"] == "The transaction is being processed"
    with pytest.raises(PromptAlreadyAnswered):
        daraja.sim.answer(checkout_id, "approve")
    assert callback_code(receiver) == 1037
    prompt = daraja.sim.prompt(checkout_id)
    assert (prompt["status"], prompt["answered_by"]) == ("timed_out", "auto")
    assert daraja.query(checkout_id).json()["ResultCode"] == "1037"


def test_config_update(daraja: Daraja) -> None:
    response = daraja.control(
        "POST",
        "config",
        json={
            "duplicate_callbacks": 1,
            "push_fault": "timeout",
            "query_latency": {"fixed": 0, "median": 0.05, "p99": 0.2},
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["duplicate_callbacks"] == 1
    assert body["push_fault"] == "timeout"
    assert body["query_latency"] == {"fixed": 0.0, "median": 0.05, "p99": 0.2}
    assert daraja.sim.config.duplicate_callbacks == 1
    assert daraja.control("GET", "config").json()["duplicate_callbacks"] == 1


@pytest.mark.parametrize(
    "change",
    [
        {"no_such_switch": 1},
        {"duplicate_callbacks": "two"},
        {"duplicate_callbacks": -1},
        {"lose_callbacks": "yes"},
        {"push_fault": "502"},
        {"callback_loss_rate": 1.5},
        {"auto_answer_seconds": -1},
        {"stkpush_latency": {"fixed": 0.1, "jitter": 2}},
        {"stkpush_latency": {"median": 0.1}},
        {"apps": []},
    ],
    ids=lambda c: next(iter(c)),
)
def test_config_update_rejects_bad_input(daraja: Daraja, change: dict[str, object]) -> None:
    before = daraja.sim.config
    response = daraja.control("POST", "config", json=change)
    assert response.status_code == 400
    assert response.json()["error"]
    assert daraja.sim.config == before


def test_add_app_through_control_api(daraja: Daraja) -> None:
    response = daraja.control(
        "POST",
        "apps",
        json={
            "consumer_key": "k2",
            "consumer_secret": "s2",
            "shortcode": "600200",
            "passkey": "p2",
            "name": "shop-two",
        },
    )
    assert response.status_code == 201
    assert response.json() == {"name": "shop-two", "consumer_key": "k2", "shortcode": "600200"}
    app = DarajaApp("k2", "s2", "600200", "p2", "shop-two")
    token = daraja.token(app)
    assert daraja.push(token=token, app=app).status_code == 200
    assert daraja.sim.token_issue_count("shop-two") == 1
    names = [a["name"] for a in daraja.control("GET", "apps").json()["apps"]]
    assert names == ["pesarail-sandbox", "shop-two"]
    duplicate = daraja.control(
        "POST",
        "apps",
        json={"consumer_key": "k2", "consumer_secret": "x", "shortcode": "1", "passkey": "p"},
    )
    assert duplicate.status_code == 400
    assert daraja.control("POST", "apps", json={"consumer_key": "k3"}).status_code == 400


def test_reset_restores_construction_config(make_daraja: Callable[..., Daraja]) -> None:
    daraja = make_daraja(auto_answer_seconds=60)
    token = daraja.token()
    daraja.push_ok()
    daraja.sim.add_app(DarajaApp("k9", "s9", "600900", "p9", "nine"))
    daraja.control("POST", "config", json={"lose_callbacks": True})
    response = daraja.control("POST", "reset")
    assert response.status_code == 200
    assert daraja.sim.config.lose_callbacks is False
    assert daraja.sim.config.auto_answer_seconds == 60  # the constructed value, kept
    assert [a.name for a in daraja.sim.config.apps] == ["pesarail-sandbox"]
    assert daraja.sim.prompts() == []
    stats = daraja.sim.stats()
    assert (stats["pushes"], stats["tokens_issued"], stats["jobs_pending"]) == (0, 0, 0)
    assert daraja.push(token=token).status_code == 404  # tokens forgotten too
    assert daraja.push(token=daraja.token()).status_code == 200  # and the phone is unlocked


def test_stats_and_control_errors(daraja: Daraja, receiver: Receiver) -> None:
    daraja.push_ok()
    daraja.push()  # locked subscriber
    checkout_id = daraja.sim.prompts()[0]["checkout_request_id"]
    daraja.query(checkout_id)
    receiver.wait(1)
    daraja.sim.wait_for_callbacks(1)
    stats = daraja.control("GET", "stats").json()
    assert stats["token_issues"] == {DEFAULT_APP.name: 1}
    assert (stats["pushes"], stats["push_errors"], stats["queries"]) == (1, 1, 1)
    assert stats["callbacks_sent"] == 1
    assert daraja.control("GET", "nope").status_code == 404
    assert daraja.control("POST", "stats").status_code == 405
    assert daraja.control("GET", "reset").status_code == 405


def test_wait_for_callbacks_filters_by_checkout(daraja: Daraja) -> None:
    first = daraja.push_ok("254711000050")
    second = daraja.push_ok("254711000051")
    entries = daraja.sim.wait_for_callbacks(1, checkout_request_id=second)
    assert [e["checkout_request_id"] for e in entries] == [second]
    assert (
        daraja.sim.wait_for_callbacks(1, checkout_request_id=first)[0]["checkout_request_id"]
        == first
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0712345678", "254712345678"),
        ("+254 712 345 678", "254712345678"),
        ("712345678", "254712345678"),
        ("254112345678", "254112345678"),
        ("0112345678", "254112345678"),
    ],
)
def test_normalize_msisdn(raw: str, expected: str) -> None:
    assert normalize_msisdn(raw) == expected
    assert re.fullmatch(r"254\d{9}", normalize_msisdn(raw))
