"""Fixtures for the sandbox tests: a real Daraja simulator on an ephemeral port, a real
HTTP client, and a tiny WSGI receiver (also a SandboxServer) capturing callbacks."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from pesarail.sandbox.daraja import (
    DEFAULT_APP,
    DarajaApp,
    DarajaConfig,
    DarajaSimulator,
    stk_password,
    stk_timestamp,
)
from pesarail.sandbox.server import SandboxServer

SAFARICOM_TEST_MSISDN = "254708374149"
# Building an SSL context per httpx.Client costs ~50 ms; the tests only speak plain HTTP.
_TLS = ssl.create_default_context()


@dataclass
class Captured:
    path: str
    body: Any
    at: float  # time.monotonic() on arrival


class Receiver:
    """A WSGI app that records every POST it gets and answers like a merchant would."""

    def __init__(self) -> None:
        self.calls: list[Captured] = []
        self.status = "200 OK"
        self._cond = threading.Condition()
        self.base_url = ""

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        with self._cond:
            self.calls.append(
                Captured(environ["PATH_INFO"], json.loads(raw or b"null"), time.monotonic())
            )
            self._cond.notify_all()
        data = b'{"ResultCode": 0, "ResultDesc": "Accepted"}'
        start_response(
            self.status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    def url(self, path: str = "/mpesa/callback") -> str:
        return self.base_url + path

    def wait(self, count: int = 1, timeout: float = 5.0) -> list[Captured]:
        """Wait until ``count`` callbacks arrived (or timeout); return what arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.calls) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return list(self.calls)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    with SandboxServer(rec) as server:
        rec.base_url = server.url
        yield rec


class Daraja:
    """A thin Daraja client for the tests (what an adapter would send)."""

    def __init__(self, server: SandboxServer, sim: DarajaSimulator, callback_url: str) -> None:
        self.server = server
        self.sim = sim
        self.url = server.url
        self.callback_url = callback_url
        self.http = httpx.Client(
            base_url=server.url,
            trust_env=False,
            verify=_TLS,
            timeout=10,
            limits=httpx.Limits(max_connections=100),
        )
        self._token: str | None = None

    def get_token(self, app: DarajaApp = DEFAULT_APP) -> httpx.Response:
        return self.http.get(
            "/oauth/v1/generate",
            params={"grant_type": "client_credentials"},
            auth=(app.consumer_key, app.consumer_secret),
        )

    def token(self, app: DarajaApp = DEFAULT_APP) -> str:
        response = self.get_token(app)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        if app == DEFAULT_APP:
            self._token = token
        return token

    def bearer(self, token: str | None = None) -> dict[str, str]:
        if token is None:
            token = self._token or self.token()
        return {"Authorization": f"Bearer {token}"}

    def push_body(
        self, phone: str = SAFARICOM_TEST_MSISDN, app: DarajaApp = DEFAULT_APP, **overrides: Any
    ) -> dict[str, Any]:
        ts = stk_timestamp()
        body: dict[str, Any] = {
            "BusinessShortCode": int(app.shortcode),
            "Password": stk_password(app.shortcode, app.passkey, ts),
            "Timestamp": ts,
            "TransactionType": "CustomerPayBillOnline",
            "Amount": 10,
            "PartyA": int(phone),
            "PartyB": int(app.shortcode),
            "PhoneNumber": int(phone),
            "CallBackURL": self.callback_url,
            "AccountReference": "INV-001",
            "TransactionDesc": "Test shop",
        }
        body.update(overrides)
        return body

    def push(
        self,
        phone: str = SAFARICOM_TEST_MSISDN,
        *,
        token: str | None = None,
        app: DarajaApp = DEFAULT_APP,
        drop: Iterable[str] = (),
        **overrides: Any,
    ) -> httpx.Response:
        body = self.push_body(phone, app, **overrides)
        for name in drop:
            body.pop(name)
        return self.http.post(
            "/mpesa/stkpush/v1/processrequest", json=body, headers=self.bearer(token)
        )

    def push_ok(self, phone: str = SAFARICOM_TEST_MSISDN, **kwargs: Any) -> str:
        response = self.push(phone, **kwargs)
        assert response.status_code == 200, response.text
        checkout_id: str = response.json()["CheckoutRequestID"]
        return checkout_id

    def query(
        self,
        checkout_id: str,
        *,
        token: str | None = None,
        app: DarajaApp = DEFAULT_APP,
        **overrides: Any,
    ) -> httpx.Response:
        ts = stk_timestamp()
        body: dict[str, Any] = {
            "BusinessShortCode": app.shortcode,
            "Password": stk_password(app.shortcode, app.passkey, ts),
            "Timestamp": ts,
            "CheckoutRequestID": checkout_id,
        }
        body.update(overrides)
        return self.http.post("/mpesa/stkpushquery/v1/query", json=body, headers=self.bearer(token))

    def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, "/_sandbox/" + path.lstrip("/"), **kwargs)

    def close(self) -> None:
        self.http.close()


#: Small delays so the whole suite stays fast.
FAST = {"auto_answer_seconds": 0.2, "timeout_hold_seconds": 1.0}


@pytest.fixture
def make_daraja(receiver: Receiver) -> Iterator[Callable[..., Daraja]]:
    """Factory: ``make_daraja(**config_fields)`` -> a running simulator + client."""
    started: list[Daraja] = []

    def factory(**config: Any) -> Daraja:
        sim = DarajaSimulator(DarajaConfig(**{**FAST, **config}))
        sim.start_background()
        server = SandboxServer(sim, on_stop=sim.stop)
        server.start()
        client = Daraja(server, sim, receiver.url())
        started.append(client)
        return client

    yield factory
    for client in started:
        client.close()
        client.server.stop()


@pytest.fixture
def daraja(make_daraja: Callable[..., Daraja]) -> Daraja:
    return make_daraja()
