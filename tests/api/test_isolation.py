"""Tenant isolation for every API route (see tests/isolation.py)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from pesarail.common.middleware import canonical_route
from pesarail.tenants import services
from tests.factories import CustomerFactory, Tenant
from tests.isolation import CASES, EXEMPT_ROUTES, IsolationCase

# Modules that register isolation cases. Every new API module adds itself here.
CASE_MODULES = [
    "tests.tenants.isolation_cases",
    "tests.providers.isolation_cases",
    "tests.wallets.isolation_cases",
    "tests.payments.isolation_cases",
    "tests.checkout.isolation_cases",
]
for _module in CASE_MODULES:
    importlib.import_module(_module)


def _routes(resolver: URLResolver, prefix: str = "") -> list[str]:
    out: list[str] = []
    for pattern in resolver.url_patterns:
        route = prefix + canonical_route(str(pattern.pattern))
        if isinstance(pattern, URLResolver):
            out.extend(_routes(pattern, route))
        elif isinstance(pattern, URLPattern):
            out.append(route)
    return out


def test_every_api_route_is_covered_or_exempt() -> None:
    api_routes = {r for r in _routes(get_resolver()) if r.startswith("api/v1/")}
    covered = {route for case in CASES for route in case.routes}
    missing = sorted(r for r in api_routes if r not in covered and r not in EXEMPT_ROUTES)
    assert not missing, f"API routes without an isolation case: {missing}"
    stale = sorted(r for r in covered | set(EXEMPT_ROUTES) if r not in api_routes)
    assert not stale, f"isolation cases name routes that do not exist: {stale}"


def _ids(payload: object) -> set[str]:
    if isinstance(payload, dict) and "results" in payload:
        payload = payload["results"]
    assert isinstance(payload, list)
    return {item["id"] for item in payload}


@pytest.mark.django_db
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_other_merchant_cannot_see_or_touch(
    case: IsolationCase, tenant: Tenant, other_tenant: Tenant,
    client_for: Callable[[str | None], APIClient],
) -> None:
    obj = case.make(tenant)
    owner = client_for(tenant.api_key)
    intruder = client_for(other_tenant.api_key)
    if case.list_url:
        assert obj.pk in _ids(owner.get(case.list_url).json())
        assert obj.pk not in _ids(intruder.get(case.list_url).json())
    if case.detail_url:
        url = case.detail_url.format(id=obj.pk)
        assert owner.get(url).status_code == 200
        response = intruder.get(url)
        assert response.status_code == 404, response.content
        assert response.json()["error"]["type"] == "not_found"
    for action in case.actions:
        url = action.url.format(id=obj.pk)
        response = intruder.generic(action.method, url, data=json.dumps(
            action.body), content_type="application/json", HTTP_IDEMPOTENCY_KEY="iso-" + obj.pk)
        assert response.status_code == 404, (action, response.content)


@pytest.mark.django_db
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_other_customer_cannot_see_or_touch(
    case: IsolationCase, tenant: Tenant, client_for: Callable[[str | None], APIClient],
) -> None:
    obj = case.make(tenant)
    stranger = CustomerFactory(merchant=tenant.merchant)
    client = client_for(services.issue_customer_token(stranger))
    if case.list_url:
        response = client.get(case.list_url)
        if response.status_code == 200:
            assert obj.pk not in _ids(response.json())
        else:
            assert response.status_code == 403
    if case.detail_url:
        assert client.get(case.detail_url.format(id=obj.pk)).status_code in {403, 404}
    for action in case.actions:
        response = client.generic(action.method, action.url.format(id=obj.pk),
                                  data=json.dumps(action.body),
                                  content_type="application/json",
                                  HTTP_IDEMPOTENCY_KEY="iso-c-" + obj.pk)
        assert response.status_code in {403, 404}, (action, response.content)
    if case.customer_owned and case.detail_url:
        own = client_for(tenant.customer_token)
        assert own.get(case.detail_url.format(id=obj.pk)).status_code == 200
