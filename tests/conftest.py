from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from tests.factories import Tenant, make_tenant


@pytest.fixture
def tenant(db: None) -> Tenant:
    return make_tenant("Alpha Shop")


@pytest.fixture
def other_tenant(db: None) -> Tenant:
    return make_tenant("Beta Shop")


@pytest.fixture
def client_for() -> Callable[[str | None], APIClient]:
    """``client_for(secret)`` -> an API client sending ``Authorization: Token <secret>``."""

    def make(secret: str | None) -> APIClient:
        client = APIClient()
        if secret:
            client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
        return client

    return make


@pytest.fixture
def merchant_client(tenant: Tenant, client_for: Callable[[str | None], APIClient]) -> APIClient:
    return client_for(tenant.api_key)


@pytest.fixture
def customer_client(tenant: Tenant, client_for: Callable[[str | None], APIClient]) -> APIClient:
    return client_for(tenant.customer_token)


_LOOPBACK_PREFIXES = ("127.", "::1", "localhost")


@pytest.fixture(autouse=True)
def _no_traffic_beyond_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite never talks to anything but this machine: any socket connection to a
    non-loopback address fails the test at once (real providers are never contacted)."""
    import socket

    original = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and not str(host).startswith(
            _LOOPBACK_PREFIXES
        ):
            raise ConnectionRefusedError(f"test tried to reach {host!r}: loopback only")
        return original(self, address)  # type: ignore[arg-type]

    original_getaddrinfo = socket.getaddrinfo

    def guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if host is not None and not name.startswith(_LOOPBACK_PREFIXES):
            raise socket.gaierror(f"test tried to resolve {name!r}: loopback only")
        return original_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
