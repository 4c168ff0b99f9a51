"""``/api/v1/checkout-sessions/``: create (idempotent), list, detail, expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from pesarail.checkout.models import CheckoutSession
from tests.factories import CustomerFactory, Tenant

pytestmark = pytest.mark.django_db

URL = "/api/v1/checkout-sessions/"


def body(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "amount": "1500.00", "currency": "KES", "reference": "ORDER-1001",
        "allowed_providers": ["mpesa_ke"],
        "success_url": "https://shop.example/thanks?order=1001",
        "cancel_url": "https://shop.example/cart",
    }
    data.update(overrides)
    return data


def create(client: APIClient, key: str = "k1", **overrides: Any) -> Any:
    return client.post(URL, body(**overrides), format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_create_returns_the_hosted_page(merchant_client: APIClient, settings: Any) -> None:
    settings.PESARAIL_BASE_URL = "https://pay.example"
    before = timezone.now()
    response = create(merchant_client, expires_in=900, description="2 x chapati")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["id"].startswith("cs_") and len(data["id"]) == 25
    assert data["object"] == "checkout_session"
    assert data["url"] == f"https://pay.example/pay/{data['id']}/"
    assert data["status"] == "open"
    assert data["payment"] is None and data["payment_status"] is None
    assert data["amount"] == "1500.00" and data["amount_minor"] == 150000
    assert data["currency"] == "KES"
    assert data["allowed_providers"] == ["mpesa_ke"]
    assert data["description"] == "2 x chapati"
    expires = CheckoutSession.objects.get(pk=data["id"]).expires_at
    assert before + timedelta(seconds=899) <= expires <= timezone.now() + timedelta(seconds=901)


def test_defaults_currency_expiry_and_providers(merchant_client: APIClient) -> None:
    data = body()
    del data["currency"], data["allowed_providers"]
    response = merchant_client.post(URL, data, format="json", HTTP_IDEMPOTENCY_KEY="d1")
    assert response.status_code == 201, response.content
    session = CheckoutSession.objects.get(pk=response.json()["id"])
    assert session.currency == "KES"
    assert session.allowed_providers == ["mpesa_ke"]
    remaining = (session.expires_at - timezone.now()).total_seconds()
    assert 1790 < remaining <= 1800


def test_idempotency_key_replays_and_is_required(merchant_client: APIClient) -> None:
    first = create(merchant_client, key="same")
    again = create(merchant_client, key="same")
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert CheckoutSession.objects.count() == 1
    assert create(merchant_client, key="same", amount="10.00").status_code == 409
    missing = merchant_client.post(URL, body(), format="json")
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "idempotency_key_required"


@pytest.mark.parametrize(("overrides", "field"), [
    ({"success_url": "ftp://shop.example/x"}, "success_url"),
    ({"success_url": "javascript:alert(1)"}, "success_url"),
    ({"cancel_url": "/relative/path"}, "cancel_url"),
    ({"cancel_url": "https://user:pw@shop.example/"}, "cancel_url"),
    ({"amount": "1500.50"}, "amount"),  # M-Pesa takes whole shillings
    ({"amount": "0"}, "amount"),
    ({"amount": 1500}, "amount"),  # a number, not a decimal string
    ({"currency": "UGX", "amount": "1500"}, "currency"),
    ({"currency": "XYZ"}, "currency"),
    ({"allowed_providers": ["paypal"]}, "allowed_providers.0"),
    ({"allowed_providers": []}, "allowed_providers"),
    ({"allowed_providers": ["mpesa_ke", "mpesa_ke"]}, "allowed_providers"),
    ({"expires_in": 10}, "expires_in"),
    ({"expires_in": 90000}, "expires_in"),
    ({"reference": "  "}, "reference"),
], ids=lambda v: str(v) if isinstance(v, str) else None)
def test_bad_input_is_a_400_naming_the_field(merchant_client: APIClient,
                                            overrides: dict[str, Any], field: str) -> None:
    response = create(merchant_client, key="bad-input", **overrides)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"], response.json()
    assert not CheckoutSession.objects.exists()


def test_customer_must_be_the_merchants(merchant_client: APIClient, tenant: Tenant,
                                        other_tenant: Tenant) -> None:
    ok = create(merchant_client, key="c1", customer=tenant.customer.pk)
    assert ok.status_code == 201 and ok.json()["customer"] == tenant.customer.pk
    foreign = CustomerFactory(merchant=other_tenant.merchant)
    response = create(merchant_client, key="c2", customer=foreign.pk)
    assert response.status_code == 404
    assert response.json()["error"]["fields"] == {"customer": ["No such customer."]}


def test_list_detail_and_filters(merchant_client: APIClient) -> None:
    a = create(merchant_client, key="a", reference="A-1").json()
    b = create(merchant_client, key="b", reference="B-2").json()
    listed = merchant_client.get(URL).json()
    assert [s["id"] for s in listed["results"]] == [b["id"], a["id"]]
    assert [s["id"] for s in merchant_client.get(URL, {"reference": "A-1"}).json()["results"]
            ] == [a["id"]]
    assert merchant_client.get(URL, {"status": "complete"}).json()["results"] == []
    detail = merchant_client.get(f"{URL}{a['id']}/")
    assert detail.status_code == 200 and detail.json() == {**a, "status": "open"}
    assert merchant_client.get(URL, {"statuss": "open"}).status_code == 400
    assert merchant_client.get(URL, {"status": "bogus"}).status_code == 400


def test_expiry_is_enforced_on_read(merchant_client: APIClient) -> None:
    a = create(merchant_client, key="a").json()
    b = create(merchant_client, key="b").json()
    CheckoutSession.objects.filter(pk__in=[a["id"], b["id"]]).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    assert merchant_client.get(f"{URL}{a['id']}/").json()["status"] == "expired"
    statuses = {s["id"]: s["status"] for s in merchant_client.get(URL).json()["results"]}
    assert statuses == {a["id"]: "expired", b["id"]: "expired"}
    assert [s["id"] for s in merchant_client.get(URL, {"status": "expired"}).json()["results"]
            ] == [b["id"], a["id"]]


def test_customer_tokens_and_anonymous_are_refused(
        customer_client: APIClient, client_for: Callable[[str | None], APIClient]) -> None:
    assert customer_client.get(URL).status_code == 403
    assert create(customer_client).status_code == 403
    assert client_for(None).get(URL).status_code == 401
