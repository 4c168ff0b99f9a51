"""Payments tests drive the whole path over real HTTP: pesarail served on a loopback port,
the Daraja simulator on another, callbacks flowing between them. Nothing is mocked.

SQLite note: the in-memory test database is one connection, shared by every thread (as
Django's own live server does). Two threads running transactions on one connection would
corrupt each other, so on SQLite the app server handles one request at a time and the
test thread takes the same lock (``server.db()``) around its own database work. On
PostgreSQL every thread has its own connection and requests run truly concurrently.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from django.db import connection

from pesarail.ledger.audit import run_audit
from pesarail.payments.models import PaymentIntent
from tests.factories import Tenant
from tests.live_app import serve_test_app
from tests.sandbox_fixtures import *  # noqa: F403
from tests.sandbox_fixtures import PHONES, DarajaSandbox, LoopbackGuard


@pytest.fixture(autouse=True)
def _no_external_http(loopback_only_http: LoopbackGuard) -> Iterator[LoopbackGuard]:
    yield loopback_only_http


@pytest.fixture
def postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serialises writers and has no row locks, so "
                    "it cannot show a concurrency bug (set DATABASE_URL=postgres://...)")


@dataclass
class AppServer:
    """pesarail served over HTTP on 127.0.0.1 (the test database behind it)."""

    url: str
    lock: threading.RLock | None
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30,
                                                                    trust_env=False))

    def db(self) -> contextlib.AbstractContextManager[Any]:
        """Hold this around the test thread's own database work (a no-op on PostgreSQL)."""
        return self.lock if self.lock is not None else contextlib.nullcontext()

    def api(self, key: str, method: str, path: str, *, json: Any = None,
            idempotency_key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Token {key}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return self.http.request(method, f"{self.url}/api/v1{path}", json=json,
                                 headers=headers)


@pytest.fixture
def app_server(transactional_db: None, settings: Any) -> Iterator[AppServer]:
    with serve_test_app(settings) as (url, lock):
        app_server = AppServer(url=url, lock=lock)
        try:
            yield app_server
        finally:
            app_server.http.close()


@dataclass
class Env:
    """Everything an end-to-end payment test needs."""

    server: AppServer
    sandbox: DarajaSandbox
    tenant: Tenant
    account: Any

    def create(self, phone: str = PHONES["success"], amount: str = "10.00", *,
               key: str | None = None, **extra: Any) -> httpx.Response:
        body = {"amount": amount, "currency": "KES", "provider": "mpesa_ke",
                "phone_number": phone, "description": "Order 17", "reference": "ORDER-17",
                **extra}
        return self.server.api(self.tenant.api_key, "POST", "/payments/", json=body,
                               idempotency_key=key or f"key-{time.monotonic_ns()}")

    def get(self, intent_id: str) -> dict[str, Any]:
        response = self.server.api(self.tenant.api_key, "GET", f"/payments/{intent_id}/")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def intent(self, intent_id: str) -> PaymentIntent:
        with self.server.db():
            return PaymentIntent.objects.get(pk=intent_id)

    def wait_status(self, intent_id: str, *statuses: str, timeout: float = 8.0
                    ) -> PaymentIntent:
        deadline = time.monotonic() + timeout
        while True:
            intent = self.intent(intent_id)
            if intent.status in statuses:
                return intent
            assert time.monotonic() < deadline, (
                f"{intent_id} is {intent.status}, not {statuses} after {timeout}s")
            time.sleep(0.05)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 8.0,
                 what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            with self.server.db():
                value = predicate()
            if value:
                return value
            assert time.monotonic() < deadline, f"{what} not met within {timeout}s"
            time.sleep(0.05)


@pytest.fixture
def env(app_server: AppServer, daraja_sandbox: DarajaSandbox, tenant: Tenant,
        make_daraja_account: Callable[..., Any]) -> Iterator[Env]:
    daraja_sandbox.sim.update_config(auto_answer_seconds=0.15)
    with app_server.db():
        account = make_daraja_account()
    yield Env(server=app_server, sandbox=daraja_sandbox, tenant=tenant, account=account)
    # Whatever the test did, the ledger's invariants hold (pesarail audit-ledger).
    daraja_sandbox.server.stop()  # no callback may land while the audit reads
    with app_server.db():
        report = run_audit()
    assert report.ok, report.render()
