"""``/api/v1/checkout-sessions/``: create (idempotent), list and read checkout sessions.

The customer pays on the hosted page (``url`` in every answer); see
:mod:`pesarail.checkout.web`.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from pesarail.api.idempotency import HEADER, run_idempotent
from pesarail.api.permissions import IsMerchant
from pesarail.api.scoping import ScopedQuerysetMixin, scope_queryset
from pesarail.api.views import StrictQueryParamsMixin
from pesarail.checkout import services
from pesarail.checkout.models import CheckoutSession, SessionStatus
from pesarail.checkout.serializers import (
    CheckoutSessionCreateSerializer,
    CheckoutSessionSerializer,
)
from pesarail.common.errors import NotFound, ValidationFailed
from pesarail.common.money import Money, MoneyError
from pesarail.payments.services import idempotency_backstop
from pesarail.tenants.models import Customer


class CheckoutSessionFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=SessionStatus.choices)
    reference = filters.CharFilter()
    customer = filters.CharFilter(field_name="customer_id")

    class Meta:
        model = CheckoutSession
        fields = ["status", "reference", "customer"]


class CheckoutSessionViewSet(StrictQueryParamsMixin, ScopedQuerysetMixin,
                             mixins.ListModelMixin, mixins.RetrieveModelMixin,
                             viewsets.GenericViewSet[CheckoutSession]):
    """Checkout sessions of the authenticated merchant (merchant secret key only)."""

    queryset = CheckoutSession.objects.select_related("payment")
    serializer_class = CheckoutSessionSerializer
    permission_classes = [IsMerchant]
    filterset_class = CheckoutSessionFilter
    idempotent_actions = ("create",)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.expire_due(self.principal.merchant)
        return super().list(request, *args, **kwargs)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        session = services.sync(self.get_object())
        return Response(CheckoutSessionSerializer(session).data)

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.action != "list":
            return queryset
        return super().filter_queryset(queryset)

    @extend_schema(
        request=CheckoutSessionCreateSerializer,
        responses={201: CheckoutSessionSerializer,
                   200: OpenApiResponse(CheckoutSessionSerializer,
                                        description="A session created earlier with the same "
                                                    "Idempotency-Key (backstop).")},
        description="Create a checkout session and send the customer to its `url`. "
                    "Needs an `Idempotency-Key`.",
    )
    def create(self, request: Request) -> Response:
        principal = self.principal

        def handler() -> Response:
            incoming = CheckoutSessionCreateSerializer(data=request.data)
            incoming.is_valid(raise_exception=True)
            data = incoming.validated_data
            merchant = principal.merchant
            currency = data.get("currency") or merchant.default_currency
            try:
                money = Money.parse(data["amount"], currency)
            except MoneyError as exc:
                field = "currency" if "currency" in str(exc) else "amount"
                raise ValidationFailed(f"Invalid {field}: {exc}",
                                       fields={field: [str(exc)]}) from exc
            customer = None
            if data.get("customer"):
                customer = scope_queryset(Customer.objects.all(), principal,
                                          customer_lookup="pk").filter(
                    pk=data["customer"]).first()
                if customer is None:
                    raise NotFound(f"No such customer: {data['customer']}",
                                   fields={"customer": ["No such customer."]})
            session, created = services.create_session(
                merchant, money=money, reference=data["reference"],
                description=data.get("description", ""),
                allowed_providers=data.get("allowed_providers"),
                success_url=data["success_url"], cancel_url=data["cancel_url"],
                customer=customer, expires_in=data["expires_in"],
                idempotency_key=idempotency_backstop(
                    "checkout_session", merchant.pk, request.headers.get(HEADER, "")),
            )
            return Response(CheckoutSessionSerializer(session).data,
                            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

        return run_idempotent(request, principal, handler)
