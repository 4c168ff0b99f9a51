"""Payment endpoints.

* A merchant key creates payments (``POST /payments/``) and acts on all of its own.
* A customer token lists and reads its own payments, may refresh, cancel or retry them,
  and tops up its own wallets (``POST /wallets/{id}/top-up/``); it cannot create an
  arbitrary payment.

Every money-moving POST (create, retry, top-up) runs under ``Idempotency-Key``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.filters import SearchFilter
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pesarail.api.auth import Principal
from pesarail.api.idempotency import HEADER, run_idempotent
from pesarail.api.permissions import IsMerchantOrCustomer
from pesarail.api.scoping import ScopedQuerysetMixin, scope_queryset
from pesarail.api.views import StrictQueryParamsMixin
from pesarail.common.errors import NotFound, ValidationFailed
from pesarail.common.money import Money, MoneyError
from pesarail.common.phone import PhoneError, normalize_phone
from pesarail.payments import gateway, render, services
from pesarail.payments.models import IntentKind, IntentStatus, PaymentIntent
from pesarail.payments.serializers import (
    PaymentCreateSerializer,
    PaymentIntentDetailSerializer,
    PaymentIntentSerializer,
    TopUpSerializer,
)
from pesarail.tenants.models import Customer
from pesarail.wallets.models import Wallet


def _scope(principal: Principal) -> str:
    return principal.customer.pk if principal.customer else principal.merchant.pk


def _money(amount: str, currency: str) -> Money:
    try:
        return Money.parse(amount, currency)
    except MoneyError as exc:
        field = "currency" if "currency" in str(exc) else "amount"
        raise ValidationFailed(f"Invalid {field}: {exc}", fields={field: [str(exc)]}) from exc


def _phone(raw: str, country: str) -> str:
    try:
        return normalize_phone(raw, country or "KE")
    except PhoneError as exc:
        raise ValidationFailed(f"Invalid phone_number: {exc}",
                               fields={"phone_number": [str(exc)]}) from exc


def _detail(intent: PaymentIntent, *, reload: bool = True) -> dict[str, Any]:
    """The body of every single-payment answer (``PaymentIntentDetailSerializer``'s
    shape, rendered by :mod:`pesarail.payments.render`): the intent, its attempts, its
    events; three queries at most.

    ``reload`` reads the intent row again: the services change it after the caller
    loaded it. ``retrieve`` has just read it and passes False. The provider account is
    never loaded: its credentials would be decrypted for nothing.
    """
    if reload:
        intent = PaymentIntent.objects.get(pk=intent.pk)
    return render.intent_detail(intent, render.attempts_of(intent), render.events_of(intent))


@extend_schema_field({"type": "string", "enum": ["true", "false"]})
class TrueFalseFilter(filters.TypedChoiceFilter):
    """``true`` or ``false`` exactly; anything else is a 400."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=[("true", "true"), ("false", "false")],
                         coerce=lambda value: value == "true", **kwargs)


class PaymentFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=IntentStatus.choices)
    kind = filters.ChoiceFilter(choices=IntentKind.choices)
    provider = filters.CharFilter()
    provider_account = filters.CharFilter(field_name="provider_account_id")
    reference = filters.CharFilter(help_text="Exact match on your reference.")
    phone = filters.CharFilter(method="filter_phone",
                               help_text="The payer's phone (any format normalize accepts).")
    customer = filters.CharFilter(field_name="customer_id")
    wallet = filters.CharFilter(field_name="wallet_id")
    needs_review = TrueFalseFilter(
        help_text="Only payments flagged for review (true) or not (false).")
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte",
                                              help_text="Inclusive (ISO 8601).")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt",
                                               help_text="Exclusive (ISO 8601).")

    class Meta:
        model = PaymentIntent
        fields = ["status", "kind", "provider", "provider_account", "reference", "phone",
                  "customer", "wallet", "needs_review", "created_after", "created_before"]

    def filter_phone(self, queryset: QuerySet[PaymentIntent], name: str, value: str
                     ) -> QuerySet[PaymentIntent]:
        try:
            phone = normalize_phone(value, "KE")
        except PhoneError as exc:
            raise DRFValidationError({"phone": [str(exc)]}) from exc
        return queryset.filter(phone=phone)


