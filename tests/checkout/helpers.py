"""Helpers shared by the checkout tests (importable, unlike conftest)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from pesarail.checkout import services
from pesarail.checkout.models import CheckoutSession
from pesarail.common.money import Money
from tests.factories import Tenant


def make_session(tenant: Tenant, amount: str = "1500", **overrides: Any) -> CheckoutSession:
    fields: dict[str, Any] = {
        "money": Money.parse(amount, "KES"),
        "reference": "ORDER-1001",
        "success_url": "https://shop.example/thanks",
        "cancel_url": "https://shop.example/cart",
        "allowed_providers": ["mpesa_ke"],
    }
    fields.update(overrides)
    session, _ = services.create_session(tenant.merchant, **fields)
    return session


def wait_for(predicate: Callable[[], Any], timeout: float = 8.0, what: str = "condition",
             lock: contextlib.AbstractContextManager[Any] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        with lock if lock is not None else contextlib.nullcontext():
            value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not met within {timeout}s"
        time.sleep(0.05)
