"""Reusable fixtures: a real Daraja simulator over HTTP, a callback receiver, a provider
account pointing at the simulator, and a guard that refuses non-loopback HTTP.

Use them from any test package's ``conftest.py`` with an explicit import (pytest refuses
``pytest_plugins`` in a conftest below the root one, so that route breaks the full run)::

    from tests.sandbox_fixtures import *  # noqa: F403

Fixtures:

* ``daraja_sandbox`` -- a running simulator (fast auto-answer) as :class:`DarajaSandbox`;
* ``callback_receiver`` -- a loopback HTTP server recording every callback POSTed to it;
* ``daraja_account`` -- a ``ProviderAccount`` of ``tenant`` for the simulator's default
  app (environment ``custom``); ``make_daraja_account(**overrides)`` builds more;
* ``loopback_only_http`` -- provider HTTP calls to anything but loopback fail with a
  connection error (nothing leaves the machine); records what was blocked.

Scripted outcomes are chosen by the phone number's last four digits (see
``pesarail.sandbox.daraja.SCRIPTED_OUTCOMES``); :data:`PHONES` names them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from pesarail.providers import http as provider_http
from pesarail.sandbox.daraja import DEFAULT_APP, DarajaConfig, DarajaSimulator, run_daraja
from pesarail.sandbox.server import SandboxServer

__all__ = [
    "PHONES",
    "CallbackReceiver",
    "DarajaSandbox",
    "LoopbackGuard",
    "callback_receiver",
    "daraja_account",
    "daraja_sandbox",
    "loopback_only_http",
    "make_daraja_account",
]

#: E.164 test numbers -> the STK outcome the simulator scripts for them.
PHONES: dict[str, str] = {
    "success": "+254708374149",  # Safaricom's test MSISDN; any unscripted number succeeds
    "cancelled": "+254700001032",  # 1032 request cancelled by user
    "insufficient_funds": "+254700000001",  # 1
    "unreachable": "+254700001037",  # 1037 DS timeout, user cannot be reached
    "wrong_pin": "+254700002001",  # 2001
    "busy": "+254700001001",  # 1001 unable to lock subscriber
    "expired": "+254700001019",  # 1019 transaction expired
}

#: Simulator settings that keep tests fast.
FAST_SANDBOX = {"auto_answer_seconds": 0.3, "timeout_hold_seconds": 2.0}

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass
class DarajaSandbox:
    """A running Daraja simulator and a client for its control plane (``/_sandbox/``)."""

    server: SandboxServer
    sim: DarajaSimulator
    url: str
    http: httpx.Client
    app: Any = DEFAULT_APP

    @property
    def credentials(self) -> dict[str, str]:
        return {"consumer_key": self.app.consumer_key,
                "consumer_secret": self.app.consumer_secret, "passkey": self.app.passkey}

    @property
    def config(self) -> dict[str, Any]:
        return {"shortcode": self.app.shortcode, "transaction_type": "CustomerPayBillOnline"}

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.url}/_sandbox/{path.lstrip('/')}",
                                     **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    def stats(self) -> dict[str, Any]:
        return dict(self.control("GET", "stats"))

    def tokens_issued(self) -> int:
        return int(self.stats()["tokens_issued"])

    def configure(self, **changes: Any) -> dict[str, Any]:
        return dict(self.control("POST", "config", json=changes))

    def revoke_tokens(self) -> int:
        return int(self.control("POST", "revoke-tokens")["revoked"])

    def answer(self, checkout_request_id: str, action: str) -> dict[str, Any]:
        return dict(self.control("POST", f"prompts/{checkout_request_id}/answer",
                                 json={"action": action}))

    def prompt(self, checkout_request_id: str) -> dict[str, Any]:
        return dict(self.control("GET", f"prompts/{checkout_request_id}"))

    def wait_until_answered(self, checkout_request_id: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.prompt(checkout_request_id)["pending"]:
            assert time.monotonic() < deadline, "prompt was not answered in time"
            time.sleep(0.05)


@pytest.fixture
def daraja_sandbox() -> Iterator[DarajaSandbox]:
    """A fresh Daraja simulator on an ephemeral loopback port (stopped afterwards).
    The process token cache is cleared around it, so token counts start at zero."""
    from pesarail.providers.tokens import PROCESS_CACHE

    PROCESS_CACHE.clear()
    server, sim = run_daraja(config=DarajaConfig(**FAST_SANDBOX))
    http = httpx.Client(timeout=10, trust_env=False)
    try:
        yield DarajaSandbox(server=server, sim=sim, url=server.url, http=http)
    finally:
        http.close()
        server.stop()
        PROCESS_CACHE.clear()


@dataclass
class Received:
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class CallbackReceiver:
    """Records every request; answers like a merchant endpoint (200, Daraja ack)."""

    base_url: str = ""
    calls: list[Received] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").title(): str(v) for k, v in environ.items()
                   if k.startswith("HTTP_")}
        with self._cond:
            self.calls.append(Received(environ.get("PATH_INFO", ""),
                                       environ.get("QUERY_STRING", ""), headers, body))
            self._cond.notify_all()
        data = b'{"ResultCode": 0, "ResultDesc": "Accepted"}'
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(data)))])
        return [data]

    def url(self, path: str = "/hooks/mpesa_ke/test/") -> str:
        return self.base_url + path

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float = 5.0
                 ) -> Received:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for call in self.calls:
                    if predicate(call):
                        return call
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no matching callback within {timeout}s"
                self._cond.wait(remaining)

    def wait_for_checkout(self, checkout_request_id: str, timeout: float = 5.0) -> Received:
        """The first callback about ``checkout_request_id``."""
        return self.wait_for(lambda c: checkout_request_id.encode() in c.body, timeout)


@pytest.fixture
def callback_receiver() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    with SandboxServer(receiver) as server:  # type: ignore[arg-type]
        receiver.base_url = server.url
        yield receiver


@pytest.fixture
def make_daraja_account(daraja_sandbox: DarajaSandbox, tenant: Any) -> Callable[..., Any]:
    """``make_daraja_account(**overrides)`` -> a ProviderAccount for the simulator."""
    from pesarail.providers import services

    def make(**overrides: Any) -> Any:
        fields: dict[str, Any] = {
            "provider": "mpesa_ke",
            "name": "Daraja simulator",
            "environment": "custom",
            "base_url": daraja_sandbox.url,
            "config": {**daraja_sandbox.config, "confirm_callbacks_with_query": False},
            "credentials": daraja_sandbox.credentials,
        }
        merchant = overrides.pop("merchant", tenant.merchant)
        fields.update(overrides)
        return services.create_account(merchant, **fields)

    return make


@pytest.fixture
def daraja_account(make_daraja_account: Callable[..., Any]) -> Any:
    """``tenant``'s default M-Pesa account, pointing at ``daraja_sandbox``."""
    return make_daraja_account()


class LoopbackGuard(httpx.BaseTransport):
    """An httpx transport that only lets loopback requests through."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.blocked: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in _LOOPBACK:
            self.blocked.append(str(request.url.copy_with(query=None)))
            raise httpx.ConnectError(
                f"test guard: refusing to contact non-loopback host {request.url.host}",
                request=request,
            )
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def loopback_only_http() -> Iterator[LoopbackGuard]:
    """Route every provider call through :class:`LoopbackGuard` (``.blocked`` lists the
    refused URLs)."""
    guard = LoopbackGuard()
    client = httpx.Client(transport=guard, trust_env=False)
    with provider_http.override_client(client):
        yield guard
    client.close()