#: Filters whose values have a type or a fixed set of values (an empty value is a 400).
TYPED_FILTERS = ("status", "kind", "needs_review", "created_after", "created_before")

DETAIL_RESPONSE = {200: PaymentIntentDetailSerializer}
CREATED_RESPONSES = {
    201: PaymentIntentDetailSerializer,
    200: OpenApiResponse(PaymentIntentDetailSerializer,
                         description="An intent with this Idempotency-Key already existed."),
}


class PaymentViewSet(StrictQueryParamsMixin, ScopedQuerysetMixin,
                     mixins.ListModelMixin, mixins.RetrieveModelMixin,
                     viewsets.GenericViewSet[PaymentIntent]):
    """M-Pesa (and later other) payments: an intent, its attempts and its timeline."""

    queryset = PaymentIntent.objects.all()
    serializer_class = PaymentIntentSerializer
    permission_classes = [IsMerchantOrCustomer]
    customer_lookup = "customer"
    filterset_class = PaymentFilter
    filter_backends = [filters.DjangoFilterBackend, SearchFilter]
    search_fields = ["reference", "description", "=id", "=phone"]
    idempotent_actions = ("create", "retry")

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.action != "list":
            return queryset
        empty = sorted(name for name in TYPED_FILTERS
                       if "" in self.request.query_params.getlist(name))
        if empty:  # django-filter would ignore them: ?status= is a client bug, say so
            raise DRFValidationError({name: ["May not be empty."] for name in empty})
        return super().filter_queryset(queryset)

    def get_queryset(self) -> QuerySet[Any]:
        queryset = super().get_queryset()  # scoped to the principal
        # Never the provider account for what is only shown: nothing shown needs it, and
        # loading it decrypts its credentials (for every row of a list). A single intent's
        # attempts are one plain query in _detail (cheaper than prefetch_related).
        if self.action == "list":
            return queryset.prefetch_related("attempts")
        if self.action == "retry":  # retry_payment checks the account is active
            return queryset.select_related("provider_account")
        return queryset

    # The serializers define the shapes (and the schema); the bodies are rendered by
    # pesarail.payments.render, which gives the same JSON without building serializer
    # fields for every request.
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        if page is None:
            return Response([render.payment_intent(intent) for intent in queryset])
        return self.get_paginated_response([render.payment_intent(intent) for intent in page])

    def get_serializer_class(self) -> Any:
        if self.action == "list":
            return PaymentIntentSerializer
        return PaymentIntentDetailSerializer

    def _intent(self, pk: str | None) -> PaymentIntent:
        intent = self.get_queryset().filter(pk=pk or "").first()
        if intent is None:
            raise NotFound(f"No such payment: {pk}")
        return intent

    @extend_schema(request=PaymentCreateSerializer, responses=CREATED_RESPONSES)
    def create(self, request: Request) -> Response:
        """Create a payment and send the phone prompt. The answer has ``next_action``
        while the customer is being asked; the outcome arrives by callback (poll the
        payment, or wait for webhooks)."""
        principal = self.principal
        if not principal.is_merchant:
            raise PermissionDenied("Creating a payment needs the merchant secret key; a "
                                   "customer tops up a wallet with /wallets/{id}/top-up/.")
        incoming = PaymentCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        merchant = principal.merchant
        money = _money(data["amount"], data.get("currency") or merchant.default_currency)
        phone = _phone(data["phone_number"], merchant.country)
        customer = None
        if data.get("customer"):
            customer = scope_queryset(Customer.objects.all(), principal,
                                      customer_lookup="pk").filter(pk=data["customer"]).first()
            if customer is None:
                raise NotFound(f"No such customer: {data['customer']}",
                               fields={"customer": ["No such customer."]})

        def handler() -> Response:
            account = gateway.resolve_account(merchant, provider=data.get("provider"),
                                              account_id=data.get("provider_account"))
            spec = services.PaymentSpec(
                merchant=merchant, account=account, money=money, phone=phone,
                description=data["description"], reference=data["reference"],
                metadata=data["metadata"], customer=customer,
                idempotency_key=services.idempotency_backstop(
                    "create", _scope(principal), request.headers.get(HEADER, "")),
            )
            intent, created = services.create_payment(spec)  # returns a fresh intent
            return Response(_detail(intent, reload=False),
                            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

        return run_idempotent(request, principal, handler)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A payment with its attempts and its event timeline."""
        return Response(_detail(self._intent(kwargs.get("pk")), reload=False))

    @extend_schema(request=None, responses={
        **DETAIL_RESPONSE,
        503: OpenApiResponse(description="The provider could not be asked right now."),
    })
    @action(detail=True, methods=["post"])
    def refresh(self, request: Request, pk: str | None = None) -> Response:
        """Ask the provider now (STK query) and apply a final answer."""
        intent = services.refresh_payment(self._intent(pk))
        return Response(_detail(intent))

    @extend_schema(request=None, responses=DETAIL_RESPONSE)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Stop waiting for a pending or processing payment. The provider is asked first;
        a payment the customer already made cannot be cancelled (409). A success that
        still arrives later is recorded (see the late-success policy)."""
        intent = self._intent(pk)
        by = "customer" if self.principal.is_customer else "merchant"
        return Response(_detail(services.cancel_payment(intent, by=by)))

    @extend_schema(request=None, responses=DETAIL_RESPONSE)
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        """Send a new prompt (a new attempt) for a failed or cancelled payment."""
        principal = self.principal
        intent = self._intent(pk)
        return run_idempotent(request, principal,
                              lambda: Response(_detail(services.retry_payment(intent))))


class WalletTopUpView(StrictQueryParamsMixin, ScopedQuerysetMixin, APIView):
    """Top up a wallet by M-Pesa: a payment intent whose success credits the wallet."""

    queryset = Wallet.objects.select_related("customer")
    customer_lookup = "customer"
    permission_classes = [IsMerchantOrCustomer]
    idempotent_actions = ("post",)

    @extend_schema(request=TopUpSerializer, responses=CREATED_RESPONSES,
                   operation_id="wallets_top_up_create")
    def post(self, request: Request, pk: str) -> Response:
        """Send a prompt to pay ``amount`` into the wallet (in the wallet's currency). On
        success the wallet is credited exactly once."""
        principal = self.principal
        wallet = self.get_queryset().filter(pk=pk).first()
        if wallet is None:
            raise NotFound(f"No such wallet: {pk}")
        incoming = TopUpSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        money = _money(data["amount"], wallet.currency)
        raw_phone = data.get("phone_number") or wallet.customer.phone_number
        if not raw_phone:
            raise ValidationFailed("phone_number is required: the customer has no phone "
                                   "number on file.",
                                   fields={"phone_number": ["This field is required."]})
        phone = _phone(raw_phone, principal.merchant.country)

        def handler() -> Response:
            account = gateway.resolve_account(principal.merchant,
                                              provider=data.get("provider"),
                                              account_id=data.get("provider_account"))
            spec = services.PaymentSpec(
                merchant=principal.merchant, account=account, money=money, phone=phone,
                description="Wallet top-up", customer=wallet.customer, wallet=wallet,
                idempotency_key=services.idempotency_backstop(
                    f"top_up:{wallet.pk}", _scope(principal), request.headers.get(HEADER, "")),
            )
            intent, created = services.create_payment(spec)  # returns a fresh intent
            return Response(_detail(intent, reload=False),
                            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

        return run_idempotent(request, principal, handler)
