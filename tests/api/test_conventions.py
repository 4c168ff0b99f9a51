"""API conventions: one error shape, request ids, throttling, pagination, health, metrics."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from pesarail.api.throttling import PrincipalRateThrottle
from tests.factories import CustomerFactory, Tenant

pytestmark = pytest.mark.django_db

ERROR_KEYS = {"type", "code", "message", "fields", "request_id"}


def assert_error(response: object, status: int, type_: str) -> dict[str, object]:
    assert response.status_code == status, response.content  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == ERROR_KEYS
    assert error["type"] == type_
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"] == response["X-Request-ID"]  # type: ignore[index]
    return error


def test_400_shape(merchant_client: APIClient) -> None:
    error = assert_error(merchant_client.post("/api/v1/customers/", {}, format="json"), 400,
                         "invalid_request_error")
    assert error["fields"] == {"username": ["This field is required."]}
    assert error["code"] == "validation_error"


def test_400_malformed_json(merchant_client: APIClient) -> None:
    response = merchant_client.generic("POST", "/api/v1/customers/", "{not json",
                                       content_type="application/json")
    assert_error(response, 400, "invalid_request_error")


def test_401_shape_missing_and_malformed(client_for: Callable[[str | None], APIClient]) -> None:
    error = assert_error(client_for(None).get("/api/v1/merchants/me/"), 401,
                         "authentication_error")
    assert error["code"] == "not_authenticated"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic abc def")
    error = assert_error(client.get("/api/v1/merchants/me/"), 401, "authentication_error")
    assert error["code"] == "malformed_authorization"


def test_403_shape(customer_client: APIClient) -> None:
    assert_error(customer_client.get("/api/v1/api-keys/"), 403, "permission_error")


def test_404_shape(merchant_client: APIClient) -> None:
    assert_error(merchant_client.get("/api/v1/customers/cus_nope/"), 404, "not_found")
    assert_error(merchant_client.get("/api/v1/no-such-endpoint/"), 404, "not_found")


def test_405_shape(merchant_client: APIClient) -> None:
    error = assert_error(merchant_client.delete("/api/v1/merchants/me/"), 405,
                         "method_not_allowed")
    assert error["code"] == "method_not_allowed"


def test_415_shape(merchant_client: APIClient) -> None:
    response = merchant_client.generic("POST", "/api/v1/customers/", "username=x",
                                       content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type")


def test_429_shape_per_key(tenant: Tenant, other_tenant: Tenant,
                           client_for: Callable[[str | None], APIClient],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    cache.clear()
    monkeypatch.setattr(PrincipalRateThrottle, "THROTTLE_RATES", {"principal": "3/min"})
    client = client_for(tenant.api_key)
    for _ in range(3):
        assert client.get("/api/v1/merchants/me/").status_code == 200
    response = client.get("/api/v1/merchants/me/")
    error = assert_error(response, 429, "rate_limit_error")
    assert error["code"] == "rate_limited"
    assert int(response["Retry-After"]) > 0
    # The limit is per key: another merchant is unaffected.
    assert client_for(other_tenant.api_key).get("/api/v1/merchants/me/").status_code == 200
    cache.clear()


def test_request_id_generated_or_kept(merchant_client: APIClient) -> None:
    generated = merchant_client.get("/api/v1/merchants/me/")["X-Request-ID"]
    assert generated.startswith("req_")
    kept = merchant_client.get("/api/v1/merchants/me/", HTTP_X_REQUEST_ID="client-abc-123")
    assert kept["X-Request-ID"] == "client-abc-123"
    junk = merchant_client.get("/api/v1/merchants/me/", HTTP_X_REQUEST_ID="bad id\n<script>")
    assert junk["X-Request-ID"].startswith("req_")


def test_cursor_pagination(tenant: Tenant, merchant_client: APIClient) -> None:
    for _ in range(5):
        CustomerFactory(merchant=tenant.merchant)
    first = merchant_client.get("/api/v1/customers/?limit=4").json()
    assert len(first["results"]) == 4
    assert first["next"] and "cursor=" in first["next"]
    second = merchant_client.get(first["next"]).json()
    assert len(second["results"]) == 2
    ids = [c["id"] for c in first["results"] + second["results"]]
    assert len(set(ids)) == 6
    assert ids == sorted(ids, reverse=True)  # newest first, by time-ordered id


def test_healthz_ok() -> None:
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok"}}


def test_healthz_reports_unapplied_migrations(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db.migrations.executor import MigrationExecutor

    monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets: [1, 2])
    response = APIClient().get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "2 unapplied"


def test_metrics_counts_by_route_and_status(merchant_client: APIClient) -> None:
    def count(route: str, status: str) -> float:
        text = APIClient().get("/metrics").content.decode()
        prefix = ('pesarail_http_requests_total{method="GET",route="' + route
                  + '",status="' + status + '"} ')
        for line in text.splitlines():
            if line.startswith(prefix):
                return float(line[len(prefix):])
        return 0.0

    before = count("/api/v1/customers/<pk>/", "404")
    merchant_client.get("/api/v1/customers/cus_a/")
    merchant_client.get("/api/v1/customers/cus_b/")
    assert count("/api/v1/customers/<pk>/", "404") == before + 2
    response = APIClient().get("/metrics")
    assert response["Content-Type"].startswith("text/plain")
    assert "pesarail_http_request_duration_seconds_bucket" in response.content.decode()


def test_unknown_and_empty_query_params_are_refused(merchant_client: APIClient) -> None:
    typo = assert_error(merchant_client.get("/api/v1/customers/?usernam=amina"), 400,
                        "invalid_request_error")
    assert typo["fields"] == {"usernam": ["Unknown query parameter."]}
    empty = assert_error(merchant_client.get("/api/v1/customers/?username="), 400,
                         "invalid_request_error")
    assert list(empty["fields"]) == ["username"]
    assert_error(merchant_client.get("/api/v1/customers/?cursor="), 400, "invalid_request_error")
    assert_error(merchant_client.get("/api/v1/customers/?limit=0"), 400, "invalid_request_error")
    assert_error(merchant_client.get("/api/v1/customers/?limit=abc"), 400,
                 "invalid_request_error")
    assert merchant_client.get("/api/v1/customers/?limit=200").status_code == 200
