from __future__ import annotations

from pesarail.checkout.models import CheckoutSession
from tests.checkout.helpers import make_session
from tests.factories import Tenant
from tests.isolation import IsolationCase, register


def _session(t: Tenant) -> CheckoutSession:
    return make_session(t)


register(IsolationCase(
    name="checkout-sessions",
    make=_session,
    list_url="/api/v1/checkout-sessions/",
    detail_url="/api/v1/checkout-sessions/{id}/",
    routes=("api/v1/checkout-sessions/", "api/v1/checkout-sessions/<pk>/"),
))
