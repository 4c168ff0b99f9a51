"""Every payments route joins the shared tenant-isolation test (tests/isolation.py).

Objects are made directly (no provider call); an intruder's request must be refused
before any provider would be asked.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from pesarail.payments.models import IntentStatus, PaymentIntent
from pesarail.providers.models import ProviderAccount
from pesarail.providers.services import create_account
from pesarail.wallets import services as wallets
from pesarail.wallets.models import Wallet
from tests.factories import Tenant
from tests.isolation import Action, IsolationCase, register


def _account(t: Tenant) -> ProviderAccount:
    return create_account(
        t.merchant, provider="mpesa_ke", name="Isolated till", environment="custom",
        base_url="http://127.0.0.1:9",  # closed port: nothing can be reached through it
        config={"shortcode": "174379"},
        credentials={"consumer_key": "iso-consumer-key", "consumer_secret": "iso-secret",
                     "passkey": "iso-passkey"},
    )


def _intent(t: Tenant) -> PaymentIntent:
    return PaymentIntent.objects.create(
        merchant=t.merchant, provider="mpesa_ke", provider_account=_account(t),
        customer=t.customer, amount_minor=1000, currency="KES", phone="+254708374149",
        reference="ISO-1", status=IntentStatus.FAILED, failure_code="1",
        expires_at=timezone.now() + timedelta(minutes=2), idempotency_key=f"iso:{t.merchant.pk}",
    )


def _wallet(t: Tenant) -> Wallet:
    _account(t)
    wallet, _ = wallets.get_or_create_wallet(t.customer, "KES")
    return wallet


register(IsolationCase(
    name="payments",
    make=_intent,
    list_url="/api/v1/payments/",
    detail_url="/api/v1/payments/{id}/",
    actions=(
        Action("POST", "/api/v1/payments/{id}/refresh/"),
        Action("POST", "/api/v1/payments/{id}/cancel/"),
        Action("POST", "/api/v1/payments/{id}/retry/"),
    ),
    customer_owned=True,
    routes=("api/v1/payments/", "api/v1/payments/<pk>/", "api/v1/payments/<pk>/refresh/",
            "api/v1/payments/<pk>/cancel/", "api/v1/payments/<pk>/retry/"),
))
register(IsolationCase(
    name="wallet-top-up",
    make=_wallet,
    list_url=None,
    detail_url=None,
    actions=(Action("POST", "/api/v1/wallets/{id}/top-up/",
                    {"amount": "10.00", "provider": "mpesa_ke",
                     "phone_number": "+254708374149"}),),
    routes=("api/v1/wallets/<pk>/top-up/",),
))
