"""Log redaction: secrets never reach a log line, phone numbers are masked."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.test import APIClient

from pesarail.common.logging import REDACTED, configure_logging, redact
from tests.factories import Tenant


@pytest.fixture
def json_logs() -> object:
    buffer = io.StringIO()
    configure_logging(level="INFO", json=True, stream=buffer)

    def lines() -> list[dict[str, object]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines()
                if line.startswith("{")]

    yield lines
    configure_logging()


def test_secret_keys_redacted_at_any_depth() -> None:
    event = {
        "password": "hunter22",
        "headers": {"Authorization": "Token sk_test_abcdefghijklmnop", "Accept": "json"},
        "credentials": {"consumer_secret": "s3cr3t", "passkey": "bfb279f9aa9b"},
        "items": [{"api_key": "sk_live_zzzzzzzzzzzz"}],
        "amount": 100,
    }
    out = redact(event)
    assert out["password"] == REDACTED
    assert out["headers"]["Authorization"] == REDACTED
    assert out["headers"]["Accept"] == "json"
    assert out["credentials"] == REDACTED
    assert out["items"][0]["api_key"] == REDACTED
    assert out["amount"] == 100


def test_secrets_inside_free_text_are_redacted() -> None:
    text = ("calling with Bearer c9SQxWWhmdVRlyh0zh8gZDTkubVF and key sk_test_Abc123def456ghi "
            "and token ct_abcdefghijklmnopqrstuvwxyz and Basic cGVzYXJhaWw6c2VjcmV0")
    out = redact({"message": text})["message"]
    for secret in ("c9SQxWWhmdVRlyh0zh8gZDTkubVF", "sk_test_Abc123def456ghi",
                   "ct_abcdefghijklmnopqrstuvwxyz", "cGVzYXJhaWw6c2VjcmV0"):
        assert secret not in out


def test_phone_numbers_masked() -> None:
    out = redact({"phone_number": "+254708374149", "PartyA": 254708374149,
                  "note": "payer 254712345678 and 0712345678"})
    assert out["phone_number"] == "+254708***149"
    assert "254708374149" not in str(out["PartyA"])
    assert "254712345678" not in out["note"] and "0712345678" not in out["note"]


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
               min_size=20, max_size=40))
def test_any_api_key_in_any_field_is_redacted(body: str) -> None:
    secret = f"sk_live_{body}"
    out = json.dumps(redact({"event": f"oops {secret}", "detail": [secret], "x": {"y": secret}}))
    assert secret not in out


@pytest.mark.django_db
def test_request_logs_carry_request_id_and_no_key(json_logs, tenant: Tenant) -> None:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {tenant.api_key}")
    response = client.get("/api/v1/merchants/me/", HTTP_X_REQUEST_ID="trace-1234567")
    structlog.get_logger("test").info("manual", authorization=f"Token {tenant.api_key}",
                                      phone="+254708374149")
    logging.getLogger("django.request").warning("raw %s", tenant.api_key)
    lines = json_logs()
    assert response.status_code == 200
    request_lines = [line for line in lines if line.get("event") == "request"]
    assert request_lines and request_lines[0]["request_id"] == "trace-1234567"
    assert request_lines[0]["status"] == 200
    dumped = json.dumps(lines)
    assert any(line.get("event") == "manual" for line in lines)
    assert any(str(line.get("event", "")).startswith("raw ") for line in lines)
    assert tenant.api_key not in dumped
    assert "+254708374149" not in dumped
    assert any(line.get("phone") == "+254708***149" for line in lines)
