"""Checkout tests: the Daraja simulator over real HTTP, and for end-to-end and browser
tests pesarail itself served on a loopback port.

Why not pytest-django's ``live_server``: on SQLite the test database is one in-memory
connection, and ``live_server`` lets several request threads use it at once (the browser
polls while a callback lands), which corrupts transactions. :func:`checkout_server`
serves the app with a lock around each request on SQLite (the test thread takes the same
lock, ``server.db()``, for its own database work); on PostgreSQL requests run
concurrently, each thread with its own connection.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.live_app import serve_test_app
from tests.sandbox_fixtures import *  # noqa: F403
from tests.sandbox_fixtures import DarajaSandbox, LoopbackGuard

# Playwright's sync API runs an event loop in the test thread; Django refuses ORM calls
# from a thread with a running loop unless told it is fine (it is: nothing else runs
# in that loop).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _no_external_http(loopback_only_http: LoopbackGuard) -> Iterator[LoopbackGuard]:
    yield loopback_only_http


@pytest.fixture(autouse=True)
def _nowhere_base_url(settings: Any) -> None:
    # Tests without a served app: callbacks go to the discard port, never to whatever
    # may be listening on the default 127.0.0.1:8000 (a demo).
    settings.PESARAIL_BASE_URL = "http://127.0.0.1:9"


@dataclass
class CheckoutServer:
    """pesarail served over HTTP on 127.0.0.1, the test database behind it."""

    url: str
    lock: threading.RLock | None

    def db(self) -> contextlib.AbstractContextManager[Any]:
        """Hold this around the test thread's own database work (no-op on PostgreSQL)."""
        return self.lock if self.lock is not None else contextlib.nullcontext()


@pytest.fixture
def checkout_server(transactional_db: None, settings: Any) -> Iterator[CheckoutServer]:
    with serve_test_app(settings) as (url, lock):
        yield CheckoutServer(url=url, lock=lock)


@pytest.fixture
def sandbox_url(daraja_sandbox: DarajaSandbox, settings: Any) -> str:
    """The simulator as ``PESARAIL_SANDBOX_URL`` (what the sandbox phone page talks to)."""
    settings.PESARAIL_SANDBOX_URL = daraja_sandbox.url
    return daraja_sandbox.url
