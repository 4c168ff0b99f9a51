"""Tenant isolation in one place.

Every API view that reads or writes tenant data derives its queryset from
:meth:`ScopedQuerysetMixin.get_queryset`, which filters by the authenticated merchant and,
for a customer token, by that customer. Views declare ``customer_lookup`` (the ORM path
from the model to its customer) to let customers in at all; without it customers see
nothing. The shared isolation test walks every route to prove it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import Model, QuerySet
from rest_framework.exceptions import NotAuthenticated

from pesarail.api.auth import Principal
from pesarail.api.permissions import principal_of


class ScopedQuerysetMixin:
    queryset: QuerySet[Any] | None = None
    merchant_lookup: ClassVar[str] = "merchant"
    customer_lookup: ClassVar[str | None] = None
    request: Any

    @property
    def principal(self) -> Principal:
        principal = principal_of(self.request)
        if principal is None:
            raise NotAuthenticated()
        return principal

    def get_queryset(self) -> QuerySet[Any]:
        assert self.queryset is not None, f"{type(self).__name__} needs a queryset"
        return scope_queryset(self.queryset.all(), self.principal,
                              merchant_lookup=self.merchant_lookup,
                              customer_lookup=self.customer_lookup)


def scope_queryset(
    queryset: QuerySet[Any],
    principal: Principal,
    *,
    merchant_lookup: str = "merchant",
    customer_lookup: str | None = None,
) -> QuerySet[Any]:
    # Compare by primary key: a model instance compared with a string pk would be str()-ed.
    queryset = queryset.filter(**{merchant_lookup: principal.merchant.pk})
    if principal.is_customer:
        if customer_lookup is None:
            return queryset.none()
        assert principal.customer is not None
        queryset = queryset.filter(**{customer_lookup: principal.customer.pk})
    return queryset


def owned_by(obj: Model, principal: Principal, merchant_attr: str = "merchant_id") -> bool:
    return getattr(obj, merchant_attr) == principal.merchant.pk
