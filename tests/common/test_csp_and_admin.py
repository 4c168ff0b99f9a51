"""Content Security Policy and the admin pages."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from pesarail.tenants.models import User
from tests.factories import Tenant

pytestmark = pytest.mark.django_db


def test_strict_csp_everywhere_but_admin() -> None:
    policy = Client().get("/healthz")["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy


def test_swagger_page_scripts_carry_the_nonce() -> None:
    response = Client().get("/api/v1/docs/")
    assert response.status_code == 200
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"])
    assert nonce is not None
    html = response.content.decode()
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts and all(f'nonce="{nonce.group(1)}"' in tag for tag in scripts)
    assert "cdn" not in html.lower() and "https://" not in html


def test_admin_gets_its_own_policy_and_shows_no_secrets(tenant: Tenant) -> None:
    User.objects.create_superuser("op", "op@example.test", "op-password-123")
    client = Client()
    assert client.login(username="op", password="op-password-123")
    response = client.get(f"/admin/tenants/merchant/{tenant.merchant.pk}/change/")
    assert response.status_code == 200
    assert "unsafe-eval" in response["Content-Security-Policy"]
    html = response.content.decode()
    assert tenant.merchant.name in html
    assert tenant.api_key[:14] in html  # the display prefix is shown ...
    assert tenant.api_key not in html  # ... never the key
    for url in ("/admin/tenants/apikey/", "/admin/tenants/customer/",
                f"/admin/tenants/customer/{tenant.customer.pk}/change/"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert tenant.api_key not in page.content.decode()
        assert tenant.customer.password not in page.content.decode()
