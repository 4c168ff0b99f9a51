"""Who may call what. Object scoping lives in ``pesarail.api.scoping``."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from pesarail.api.auth import Principal


def principal_of(request: Request) -> Principal | None:
    user = getattr(request, "user", None)
    return user if isinstance(user, Principal) else None


class IsMerchant(BasePermission):
    """Only a merchant secret key (customers are refused with 403)."""

    message = "This endpoint needs a merchant secret key; customer tokens cannot use it."

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = principal_of(request)
        return principal is not None and principal.is_merchant


class IsMerchantOrCustomer(BasePermission):
    """A merchant key, or a customer token (then scoped to that customer's own data)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return principal_of(request) is not None
