"""Wallet endpoints. A merchant key acts on its customers' wallets; a customer token on
the customer's own. Every money-moving POST runs under ``Idempotency-Key``."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponseBase, StreamingHttpResponse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pesarail.api.auth import Principal
from pesarail.api.idempotency import HEADER, run_idempotent
from pesarail.api.pagination import CursorPagination
from pesarail.api.permissions import IsMerchantOrCustomer
from pesarail.api.scoping import ScopedQuerysetMixin, scope_queryset
from pesarail.api.views import StrictQueryParamsMixin
from pesarail.common.errors import NotFound, ValidationFailed
from pesarail.common.money import MoneyError, parse_currency
from pesarail.ledger import selectors
from pesarail.ledger.models import JournalEntry, Posting
from pesarail.tenants.models import Customer
from pesarail.wallets import csv_export, services
from pesarail.wallets.models import Wallet
from pesarail.wallets.serializers import (
    PaymentSerializer,
    PaySerializer,
    TransactionSerializer,
    TransferCreateSerializer,
    TransferSerializer,
    WalletCreateSerializer,
    WalletSerializer,
)


def _scope(principal: Principal) -> str:
    return principal.customer.pk if principal.customer else principal.merchant.pk


def _find_wallet(queryset: QuerySet[Wallet], pk: str, field: str | None = None) -> Wallet:
    wallet = queryset.filter(pk=pk).first()
    if wallet is None:
        raise NotFound(f"No such wallet: {pk}" if field is None else
                       f"No such wallet for {field}: {pk}",
                       fields={field: ["No such wallet."]} if field else None)
    return wallet


def _posting_on(entry: JournalEntry, wallet: Wallet) -> Posting:
    return Posting.objects.select_related("entry").get(entry=entry, account_id=wallet.account_id)


class WalletFilter(filters.FilterSet):
    customer = filters.CharFilter(field_name="customer_id")
    currency = filters.CharFilter(method="filter_currency")

    class Meta:
        model = Wallet
        fields = ["customer", "currency"]

    def filter_currency(self, queryset: QuerySet[Wallet], name: str, value: str
                        ) -> QuerySet[Wallet]:
        return queryset.filter(currency=value.upper())


class TransactionFilter(filters.FilterSet):
    direction = filters.ChoiceFilter(choices=[("credit", "credit"), ("debit", "debit")],
                                     method="filter_direction")
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte",
                                              help_text="Inclusive (ISO 8601).")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt",
                                               help_text="Exclusive (ISO 8601).")
    cause_type = filters.CharFilter(field_name="entry__cause_type")

    class Meta:
        model = Posting
        fields = ["direction", "created_after", "created_before", "cause_type"]

    def filter_direction(self, queryset: QuerySet[Posting], name: str, value: str
                         ) -> QuerySet[Posting]:
        return queryset.filter(amount__gt=0) if value == "credit" else queryset.filter(
            amount__lt=0)


class TransactionPagination(CursorPagination):
    # Postings of one account are numbered 1, 2, 3... in the order they were applied.
    ordering = "-sequence"


PAGE_PARAMS = {TransactionPagination.cursor_query_param,
               TransactionPagination.page_size_query_param}

TRANSACTION_PARAMETERS = [
    OpenApiParameter("direction", str, enum=["credit", "debit"], required=False),
    OpenApiParameter("created_after", OpenApiTypes.DATETIME, required=False,
                     description="Inclusive (ISO 8601)."),
    OpenApiParameter("created_before", OpenApiTypes.DATETIME, required=False,
                     description="Exclusive (ISO 8601)."),
    OpenApiParameter("cause_type", str, required=False,
                     description="e.g. payment, wallet_payment, wallet_transfer, reversal."),
]

FORMAT_PARAMETER = OpenApiParameter(
    name="format", type=str, enum=["json", "csv"], required=False,
    description="`csv` streams every matching transaction as CSV (no pagination).",
)


class WalletViewSet(StrictQueryParamsMixin, ScopedQuerysetMixin, mixins.ListModelMixin,
                    mixins.RetrieveModelMixin, viewsets.GenericViewSet[Wallet]):
    """Customer wallets: one per customer and currency, created on demand."""

    queryset = Wallet.objects.select_related("account")
    serializer_class = WalletSerializer
    permission_classes = [IsMerchantOrCustomer]
    customer_lookup = "customer"
    filterset_class = WalletFilter
    idempotent_actions = ("create", "pay")

    def finalize_response(self, request: Request, response: Response, *args: Any,
                          **kwargs: Any) -> Response:
        # An error answer to a CSV request is still the JSON error shape.
        if isinstance(response, Response) and isinstance(
                getattr(request, "accepted_renderer", None), csv_export.CSVRenderer):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    def allowed_query_params(self, request: Request) -> set[str]:
        allowed = super().allowed_query_params(request)
        if self.action == "transactions":
            allowed |= set(TransactionFilter.base_filters) | {"format", *PAGE_PARAMS}
        return allowed

    def _wallet(self, pk: str | None) -> Wallet:
        wallet = _find_wallet(self.get_queryset(), pk or "")
        self.check_object_permissions(self.request, wallet)
        return wallet

    @extend_schema(
        request=WalletCreateSerializer,
        responses={201: WalletSerializer,
                   200: OpenApiResponse(WalletSerializer,
                                        description="The wallet already existed.")},
    )
    def create(self, request: Request) -> Response:
        """Create the customer's wallet in a currency, or return the existing one (200)."""
        principal = self.principal

        def handler() -> Response:
            incoming = WalletCreateSerializer(data=request.data)
            incoming.is_valid(raise_exception=True)
            customer = self._customer(principal, incoming.validated_data.get("customer"))
            try:
                currency = parse_currency(incoming.validated_data["currency"])
            except MoneyError as exc:
                raise ValidationFailed(str(exc), fields={"currency": [str(exc)]}) from exc
            wallet, created = services.get_or_create_wallet(customer, currency)
            return Response(WalletSerializer(wallet).data,
                            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

        return run_idempotent(request, principal, handler)

    @staticmethod
    def _customer(principal: Principal, customer_id: str | None) -> Customer:
        if principal.is_customer:
            assert principal.customer is not None
            if customer_id not in (None, principal.customer.pk):
                raise PermissionDenied("A customer token can only create its own wallets.")
            return principal.customer
        if not customer_id:
            raise ValidationFailed("customer is required with a merchant key.",
                                   fields={"customer": ["This field is required."]})
        customer = scope_queryset(Customer.objects.all(), principal,
                                  customer_lookup="pk").filter(pk=customer_id).first()
        if customer is None:
            raise NotFound(f"No such customer: {customer_id}",
                           fields={"customer": ["No such customer."]})
        return customer

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(WalletSerializer(self._wallet(kwargs.get("pk"))).data)

    @extend_schema(request=PaySerializer, responses={201: PaymentSerializer})
    @action(detail=True, methods=["post"])
    def pay(self, request: Request, pk: str | None = None) -> Response:
        """Pay the merchant from the wallet balance. Not enough available: 422, nothing
        is posted."""
        principal = self.principal

        def handler() -> Response:
            wallet = self._wallet(pk)
            incoming = PaySerializer(data=request.data)
            incoming.is_valid(raise_exception=True)
            data = incoming.validated_data
            money = services.parse_amount(data["amount"], wallet.currency)
            entry = services.pay(
                wallet, money,
                idempotency_key=services.ledger_key("wallet_pay", _scope(principal),
                                                    request.headers.get(HEADER, "")),
                description=data["description"], reference=data["reference"],
            )
            fresh = _find_wallet(self.get_queryset(), wallet.pk)
            body = {
                "id": entry.pk, "wallet": fresh,
                "amount": money.to_decimal_string(), "amount_minor": money.minor,
                "currency": money.currency, "description": entry.memo,
                "reference": entry.cause_id,
                "transaction": _posting_on(entry, fresh),
                "created_at": entry.created_at,
            }
            return Response(PaymentSerializer(body).data, status=status.HTTP_201_CREATED)

        return run_idempotent(request, principal, handler)

    @extend_schema(
        parameters=[*TRANSACTION_PARAMETERS, FORMAT_PARAMETER],
        responses={
            (200, "application/json"): TransactionSerializer(many=True),
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="With `?format=csv` (or `Accept: text/csv`): every matching "
                            "transaction, newest first, header row "
                            + ",".join(csv_export.HEADER) + ".",
            ),
        },
    )
    @action(detail=True, methods=["get"], pagination_class=TransactionPagination,
            filter_backends=[],
            renderer_classes=[JSONRenderer, csv_export.CSVRenderer])
    def transactions(self, request: Request, pk: str | None = None) -> HttpResponseBase:
        """The wallet's history: credits and debits with the balance after each."""
        wallet = self._wallet(pk)
        filterset = TransactionFilter(request.query_params,
                                      queryset=selectors.statement(wallet.account))
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        queryset = filterset.qs
        if isinstance(request.accepted_renderer, csv_export.CSVRenderer):
            paging = sorted(PAGE_PARAMS & set(request.query_params))
            if paging:
                raise ValidationFailed(
                    "The CSV export has every matching transaction; it takes no "
                    + " or ".join(paging) + ".",
                    fields={name: ["Not used with format=csv."] for name in paging})
            response = StreamingHttpResponse(csv_export.rows(queryset),
                                             content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = (
                f'attachment; filename="{wallet.pk}-transactions.csv"')
            return response
        page: Any = self.paginate_queryset(queryset)
        return self.get_paginated_response(TransactionSerializer(page, many=True).data)

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # Only the list is filtered by WalletFilter; detail routes look wallets up by id.
        if self.action != "list":
            return queryset
        return super().filter_queryset(queryset)


class TransferView(StrictQueryParamsMixin, ScopedQuerysetMixin, APIView):
    """Wallet to wallet within one merchant and one currency."""

    queryset = Wallet.objects.select_related("account")
    customer_lookup = "customer"
    permission_classes = [IsMerchantOrCustomer]
    idempotent_actions = ("post",)

    def recipients(self) -> QuerySet[Wallet]:
        """Wallets that may receive: any wallet of the caller's merchant (a customer may
        send to another customer of the same merchant, never across merchants)."""
        assert self.queryset is not None
        return scope_queryset(self.queryset.all(), Principal(merchant=self.principal.merchant))

    @extend_schema(request=TransferCreateSerializer, responses={201: TransferSerializer},
                   operation_id="transfers_create")
    def post(self, request: Request) -> Response:
        """Move money from one wallet to another. A customer token may send from its own
        wallet to any wallet of the same merchant."""
        principal = self.principal

        def handler() -> Response:
            incoming = TransferCreateSerializer(data=request.data)
            incoming.is_valid(raise_exception=True)
            data = incoming.validated_data
            source = _find_wallet(self.get_queryset(), data["from_wallet"], "from_wallet")
            destination = _find_wallet(self.recipients(), data["to_wallet"], "to_wallet")
            if data.get("currency"):
                try:
                    currency = parse_currency(data["currency"])
                except MoneyError as exc:
                    raise ValidationFailed(str(exc), fields={"currency": [str(exc)]}) from exc
                if currency != source.currency:
                    raise ValidationFailed(
                        f"currency {currency} does not match the wallet's {source.currency}.",
                        fields={"currency": [f"The wallets are in {source.currency}."]})
            money = services.parse_amount(data["amount"], source.currency)
            entry = services.transfer(
                source, destination, money,
                idempotency_key=services.ledger_key("wallet_transfer", _scope(principal),
                                                    request.headers.get(HEADER, "")),
                description=data["description"],
            )
            body = {
                "id": entry.pk, "from_wallet": source.pk, "to_wallet": destination.pk,
                "amount": money.to_decimal_string(), "amount_minor": money.minor,
                "currency": money.currency, "description": entry.memo,
                "transaction": _posting_on(entry, source),
                "created_at": entry.created_at,
            }
            return Response(TransferSerializer(body).data, status=status.HTTP_201_CREATED)

        return run_idempotent(request, principal, handler)
