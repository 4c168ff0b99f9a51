"""``create_demo_checkout_session``: what ``make demo`` prints as ``checkout_url``."""

from __future__ import annotations

from typing import Any

import pytest

from pesarail.checkout import services
from pesarail.checkout.models import SessionStatus
from pesarail.providers.models import ProviderAccount
from tests.factories import Tenant

pytestmark = pytest.mark.django_db


def test_demo_session_is_ready_to_pay(tenant: Tenant, settings: Any) -> None:
    settings.PESARAIL_BASE_URL = "http://127.0.0.1:8000"
    session = services.create_demo_checkout_session(tenant.merchant)
    assert session.status == SessionStatus.OPEN
    assert session.money.format() == "KES 1,500.00"
    assert session.allowed_providers == ["mpesa_ke"]
    assert services.checkout_url(session) == f"http://127.0.0.1:8000/pay/{session.pk}/"
    assert (session.expires_at - session.created_at).total_seconds() == pytest.approx(3600, 1)
    account = ProviderAccount.objects.get(merchant=tenant.merchant, provider="mpesa_ke")
    assert account.environment == "sandbox" and account.is_default and account.is_active
    assert [m.available for m in services.available_methods(session)] == [True]

    again = services.create_demo_checkout_session(tenant.merchant)  # a run later
    assert again.pk != session.pk and again.reference != session.reference
    assert ProviderAccount.objects.filter(merchant=tenant.merchant).count() == 1


def test_demo_keeps_an_existing_account(tenant: Tenant, daraja_account: Any) -> None:
    services.create_demo_checkout_session(tenant.merchant)
    assert list(ProviderAccount.objects.filter(merchant=tenant.merchant)) == [daraja_account]
