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
