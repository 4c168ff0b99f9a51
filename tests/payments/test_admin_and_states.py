"""The state table, the append-only timeline, and the read-only admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from pesarail.payments import states
from pesarail.payments.callbacks import Inbound, handle
from pesarail.payments.models import (
    CallbackRecord,
    IntentStatus,
    PaymentAttempt,
    PaymentEvent,
    PaymentIntent,
)
from pesarail.providers.services import create_account
from pesarail.tenants.models import User
from tests.factories import Tenant

pytestmark = pytest.mark.django_db
S = IntentStatus


def _intent(t: Tenant, status: str = S.PROCESSING) -> PaymentIntent:
    account = create_account(
        t.merchant, provider="mpesa_ke", name="Till", environment="custom",
        base_url="http://127.0.0.1:9", config={"shortcode": "174379"},
        credentials={"consumer_key": "k-offline", "consumer_secret": "s", "passkey": "p"})
    return PaymentIntent.objects.create(
        merchant=t.merchant, provider="mpesa_ke", provider_account=account,
        amount_minor=1000, currency="KES", phone="+254708374149", status=status,
        expires_at=timezone.now() + timedelta(minutes=2), idempotency_key=f"k-{status}")


def test_terminal_statuses_never_move_except_by_late_success() -> None:
    assert states.ALLOWED[S.SUCCEEDED] == frozenset()
    assert states.ALLOWED[S.EXPIRED] == frozenset({S.SUCCEEDED})
    for status in S.values:
        assert status in states.ALLOWED
        assert S.PENDING not in states.ALLOWED[status]  # nothing goes back to pending


def test_transition_is_conditional_and_appends_one_event(tenant: Tenant) -> None:
    intent = _intent(tenant)
    stale = PaymentIntent.objects.get(pk=intent.pk)
    with transaction.atomic():
        assert states.transition(intent, S.FAILED, kind="payment_failed", failure_code="1")
    with transaction.atomic():  # a second writer holding the old status loses
        assert not states.transition(stale, S.CANCELLED, kind="cancelled")
    intent.refresh_from_db()
    assert (intent.status, intent.failure_code) == (S.FAILED, "1")
    events = list(PaymentEvent.objects.filter(intent=intent))
    assert [(e.from_status, e.to_status, e.kind) for e in events] == [
        (S.PROCESSING, S.FAILED, "payment_failed")]


def test_forbidden_and_unflagged_late_transitions_raise(tenant: Tenant) -> None:
    intent = _intent(tenant, S.SUCCEEDED)
    with transaction.atomic(), pytest.raises(states.InvalidTransition):
        states.transition(intent, S.FAILED, kind="x")
    expired = _intent(tenant, S.EXPIRED)
    with transaction.atomic(), pytest.raises(states.InvalidTransition):
        states.transition(expired, S.SUCCEEDED, kind="succeeded")  # must be late=True
    with transaction.atomic():
        assert states.transition(expired, S.SUCCEEDED, kind="late_success", late=True)
    assert PaymentEvent.objects.get(intent=expired).data == {"late": True}


def test_events_are_append_only(tenant: Tenant) -> None:
    intent = _intent(tenant)
    event = states.append_event(intent, "note", message="hello")
    event.message = "changed"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()


def test_admin_is_read_only_and_hides_secrets(tenant: Tenant) -> None:
    intent = _intent(tenant)
    PaymentAttempt.objects.create(intent=intent, number=1, provider="mpesa_ke",
                                  provider_account=intent.provider_account,
                                  phone=intent.phone, checkout_request_id="ws_CO_1")
    states.append_event(intent, "created", to_status=S.PENDING, message="created")
    token = intent.provider_account.callback_token
    handle(Inbound(provider="mpesa_ke", token=token, method="POST",
                   headers={"Content-Type": "application/json", "Cookie": "sessionid=abc"},
                   body=b'{"Body": {}}', source_ip="127.0.0.1"))
    record = CallbackRecord.objects.get()
    assert "Cookie" not in record.headers
    user = User.objects.create_superuser("operator", "op@example.test", "not-a-secret-pw")
    client = Client()
    client.force_login(user)
    for base, obj_id in (("/admin/payments/paymentintent/", intent.pk),
                         ("/admin/payments/callbackrecord/", record.pk)):
        listing = client.get(base)
        assert listing.status_code == 200
        assert obj_id in listing.content.decode()
        detail = client.get(f"{base}{obj_id}/change/")
        assert detail.status_code == 200
        page = detail.content.decode()
        assert token not in page
        assert "+254708374149" not in page  # phones are masked
        assert client.get(f"{base}add/").status_code == 403
        assert client.get(f"{base}{obj_id}/delete/").status_code == 403
        assert client.post(f"{base}{obj_id}/change/", {}).status_code == 403
