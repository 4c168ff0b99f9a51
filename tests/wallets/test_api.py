"""Wallet API: create on demand, read, pay, transfer, history (JSON and CSV)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from pesarail.api.models import IdempotencyRecord
from pesarail.ledger import services as ledger
from pesarail.ledger.models import JournalEntry, Posting
from pesarail.tenants import services as tenants
from pesarail.wallets import services
from pesarail.wallets.models import Wallet
from tests.factories import CustomerFactory, Tenant
from tests.ledger.helpers import balance, kes, settlement_account, topup

pytestmark = pytest.mark.django_db

Client = Callable[[str | None], APIClient]


def post(client: APIClient, url: str, body: dict[str, Any], key: str | None = "k1") -> Any:
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(url, body, format="json", **headers)


def funded(tenant: Tenant, amount: str = "100.00", customer: Any = None) -> Wallet:
    customer = customer or tenant.customer
    topup(customer, amount, f"fund:{customer.pk}:{amount}")
    return Wallet.objects.select_related("account").get(customer=customer, currency="KES")


# -------------------------------------------------------------------------- create


def test_create_is_idempotent_by_customer_and_currency(tenant: Tenant,
                                                       merchant_client: APIClient) -> None:
    body = {"customer": tenant.customer.pk, "currency": "kes"}
    first = post(merchant_client, "/api/v1/wallets/", body, key="w1")
    assert first.status_code == 201, first.content
    data = first.json()
    assert set(data) == {"id", "customer", "currency", "balance", "balance_minor", "available",
                         "available_minor", "held", "held_minor", "created_at"}
    assert (data["customer"], data["currency"], data["balance"], data["balance_minor"]) == (
        tenant.customer.pk, "KES", "0.00", 0)
    again = post(merchant_client, "/api/v1/wallets/", body, key="w2")
    assert again.status_code == 200 and again.json()["id"] == data["id"]
    replay = post(merchant_client, "/api/v1/wallets/", body, key="w1")
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert Wallet.objects.count() == 1


def test_customer_creates_its_own_wallet(tenant: Tenant, customer_client: APIClient) -> None:
    response = post(customer_client, "/api/v1/wallets/", {"currency": "UGX"})
    assert response.status_code == 201, response.content
    assert response.json()["customer"] == tenant.customer.pk
    other = CustomerFactory(merchant=tenant.merchant)
    response = post(customer_client, "/api/v1/wallets/",
                    {"customer": other.pk, "currency": "KES"}, key="k2")
    assert response.status_code == 403


def test_create_errors(tenant: Tenant, other_tenant: Tenant,
                       merchant_client: APIClient) -> None:
    assert post(merchant_client, "/api/v1/wallets/", {"currency": "KES"}).status_code == 400
    response = post(merchant_client, "/api/v1/wallets/",
                    {"customer": tenant.customer.pk, "currency": "XYZ"}, key="k2")
    assert response.status_code == 400 and "currency" in response.json()["error"]["fields"]
    # Another merchant's customer does not exist for this merchant.
    response = post(merchant_client, "/api/v1/wallets/",
                    {"customer": other_tenant.customer.pk, "currency": "KES"}, key="k3")
    assert response.status_code == 404
    response = post(merchant_client, "/api/v1/wallets/",
                    {"customer": tenant.customer.pk, "currency": "KES"}, key=None)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_required"
    assert not Wallet.objects.exists()


# ---------------------------------------------------------------------------- read


def test_list_and_detail(tenant: Tenant, merchant_client: APIClient,
                         customer_client: APIClient) -> None:
    wallet = funded(tenant, "1500.50")
    other, _ = services.get_or_create_wallet(CustomerFactory(merchant=tenant.merchant), "KES")
    ids = {w["id"] for w in merchant_client.get("/api/v1/wallets/").json()["results"]}
    assert ids == {wallet.pk, other.pk}
    mine = customer_client.get("/api/v1/wallets/").json()["results"]
    assert [w["id"] for w in mine] == [wallet.pk]
    filtered = merchant_client.get(f"/api/v1/wallets/?customer={tenant.customer.pk}")
    assert [w["id"] for w in filtered.json()["results"]] == [wallet.pk]
    assert merchant_client.get("/api/v1/wallets/?currency=usd").json()["results"] == []
    detail = customer_client.get(f"/api/v1/wallets/{wallet.pk}/").json()
    assert (detail["balance"], detail["balance_minor"], detail["available"]) == (
        "1500.50", 150050, "1500.50")
    assert customer_client.get(f"/api/v1/wallets/{other.pk}/").status_code == 404
    assert merchant_client.get("/api/v1/wallets/?colour=red").status_code == 400


def test_held_money_shows_as_held(tenant: Tenant, merchant_client: APIClient) -> None:
    wallet = funded(tenant, "100.00")
    ledger.hold(wallet.account, kes("40.00"), idempotency_key="h")
    data = merchant_client.get(f"/api/v1/wallets/{wallet.pk}/").json()
    assert (data["balance"], data["held"], data["available"], data["available_minor"]) == (
        "100.00", "40.00", "60.00", 6000)


# ----------------------------------------------------------------------------- pay


def test_pay_from_the_wallet(tenant: Tenant, customer_client: APIClient) -> None:
    wallet = funded(tenant, "100.00")
    response = post(customer_client, f"/api/v1/wallets/{wallet.pk}/pay/",
                    {"amount": "30.50", "description": "Coffee", "reference": "order-7"})
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["amount"], data["amount_minor"], data["currency"]) == ("30.50", 3050, "KES")
    assert (data["description"], data["reference"]) == ("Coffee", "order-7")
    assert data["wallet"]["balance"] == "69.50"
    assert data["transaction"]["direction"] == "debit"
    assert data["transaction"]["balance_after"] == "69.50"
    assert data["transaction"]["cause"] == {"type": "wallet_payment", "id": "order-7"}
    assert balance(settlement_account(tenant.merchant.pk)) == "30.50"
    # A retry with the same key replays, and moves no money.
    replay = post(customer_client, f"/api/v1/wallets/{wallet.pk}/pay/",
                  {"amount": "30.50", "description": "Coffee", "reference": "order-7"})
    assert replay.status_code == 201 and replay.json()["id"] == data["id"]
    assert balance(wallet.account) == "69.50"
    # The same key with another body is a 409.
    conflict = post(customer_client, f"/api/v1/wallets/{wallet.pk}/pay/", {"amount": "1.00"})
    assert conflict.status_code == 409


def test_pay_insufficient_funds_is_422_and_posts_nothing(tenant: Tenant,
                                                         merchant_client: APIClient) -> None:
    wallet = funded(tenant, "10.00")
    entries = JournalEntry.objects.count()
    response = post(merchant_client, f"/api/v1/wallets/{wallet.pk}/pay/", {"amount": "10.01"})
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("unprocessable", "insufficient_funds")
    assert JournalEntry.objects.count() == entries
    assert balance(wallet.account) == "10.00"
    # The refusal is the answer for that key.
    again = post(merchant_client, f"/api/v1/wallets/{wallet.pk}/pay/", {"amount": "10.01"})
    assert again.status_code == 422 and again["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("amount", ["0", "-1.00", "1.001", "abc", "", "1e3"])
def test_pay_rejects_bad_amounts(tenant: Tenant, merchant_client: APIClient,
                                 amount: str) -> None:
    wallet = funded(tenant)
    response = post(merchant_client, f"/api/v1/wallets/{wallet.pk}/pay/", {"amount": amount})
    assert response.status_code == 400, response.content
    assert "amount" in response.json()["error"]["fields"]


def test_pay_rejects_a_number_instead_of_a_string(tenant: Tenant,
                                                  merchant_client: APIClient) -> None:
    wallet = funded(tenant)
    response = post(merchant_client, f"/api/v1/wallets/{wallet.pk}/pay/", {"amount": 10.5})
    assert response.status_code == 400


def test_ledger_key_survives_a_lost_idempotency_record(tenant: Tenant,
                                                       merchant_client: APIClient) -> None:
    """If the API record is gone (e.g. the process died after the commit), a retry with
    the same Idempotency-Key still lands on the same ledger entry."""
    wallet = funded(tenant, "100.00")
    url = f"/api/v1/wallets/{wallet.pk}/pay/"
    first = post(merchant_client, url, {"amount": "5.00"}, key="crash")
    IdempotencyRecord.objects.all().delete()
    second = post(merchant_client, url, {"amount": "5.00"}, key="crash")
    assert second.status_code == 201 and second.json()["id"] == first.json()["id"]
    assert balance(wallet.account) == "95.00"


# ------------------------------------------------------------------------ transfer


def test_transfer_between_customers(tenant: Tenant, client_for: Client) -> None:
    source = funded(tenant, "100.00")
    friend = CustomerFactory(merchant=tenant.merchant)
    target, _ = services.get_or_create_wallet(friend, "KES")
    client = client_for(tenant.customer_token)  # a customer may pay another customer
    response = post(client, "/api/v1/transfers/",
                    {"from_wallet": source.pk, "to_wallet": target.pk, "amount": "40.00",
                     "currency": "KES", "description": "Rent share"})
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["from_wallet"], data["to_wallet"], data["amount"]) == (
        source.pk, target.pk, "40.00")
    assert data["transaction"]["direction"] == "debit"
    assert data["transaction"]["balance_after"] == "60.00"
    assert balance(source.account) == "60.00" and balance(target.account) == "40.00"
    # The friend cannot move money out of the sender's wallet.
    friend_client = client_for(tenants.issue_customer_token(friend))
    response = post(friend_client, "/api/v1/transfers/",
                    {"from_wallet": source.pk, "to_wallet": target.pk, "amount": "1.00"})
    assert response.status_code == 404


def test_transfer_errors(tenant: Tenant, other_tenant: Tenant,
                         merchant_client: APIClient) -> None:
    source = funded(tenant, "100.00")
    usd, _ = services.get_or_create_wallet(CustomerFactory(merchant=tenant.merchant), "USD")
    foreign = funded(other_tenant, "5.00")
    url = "/api/v1/transfers/"

    def send(body: dict[str, Any], key: str) -> Any:
        return post(merchant_client, url, {"from_wallet": source.pk, **body}, key=key)

    response = send({"to_wallet": foreign.pk, "amount": "1.00"}, "e1")
    assert response.status_code == 404  # another merchant's wallet does not exist here
    assert response.json()["error"]["fields"] == {"to_wallet": ["No such wallet."]}
    response = send({"to_wallet": usd.pk, "amount": "1.00"}, "e2")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "currency_mismatch"
    response = send({"to_wallet": source.pk, "amount": "1.00"}, "e3")
    assert response.status_code == 400
    response = send({"to_wallet": usd.pk, "amount": "1.00", "currency": "USD"}, "e4")
    assert response.status_code == 400 and "currency" in response.json()["error"]["fields"]
    target, _ = services.get_or_create_wallet(CustomerFactory(merchant=tenant.merchant), "KES")
    response = send({"to_wallet": target.pk, "amount": "100.01"}, "e5")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "insufficient_funds"
    assert balance(source.account) == "100.00"


# --------------------------------------------------------------------- transactions


def _history(tenant: Tenant) -> Wallet:
    wallet = funded(tenant, "100.00")
    ledger.pay_merchant(source=wallet.account, money=kes("25.00"), idempotency_key="p1",
                        memo="=HYPERLINK(\"x\")", cause_id="order-1")
    friend, _ = services.get_or_create_wallet(CustomerFactory(merchant=tenant.merchant), "KES")
    ledger.transfer(source=wallet.account, destination=friend.account, money=kes("5.00"),
                    idempotency_key="t1", memo="Lunch", cause_type="wallet_transfer")
    return wallet


def test_transactions(tenant: Tenant, customer_client: APIClient) -> None:
    wallet = _history(tenant)
    response = customer_client.get(f"/api/v1/wallets/{wallet.pk}/transactions/")
    assert response.status_code == 200, response.content
    rows = response.json()["results"]
    assert [(r["direction"], r["amount"], r["balance_after"]) for r in rows] == [
        ("debit", "5.00", "70.00"), ("debit", "25.00", "75.00"), ("credit", "100.00", "100.00")]
    assert set(rows[0]) == {"id", "direction", "amount", "amount_minor", "currency",
                            "balance_after", "balance_after_minor", "cause", "memo", "entry",
                            "created_at"}
    assert rows[1]["cause"] == {"type": "wallet_payment", "id": "order-1"}
    assert rows[2]["cause"]["type"] == "payment"
    assert rows[0]["memo"] == "Lunch"

    def ids(query: str) -> list[str]:
        got = customer_client.get(f"/api/v1/wallets/{wallet.pk}/transactions/?{query}")
        assert got.status_code == 200, got.content
        return [r["amount"] for r in got.json()["results"]]

    assert ids("direction=credit") == ["100.00"]
    assert ids("direction=debit") == ["5.00", "25.00"]
    assert ids("cause_type=wallet_payment") == ["25.00"]
    later = (timezone.now() + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"created_after={later}") == []
    assert ids(f"created_before={later}") == ["5.00", "25.00", "100.00"]
    page = customer_client.get(f"/api/v1/wallets/{wallet.pk}/transactions/?limit=2").json()
    assert len(page["results"]) == 2 and page["next"]
    rest = customer_client.get(page["next"]).json()
    assert [r["amount"] for r in rest["results"]] == ["100.00"]
    bad = customer_client.get(f"/api/v1/wallets/{wallet.pk}/transactions/?direction=up")
    assert bad.status_code == 400
    bad = customer_client.get(f"/api/v1/wallets/{wallet.pk}/transactions/?created_after=x")
    assert bad.status_code == 400
    bad = customer_client.get(f"/api/v1/wallets/{wallet.pk}/transactions/?kind=debit")
    assert bad.status_code == 400


def test_transactions_csv_streams(tenant: Tenant, merchant_client: APIClient) -> None:
    wallet = _history(tenant)
    response = merchant_client.get(f"/api/v1/wallets/{wallet.pk}/transactions/?format=csv")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert wallet.pk in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["id", "created_at", "direction", "amount", "currency", "balance_after",
                       "cause_type", "cause_id", "memo", "entry"]
    assert [(r[2], r[3], r[5]) for r in rows[1:]] == [
        ("debit", "5.00", "70.00"), ("debit", "25.00", "75.00"), ("credit", "100.00", "100.00")]
    assert rows[2][8] == "'=HYPERLINK(\"x\")"  # a formula is neutralised
    assert rows[1][0] in set(Posting.objects.values_list("id", flat=True))
    # Filters apply; Accept: text/csv works too.
    response = merchant_client.get(
        f"/api/v1/wallets/{wallet.pk}/transactions/?format=csv&direction=credit")
    body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    lines = body.decode().strip().splitlines()
    assert len(lines) == 2
    response = merchant_client.get(f"/api/v1/wallets/{wallet.pk}/transactions/",
                                   HTTP_ACCEPT="text/csv")
    assert response.streaming and response["Content-Type"].startswith("text/csv")


def test_csv_errors_are_json(tenant: Tenant, other_tenant: Tenant,
                             client_for: Client) -> None:
    wallet = _history(tenant)
    intruder = client_for(other_tenant.api_key)
    response = intruder.get(f"/api/v1/wallets/{wallet.pk}/transactions/?format=csv")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["type"] == "not_found"
    owner = client_for(tenant.api_key)
    response = owner.get(f"/api/v1/wallets/{wallet.pk}/transactions/?format=csv&limit=5")
    assert response.status_code == 400 and "limit" in response.json()["error"]["fields"]
    response = owner.get(f"/api/v1/wallets/{wallet.pk}/transactions/?format=xml")
    assert response.status_code == 404


# -------------------------------------------------------------------------- schema


def test_schema_documents_wallet_operations(merchant_client: APIClient) -> None:
    schema = merchant_client.get("/api/v1/schema/?format=json").json()
    paths = schema["paths"]
    history = paths["/api/v1/wallets/{id}/transactions/"]["get"]
    assert set(history["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    names = {p["name"] for p in history["parameters"]}
    assert {"direction", "created_after", "created_before", "cause_type", "format",
            "cursor", "limit"} <= names
    create = paths["/api/v1/wallets/"]["post"]
    assert {"200", "201"} <= set(create["responses"])
    for path, method in [("/api/v1/wallets/", "post"), ("/api/v1/wallets/{id}/pay/", "post"),
                         ("/api/v1/transfers/", "post")]:
        operation = paths[path][method]
        assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"])
        assert "201" in operation["responses"] and "422" in operation["responses"]
