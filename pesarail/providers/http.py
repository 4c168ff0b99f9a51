"""One pooled ``httpx.Client`` per process for every provider call.

The client is created lazily on first use (never at import), is thread-safe, and is
re-created after a ``fork`` (a client must not be shared by a parent and its child).
Timeouts are always explicit: adapters pass their own per call; the client's default is
only a backstop. Tests swap the client with :func:`override_client`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from prometheus_client import Histogram

__all__ = ["DEFAULT_TIMEOUT", "observe", "override_client", "shared_client"]

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=10.0, pool=5.0)
USER_AGENT = "pesarail/0.1 (+https://github.com/pesarail)"

PROVIDER_CALLS = Histogram(
    "pesarail_provider_call_duration_seconds",
    "Calls to payment providers by provider, operation and outcome.",
    ["provider", "operation", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

_lock = threading.Lock()
_client: httpx.Client | None = None
_client_pid: int | None = None
_override: httpx.Client | None = None


def _build() -> httpx.Client:
    return httpx.Client(
        timeout=DEFAULT_TIMEOUT,
        # Above the serving threads of a process (PESARAIL_THREADS): a push waits on
        # the provider for seconds, and every waiting thread holds one connection.
        limits=httpx.Limits(max_connections=512, max_keepalive_connections=64,
                            keepalive_expiry=30.0),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
    )


def shared_client() -> httpx.Client:
    """The process-wide provider HTTP client."""
    global _client, _client_pid
    if _override is not None:
        return _override
    pid = os.getpid()
    client = _client
    if client is not None and _client_pid == pid:
        return client
    with _lock:
        if _client is None or _client_pid != pid:
            _client = _build()  # after a fork the parent's client is abandoned, not closed
            _client_pid = pid
        return _client


@contextmanager
def override_client(client: httpx.Client) -> Iterator[httpx.Client]:
    """Use ``client`` for every provider call inside the block (tests)."""
    global _override
    previous = _override
    _override = client
    try:
        yield client
    finally:
        _override = previous


@contextmanager
def observe(provider: str, operation: str) -> Iterator[dict[str, str]]:
    """Time a provider call; set ``outcome["value"]`` inside the block."""
    outcome = {"value": "error"}
    started = time.perf_counter()
    try:
        yield outcome
    finally:
        PROVIDER_CALLS.labels(provider=provider, operation=operation,
                              outcome=outcome["value"]).observe(time.perf_counter() - started)
