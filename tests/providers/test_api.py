"""``/api/v1/provider-accounts/``: write-only credentials, validation per provider, the
credentials test against the simulator, and the admin never showing a secret."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client, override_settings
from rest_framework.test import APIClient

from pesarail.providers.models import ProviderAccount
from pesarail.tenants import services as tenant_services
from tests.factories import Tenant
from tests.sandbox_fixtures import DarajaSandbox

pytestmark = pytest.mark.django_db

URL = "/api/v1/provider-accounts/"
SECRET = "cs-Th1s-Is-The-Consumer-Secret"
PASSKEY = "pk-Th1s-Is-The-Passkey-0000"
INITIATOR_PASSWORD = "ip-Th1s-Is-The-Initiator-Pw"
CONSUMER_KEY = "ck-consumer-key-ABCD1234"
SECRETS = (SECRET, PASSKEY, INITIATOR_PASSWORD, CONSUMER_KEY)


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "provider": "mpesa_ke",
        "name": "Main paybill",
        "environment": "sandbox",
        "config": {"shortcode": "174379"},
        "credentials": {"consumer_key": CONSUMER_KEY, "consumer_secret": SECRET,
                        "passkey": PASSKEY, "initiator_name": "testapi",
                        "initiator_password": INITIATOR_PASSWORD},
    }
    body.update(overrides)
    return body


def _no_secrets(content: bytes | str) -> None:
    text = content.decode() if isinstance(content, bytes) else content
    for secret in SECRETS:
        assert secret not in text


def _create(client: APIClient, **overrides: Any) -> dict[str, Any]:
    response = client.post(URL, _body(**overrides), format="json")
    assert response.status_code == 201, response.content
    _no_secrets(response.content)
    return dict(response.json())


def _errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 400, response.content
    _no_secrets(response.content)
    return dict(response.json()["error"]["fields"])


# ------------------------------------------------------------------------- CRUD


def test_create_shows_no_secret_and_fills_defaults(merchant_client: APIClient) -> None:
    with override_settings(PESARAIL_SANDBOX_URL=None, PESARAIL_BASE_URL="https://pay.example"):
        data = _create(merchant_client)
    assert data["id"].startswith("pac_")
    assert data["credentials_set"] == ["consumer_key", "consumer_secret", "initiator_name",
                                       "initiator_password", "passkey"]
    assert data["credential_hints"] == {"consumer_key": "…1234"}
    assert "credentials" not in data
    assert data["base_url"] == "https://sandbox.safaricom.co.ke"
    assert data["config"] == {
        "shortcode": "174379", "transaction_type": "CustomerPayBillOnline",
        "confirm_callbacks_with_query": False, "ip_allowlist": [], "stk_timeout_seconds": 120,
    }
    account = ProviderAccount.objects.get(pk=data["id"])
    assert data["callback_url"] == f"https://pay.example/hooks/mpesa_ke/{account.callback_token}/"
    assert len(account.callback_token) >= 43
    assert data["is_default"] is True and data["is_active"] is True
    assert data["last_test_ok"] is None


def test_list_retrieve_and_filters_never_show_secrets(merchant_client: APIClient) -> None:
    first = _create(merchant_client)
    second = _create(merchant_client, name="Second", environment="custom",
                     base_url="http://127.0.0.1:9")
    listing = merchant_client.get(URL)
    assert listing.status_code == 200
    _no_secrets(listing.content)
    assert [a["id"] for a in listing.json()["results"]] == [second["id"], first["id"]]
    assert second["is_default"] is False  # the first account stays the default
    only_custom = merchant_client.get(URL, {"environment": "custom"}).json()["results"]
    assert [a["id"] for a in only_custom] == [second["id"]]
    detail = merchant_client.get(f"{URL}{first['id']}/")
    assert detail.status_code == 200
    _no_secrets(detail.content)


def test_production_uses_safaricom_and_confirms_callbacks_by_default(tenant: Tenant,
                                                                     client_for: Any) -> None:
    live = tenant_services.create_api_key(tenant.merchant, mode="live", name="live")
    data = _create(client_for(live.secret), environment="production")
    assert data["base_url"] == "https://api.safaricom.co.ke"
    assert data["config"]["confirm_callbacks_with_query"] is True


def test_a_test_key_cannot_touch_production_accounts(merchant_client: APIClient,
                                                     tenant: Tenant, client_for: Any) -> None:
    response = merchant_client.post(URL, _body(environment="production"), format="json")
    assert response.status_code == 403
    live = client_for(tenant_services.create_api_key(tenant.merchant, mode="live").secret)
    account = _create(live, environment="production")
    response = merchant_client.patch(f"{URL}{account['id']}/",
                                     {"config": {"shortcode": "999999"}}, format="json")
    assert response.status_code == 403
    sandbox = _create(merchant_client)
    response = merchant_client.patch(f"{URL}{sandbox['id']}/", {"environment": "production"},
                                     format="json")
    assert response.status_code == 403


def test_sandbox_url_setting_is_read_at_call_time(merchant_client: APIClient) -> None:
    data = _create(merchant_client)
    with override_settings(PESARAIL_SANDBOX_URL="http://127.0.0.1:8089/"):
        assert merchant_client.get(f"{URL}{data['id']}/").json()["base_url"] == \
            "http://127.0.0.1:8089"


def test_patch_rotates_credentials_and_merges_config(merchant_client: APIClient) -> None:
    data = _create(merchant_client)
    account = ProviderAccount.objects.get(pk=data["id"])
    ProviderAccount.objects.filter(pk=account.pk).update(last_test_ok=True,
                                                         last_test_message="ok")
    new_secret = "cs-rotated-secret-value-77"
    response = merchant_client.patch(f"{URL}{account.pk}/", {
        "credentials": {"consumer_secret": new_secret, "initiator_password": None},
        "config": {"stk_timeout_seconds": 90},
        "name": "Renamed",
    }, format="json")
    assert response.status_code == 200, response.content
    assert new_secret not in response.content.decode()
    _no_secrets(response.content)
    body = response.json()
    assert body["name"] == "Renamed"
    assert body["config"]["stk_timeout_seconds"] == 90
    assert body["config"]["shortcode"] == "174379"  # merged, not replaced
    assert "initiator_password" not in body["credentials_set"]
    assert body["last_test_ok"] is None  # new credentials: the old test result is void
    account.refresh_from_db()
    assert account.credentials["consumer_secret"] == new_secret
    assert account.credentials["passkey"] == PASSKEY


def test_delete_deactivates(merchant_client: APIClient) -> None:
    data = _create(merchant_client)
    response = merchant_client.delete(f"{URL}{data['id']}/")
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert response.json()["is_default"] is False
    assert ProviderAccount.objects.filter(pk=data["id"]).exists()
    listed = merchant_client.get(URL, {"is_active": "false"}).json()["results"]
    assert [a["id"] for a in listed] == [data["id"]]
    response = merchant_client.patch(f"{URL}{data['id']}/", {"is_default": True}, format="json")
    assert response.status_code == 400
    assert "is_default" in response.json()["error"]["fields"]


def test_one_default_per_merchant_and_provider(merchant_client: APIClient) -> None:
    first = _create(merchant_client)
    second = _create(merchant_client, name="Second", is_default=True)
    assert second["is_default"] is True
    assert merchant_client.get(f"{URL}{first['id']}/").json()["is_default"] is False
    merchant_client.patch(f"{URL}{first['id']}/", {"is_default": True}, format="json")
    defaults = merchant_client.get(URL, {"is_default": "true"}).json()["results"]
    assert [a["id"] for a in defaults] == [first["id"]]


def test_customers_are_refused(customer_client: APIClient) -> None:
    assert customer_client.get(URL).status_code == 403
    assert customer_client.post(URL, _body(), format="json").status_code == 403


# -------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"credentials": {"consumer_key": CONSUMER_KEY, "passkey": PASSKEY}},
         "credentials.consumer_secret", "This field is required."),
        ({"credentials": {"consumer_key": CONSUMER_KEY, "consumer_secret": SECRET,
                          "passkey": PASSKEY, "pin": SECRET}},
         "credentials.pin", "Unknown field"),
        ({"credentials": {"consumer_key": CONSUMER_KEY, "consumer_secret": f" {SECRET} ",
                          "passkey": PASSKEY}},
         "credentials.consumer_secret", "leading or trailing spaces"),
        ({"credentials": {"consumer_key": CONSUMER_KEY, "consumer_secret": SECRET,
                          "passkey": ""}},
         "credentials.passkey", "May not be blank."),
        ({"config": {"shortcode": "17437A"}}, "config.shortcode", "Digits only."),
        ({"config": {}}, "config.shortcode", "This field is required."),
        ({"config": {"shortcode": "174379", "transaction_type": "PayBill"}},
         "config.transaction_type", "Must be one of"),
        ({"config": {"shortcode": "174379", "transaction_type": "CustomerBuyGoodsOnline"}},
         "config.till_number", "Required when transaction_type is CustomerBuyGoodsOnline."),
        ({"config": {"shortcode": "174379", "stk_timeout_seconds": 5}},
         "config.stk_timeout_seconds", "at least 30"),
        ({"config": {"shortcode": "174379", "confirm_callbacks_with_query": "yes"}},
         "config.confirm_callbacks_with_query", "true or false"),
        ({"config": {"shortcode": "174379", "ip_allowlist": ["196.201.214.200", "nope"]}},
         "config.ip_allowlist", "not an IP address"),
        ({"base_url": "http://127.0.0.1:9"}, "base_url", "Only for environment 'custom'"),
        ({"environment": "custom"}, "base_url", "Required when environment is 'custom'."),
        ({"environment": "custom", "base_url": "ftp://example.com"}, "base_url",
         "http:// or https://"),
        ({"provider": "paypal"}, "provider", "not a valid choice"),
    ],
)
def test_validation_errors_name_the_field(merchant_client: APIClient, overrides: dict[str, Any],
                                          field: str, message: str) -> None:
    fields = _errors(merchant_client.post(URL, _body(**overrides), format="json"))
    assert field in fields, fields
    assert message in " ".join(fields[field])


def test_till_account_is_valid_with_a_till_number(merchant_client: APIClient) -> None:
    data = _create(merchant_client, config={"shortcode": "600000",
                                            "transaction_type": "CustomerBuyGoodsOnline",
                                            "till_number": "5432101"})
    assert data["config"]["till_number"] == "5432101"


def test_invalid_update_changes_nothing(merchant_client: APIClient) -> None:
    data = _create(merchant_client)
    fields = _errors(merchant_client.patch(f"{URL}{data['id']}/",
                                           {"credentials": {"passkey": ""}}, format="json"))
    assert "credentials.passkey" in fields
    assert ProviderAccount.objects.get(pk=data["id"]).credentials["passkey"] == PASSKEY


# ---------------------------------------------------------------- test endpoint


def test_credentials_test_ok_against_the_simulator(
    merchant_client: APIClient, daraja_sandbox: DarajaSandbox,
) -> None:
    data = _create(merchant_client, environment="custom", base_url=daraja_sandbox.url,
                   credentials=daraja_sandbox.credentials)
    response = merchant_client.post(f"{URL}{data['id']}/test/")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert "accepted" in body["message"]
    assert body["tested_at"]
    assert daraja_sandbox.tokens_issued() == 1
    detail = merchant_client.get(f"{URL}{data['id']}/").json()
    assert detail["last_test_ok"] is True
    assert detail["last_tested_at"] == body["tested_at"]


def test_credentials_test_with_a_wrong_secret(
    merchant_client: APIClient, daraja_sandbox: DarajaSandbox,
) -> None:
    data = _create(merchant_client, environment="custom", base_url=daraja_sandbox.url,
                   credentials={**daraja_sandbox.credentials, "consumer_secret": SECRET})
    response = merchant_client.post(f"{URL}{data['id']}/test/")
    assert response.status_code == 200
    _no_secrets(response.content)
    body = response.json()
    assert body["ok"] is False
    assert "400.008.01" in body["message"]
    assert "consumer key or secret" in body["message"]
    detail = merchant_client.get(f"{URL}{data['id']}/").json()
    assert detail["last_test_ok"] is False
    assert detail["last_test_message"] == body["message"]


def test_credentials_test_when_the_provider_is_unreachable(merchant_client: APIClient) -> None:
    data = _create(merchant_client, environment="custom", base_url="http://127.0.0.1:9")
    body = merchant_client.post(f"{URL}{data['id']}/test/").json()
    assert body["ok"] is False
    assert body["message"].startswith("Could not reach M-Pesa at 127.0.0.1")


# ------------------------------------------------------------------ admin, schema


def test_admin_never_shows_secrets(merchant_client: APIClient, admin_client: Client) -> None:
    data = _create(merchant_client)
    account = ProviderAccount.objects.get(pk=data["id"])
    for url in ("/admin/providers/provideraccount/",
                f"/admin/providers/provideraccount/{account.pk}/change/"):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        _no_secrets(html)
        assert account.callback_token not in html
    assert "consumer_secret" in html  # named in "Credentials set", never valued
    assert admin_client.get("/admin/providers/provideraccount/add/").status_code == 403


def test_schema_documents_every_operation(merchant_client: APIClient) -> None:
    response = APIClient().get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    paths = schema["paths"]
    assert set(paths["/api/v1/provider-accounts/"]) >= {"get", "post"}
    assert set(paths["/api/v1/provider-accounts/{id}/"]) >= {"get", "patch", "delete"}
    test_op = paths["/api/v1/provider-accounts/{id}/test/"]["post"]
    assert "200" in test_op["responses"]
    components = schema["components"]["schemas"]
    assert "credentials" not in components["ProviderAccount"]["properties"]
    assert "credentials" in components["ProviderAccountCreateRequest"]["properties"]


def test_provider_account_str_and_callback_url_follow_settings(
    make_daraja_account: Callable[..., ProviderAccount],
) -> None:
    account = make_daraja_account()
    with override_settings(PESARAIL_BASE_URL="https://gw.example/"):
        assert account.callback_url.startswith("https://gw.example/hooks/mpesa_ke/")
    assert "mpesa_ke" in str(account)


def test_strict_query_parameters_and_booleans(merchant_client: APIClient) -> None:
    _create(merchant_client)
    assert merchant_client.get(URL, {"is_defualt": "true"}).status_code == 400  # typo
    assert merchant_client.get(URL, {"is_default": "null"}).status_code == 400
    assert len(merchant_client.get(URL, {"is_default": "true"}).json()["results"]) == 1
    assert merchant_client.get(URL, {"is_default": "false"}).json()["results"] == []
    fields = _errors(merchant_client.post(URL, _body(is_default=0), format="json"))
    assert "is_default" in fields
