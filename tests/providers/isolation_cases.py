"""Isolation cases for ``/api/v1/provider-accounts/`` (see tests/isolation.py)."""

from __future__ import annotations

from pesarail.providers.models import ProviderAccount
from pesarail.providers.services import create_account
from tests.factories import Tenant
from tests.isolation import Action, IsolationCase, register


def _account(t: Tenant) -> ProviderAccount:
    return create_account(
        t.merchant, provider="mpesa_ke", name="Isolated till", environment="custom",
        base_url="http://127.0.0.1:9",  # closed port: an intruder's test call never gets here
        config={"shortcode": "174379"},
        credentials={"consumer_key": "iso-consumer-key", "consumer_secret": "iso-secret",
                     "passkey": "iso-passkey"},
    )


register(IsolationCase(
    name="provider-accounts",
    make=_account,
    list_url="/api/v1/provider-accounts/",
    detail_url="/api/v1/provider-accounts/{id}/",
    actions=(
        Action("PATCH", "/api/v1/provider-accounts/{id}/", {"name": "taken over"}),
        Action("DELETE", "/api/v1/provider-accounts/{id}/"),
        Action("POST", "/api/v1/provider-accounts/{id}/test/"),
    ),
    routes=("api/v1/provider-accounts/", "api/v1/provider-accounts/<pk>/",
            "api/v1/provider-accounts/<pk>/test/"),
))
