"""The shared tenant-isolation test: every API route joins it.

Each case says how to make an object that belongs to tenant A (and, optionally, to A's
customer), and which URLs reach it. ``tests/api/test_isolation.py`` then proves, for
every case, that tenant B's key and A's *other* customer cannot see or touch it, and a
meta-test fails when a route under ``/api/v1/`` is neither covered by a case nor listed
in ``EXEMPT_ROUTES`` with a reason. A new endpoint therefore joins by adding a case.

Register cases from any test module imported by ``tests/api/test_isolation.py`` (add the
module to ``CASE_MODULES`` there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.factories import Tenant


@dataclass(frozen=True)
class Action:
    method: str
    url: str  # may contain "{id}"
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IsolationCase:
    name: str
    make: Callable[[Tenant], Any]  # creates the object for tenant A; returns it (needs .pk)
    list_url: str | None
    detail_url: str | None  # with "{id}"
    actions: tuple[Action, ...] = ()
    customer_owned: bool = False  # True when A's customer may see it with its token
    routes: tuple[str, ...] = ()  # route patterns this case covers (for the meta-test)


CASES: list[IsolationCase] = []

# Routes that hold no tenant object, with the reason.
EXEMPT_ROUTES: dict[str, str] = {
    "api/v1/schema/": "public OpenAPI document",
    "api/v1/docs/": "public Swagger UI",
    "api/v1/auth/token/": "login; proven by test_auth (wrong merchant/username cannot log in)",
    "api/v1/auth/token/revoke/": "acts only on the caller's own token",
    "api/v1/merchants/me/": "returns the caller's own merchant; asserted in test_tenants",
}


def register(case: IsolationCase) -> IsolationCase:
    CASES.append(case)
    return case
