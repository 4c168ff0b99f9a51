from __future__ import annotations

from pesarail.tenants import services
from pesarail.tenants.models import ApiKey, Customer
from tests.factories import Tenant
from tests.isolation import Action, IsolationCase, register


def _customer(t: Tenant) -> Customer:
    return t.customer


def _key(t: Tenant) -> ApiKey:
    return services.create_api_key(t.merchant, name="second").key


register(IsolationCase(
    name="customers",
    make=_customer,
    list_url="/api/v1/customers/",
    detail_url="/api/v1/customers/{id}/",
    customer_owned=True,
    routes=("api/v1/customers/", "api/v1/customers/<pk>/"),
))
register(IsolationCase(
    name="api-keys",
    make=_key,
    list_url="/api/v1/api-keys/",
    detail_url="/api/v1/api-keys/{id}/",
    actions=(Action("POST", "/api/v1/api-keys/{id}/revoke/"),),
    routes=("api/v1/api-keys/", "api/v1/api-keys/<pk>/", "api/v1/api-keys/<pk>/revoke/"),
))
