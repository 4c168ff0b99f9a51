"""API keys, customers and customer login."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from django.db import connection
from rest_framework.test import APIClient

from pesarail.tenants import services
from pesarail.tenants.models import ApiKey, Customer, CustomerToken
from tests.factories import Tenant

pytestmark = pytest.mark.django_db


def test_database_holds_no_usable_key(tenant: Tenant) -> None:
    """Every column of every key row, read raw, is useless as a credential."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tenants_apikey")
        rows = cursor.fetchall()
        cursor.execute("SELECT * FROM tenants_customertoken")
        rows += cursor.fetchall()
    stored = [str(value) for row in rows for value in row if value is not None]
    assert stored
    for value in stored:
        assert tenant.api_key not in value
        assert tenant.customer_token not in value
        for secret in (value, value + "x"):
            assert services.authenticate_api_key(secret) is None
            assert services.authenticate_customer_token(secret) is None
    key = ApiKey.objects.get(merchant=tenant.merchant)
    assert key.digest == hashlib.sha256(tenant.api_key.encode()).hexdigest()
    assert key.prefix == tenant.api_key[:14]


def test_key_works_then_revoked_key_is_401(
    tenant: Tenant, client_for: Callable[[str | None], APIClient]
) -> None:
    client = client_for(tenant.api_key)
    response = client.get("/api/v1/merchants/me/")
    assert response.status_code == 200
    assert response.json()["id"] == tenant.merchant.pk
    assert response.json()["name"] == "Alpha Shop"
    services.revoke_api_key(ApiKey.objects.get(merchant=tenant.merchant))
    response = client.get("/api/v1/merchants/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert response["WWW-Authenticate"].startswith("Token")


def test_bearer_is_accepted_and_last_used_recorded(tenant: Tenant) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant.api_key}")
    assert ApiKey.objects.get(merchant=tenant.merchant).last_used_at is None
    assert client.get("/api/v1/merchants/me/").status_code == 200
    assert ApiKey.objects.get(merchant=tenant.merchant).last_used_at is not None


def test_inactive_merchant_key_is_refused(
    tenant: Tenant, client_for: Callable[[str | None], APIClient]
) -> None:
    tenant.merchant.is_active = False
    tenant.merchant.save()
    assert client_for(tenant.api_key).get("/api/v1/merchants/me/").status_code == 401


def test_create_key_via_api_returns_secret_once(merchant_client: APIClient) -> None:
    response = merchant_client.post("/api/v1/api-keys/", {"name": "ci"}, format="json")
    assert response.status_code == 201
    secret = response.json()["secret"]
    assert secret.startswith("sk_test_")
    listed = merchant_client.get("/api/v1/api-keys/").json()["results"]
    assert len(listed) == 2
    assert all("secret" not in item for item in listed)
    assert secret not in str(listed)
    live = merchant_client.post("/api/v1/api-keys/", {"mode": "live"}, format="json")
    assert live.status_code == 403  # a test key cannot mint live keys


def test_revoke_key_via_api(merchant_client: APIClient, tenant: Tenant,
                            client_for: Callable[[str | None], APIClient]) -> None:
    new = services.create_api_key(tenant.merchant, name="temp")
    response = merchant_client.post(f"/api/v1/api-keys/{new.key.pk}/revoke/")
    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    assert client_for(new.secret).get("/api/v1/merchants/me/").status_code == 401


def test_create_and_list_customers(merchant_client: APIClient, tenant: Tenant) -> None:
    response = merchant_client.post(
        "/api/v1/customers/",
        {"username": "amina", "password": "s3cret-pass", "phone_number": "0712 345 678",
         "name": "Amina"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["phone_number"] == "+254712345678"
    assert body["has_password"] is True
    assert "password" not in body
    assert Customer.objects.get(pk=body["id"]).password.startswith("md5$")  # hashed (test hasher)
    again = merchant_client.post("/api/v1/customers/", {"username": "amina"}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["fields"] == {"username": ["Already taken for this merchant."]}
    usernames = {c["username"] for c in merchant_client.get("/api/v1/customers/").json()["results"]}
    assert usernames == {"amina", tenant.customer.username}
    filtered = merchant_client.get("/api/v1/customers/?username=amina").json()["results"]
    assert [c["username"] for c in filtered] == ["amina"]


def test_customer_validation_errors(merchant_client: APIClient) -> None:
    response = merchant_client.post(
        "/api/v1/customers/", {"username": "bad name!", "phone_number": "12ab"}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "validation_error"
    assert set(error["fields"]) == {"username", "phone_number"}


def test_customer_login_and_own_data_only(tenant: Tenant,
                                          client_for: Callable[[str | None], APIClient]) -> None:
    anonymous = client_for(None)
    bad = anonymous.post("/api/v1/auth/token/", {"merchant": tenant.merchant.pk,
                         "username": tenant.customer.username, "password": "wrong"},
                         format="json")
    assert bad.status_code == 401
    assert bad.json()["error"]["code"] == "invalid_credentials"
    ok = anonymous.post("/api/v1/auth/token/", {"merchant": tenant.merchant.pk,
                        "username": tenant.customer.username,
                        "password": "correct-horse-battery"}, format="json")
    assert ok.status_code == 201, ok.content
    token = ok.json()["token"]
    assert token.startswith("ct_")
    me = client_for(token)
    listed = me.get("/api/v1/customers/").json()["results"]
    assert [c["id"] for c in listed] == [tenant.customer.pk]
    assert me.get("/api/v1/merchants/me/").json()["id"] == tenant.merchant.pk
    # Customers cannot use merchant-only endpoints.
    forbidden = me.post("/api/v1/customers/", {"username": "x"}, format="json")
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["type"] == "permission_error"
    assert me.get("/api/v1/api-keys/").status_code == 403
    # Logout revokes the token.
    assert me.post("/api/v1/auth/token/revoke/").status_code == 204
    assert me.get("/api/v1/customers/").status_code == 401
    assert CustomerToken.objects.filter(revoked_at__isnull=False).count() == 1


def test_login_with_another_merchants_id_fails(tenant: Tenant, other_tenant: Tenant) -> None:
    response = APIClient().post("/api/v1/auth/token/", {"merchant": other_tenant.merchant.pk,
                                "username": tenant.customer.username,
                                "password": "correct-horse-battery"}, format="json")
    assert response.status_code == 401


def test_expired_customer_token_is_401(tenant: Tenant,
                                       client_for: Callable[[str | None], APIClient]) -> None:
    from django.utils import timezone

    CustomerToken.objects.update(expires_at=timezone.now())
    assert client_for(tenant.customer_token).get("/api/v1/customers/").status_code == 401


def test_create_merchant_command_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from django.core.management import call_command

    call_command("create_merchant", "Kiosk", "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["merchant_id"].startswith("mer_")
    key = services.authenticate_api_key(out["api_key"])
    assert key is not None and key.merchant.name == "Kiosk"
