"""pesarail served over real HTTP on 127.0.0.1 for end-to-end tests, the test database
behind it.

Why not pytest-django's ``live_server``: on SQLite the test database is one in-memory
connection, and ``live_server`` lets several request threads use it at once (a browser
polls while a callback lands), which corrupts transactions. :func:`serve_test_app`
takes a lock around each request on SQLite (tests hold the same lock for their own
database work); on PostgreSQL requests run concurrently, each with its own connection.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.core.handlers.wsgi import WSGIHandler
from django.db import connections

from pesarail.sandbox.server import SandboxServer


@contextlib.contextmanager
def serve_test_app(settings: Any) -> Iterator[tuple[str, threading.RLock | None]]:
    """Serve the Django app; yields ``(base_url, lock)`` (lock is None on PostgreSQL) and
    points ``PESARAIL_BASE_URL`` at it so provider callbacks reach it."""
    conn = connections["default"]
    shared = conn.vendor == "sqlite" and conn.is_in_memory_db()
    lock = threading.RLock() if shared else None
    handler = WSGIHandler()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if lock is None:
            return handler(environ, start_response)  # type: ignore[no-any-return]
        with lock:
            connections["default"] = conn
            response = handler(environ, start_response)
            try:
                return [b"".join(response)]
            finally:
                close = getattr(response, "close", None)
                if close is not None:
                    close()

    if shared:
        conn.inc_thread_sharing()
    server = SandboxServer(app)  # type: ignore[arg-type]
    server.start()
    settings.PESARAIL_BASE_URL = server.url
    try:
        yield server.url, lock
    finally:
        server.stop()
        if shared:
            conn.dec_thread_sharing()
