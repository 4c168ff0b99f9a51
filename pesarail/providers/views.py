"""``/api/v1/provider-accounts/``: a merchant's provider accounts (merchant keys only)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from pesarail.api.permissions import IsMerchant
from pesarail.api.scoping import ScopedQuerysetMixin
from pesarail.api.views import StrictQueryParamsMixin
from pesarail.providers import services
from pesarail.providers.models import Environment, ProviderAccount
from pesarail.providers.serializers import (
    CredentialTestSerializer,
    ProviderAccountCreateSerializer,
    ProviderAccountSerializer,
    ProviderAccountUpdateSerializer,
)

CREATE_EXAMPLE = OpenApiExample(
    "M-Pesa Kenya sandbox",
    request_only=True,
    value={
        "provider": "mpesa_ke",
        "name": "Daraja sandbox",
        "environment": "sandbox",
        "config": {"shortcode": "174379", "transaction_type": "CustomerPayBillOnline"},
        "credentials": {"consumer_key": "<consumer key>", "consumer_secret": "<secret>",
                        "passkey": "<passkey>"},
    },
)


def _boolean_filter(help_text: str) -> filters.TypedChoiceFilter:
    """``true`` or ``false`` exactly; anything else is a 400 (not silently ignored)."""
    return filters.TypedChoiceFilter(choices=[("true", "true"), ("false", "false")],
                                     coerce=lambda value: value == "true", help_text=help_text)


class ProviderAccountFilter(filters.FilterSet):
    provider = filters.CharFilter(help_text="Provider code, e.g. mpesa_ke.")
    environment = filters.ChoiceFilter(choices=Environment.choices)
    is_active = _boolean_filter("Only active (true) or deactivated (false) accounts.")
    is_default = _boolean_filter("Only default (true) or other (false) accounts.")

    class Meta:
        model = ProviderAccount
        fields = ["provider", "environment", "is_active", "is_default"]


@extend_schema_view(
    list=extend_schema(summary="List provider accounts", parameters=[
        OpenApiParameter("is_active", OpenApiTypes.BOOL,
                         description="Only active (true) or deactivated (false) accounts."),
        OpenApiParameter("is_default", OpenApiTypes.BOOL,
                         description="Only default (true) or other (false) accounts."),
    ]),
    retrieve=extend_schema(summary="Retrieve a provider account"),
)
class ProviderAccountViewSet(StrictQueryParamsMixin, ScopedQuerysetMixin, mixins.ListModelMixin,
                             mixins.RetrieveModelMixin, viewsets.GenericViewSet[ProviderAccount]):
    """The merchant's credentials for payment providers. Credentials are write-only;
    a test key cannot change production accounts (a changed shortcode would redirect
    the merchant's money)."""

    queryset = ProviderAccount.objects.all()
    serializer_class = ProviderAccountSerializer
    permission_classes = [IsMerchant]
    filterset_class = ProviderAccountFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[ProviderAccount]:
        return super().get_queryset().select_related("merchant")

    def _guard_live(self, *environments: str) -> None:
        if Environment.PRODUCTION in environments and not self.principal.livemode:
            raise PermissionDenied(
                "A test key cannot create or change production provider accounts; use a "
                "live key."
            )

    def _render(self, account: ProviderAccount, code: int = status.HTTP_200_OK) -> Response:
        return Response(ProviderAccountSerializer(account).data, status=code)

    @extend_schema(summary="Create a provider account", request=ProviderAccountCreateSerializer,
                   responses={201: ProviderAccountSerializer}, examples=[CREATE_EXAMPLE])
    def create(self, request: Request) -> Response:
        incoming = ProviderAccountCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        self._guard_live(data["environment"])
        account = services.create_account(self.principal.merchant, **data)
        return self._render(account, status.HTTP_201_CREATED)

    @extend_schema(summary="Update a provider account (rotate credentials by writing them)",
                   request=ProviderAccountUpdateSerializer,
                   responses={200: ProviderAccountSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        account = self.get_object()
        incoming = ProviderAccountUpdateSerializer(data=request.data, partial=True)
        incoming.is_valid(raise_exception=True)
        data: dict[str, Any] = dict(incoming.validated_data)
        self._guard_live(account.environment, data.get("environment", ""))
        account = services.update_account(account, **data)
        return self._render(account)

    @extend_schema(summary="Deactivate a provider account",
                   description="Soft delete: the account is kept (payments already started "
                   "with it still complete) but is no longer active or the default.",
                   request=None, responses={200: ProviderAccountSerializer})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        account = self.get_object()
        self._guard_live(account.environment)
        return self._render(services.deactivate_account(account))

    @extend_schema(summary="Test a provider account's credentials",
                   description="Calls the provider (M-Pesa: its OAuth token endpoint) with "
                   "the stored credentials and records the result on the account. Answers "
                   "200 whether or not the credentials work; `ok` says which.",
                   request=None, responses={200: CredentialTestSerializer})
    @action(detail=True, methods=["post"], url_path="test")
    def test(self, request: Request, pk: str | None = None) -> Response:
        outcome = services.test_account(self.get_object())
        return Response(CredentialTestSerializer(
            {"ok": outcome.ok, "message": outcome.message, "tested_at": outcome.tested_at}
        ).data)
