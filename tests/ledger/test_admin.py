"""The ledger admin is read-only: operators can look, nobody can add, edit or delete."""

from __future__ import annotations

import pytest
from django.test import Client

from pesarail.ledger import services as ledger
from pesarail.ledger.models import Account, Hold, JournalEntry
from pesarail.tenants.models import User
from tests.factories import Tenant
from tests.ledger.helpers import kes, topup, wallet_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator() -> Client:
    user = User.objects.create_superuser("operator", "op@example.test", "not-a-secret-pw")
    client = Client()
    client.force_login(user)
    return client


def test_admin_shows_but_never_changes(operator: Client, tenant: Tenant) -> None:
    entry = topup(tenant.customer, "100.00", "k")
    wallet = wallet_account(tenant.customer)
    held = ledger.hold(wallet, kes("1.00"), idempotency_key="h")
    for model, obj in ((Account, wallet), (JournalEntry, entry), (Hold, held)):
        base = f"/admin/ledger/{model._meta.model_name}/"
        listing = operator.get(base)
        assert listing.status_code == 200
        assert obj.pk in listing.content.decode()
        detail = operator.get(f"{base}{obj.pk}/change/")
        assert detail.status_code == 200
        assert operator.get(f"{base}add/").status_code == 403
        assert operator.get(f"{base}{obj.pk}/delete/").status_code == 403
        assert operator.post(f"{base}{obj.pk}/change/", {}).status_code == 403
    wallet.refresh_from_db()
    assert wallet.balance == 10000
