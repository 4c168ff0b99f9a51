"""Merchant, customer, API key and login endpoints."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pesarail.api.permissions import IsMerchant, IsMerchantOrCustomer, principal_of
from pesarail.api.scoping import ScopedQuerysetMixin
from pesarail.api.throttling import LoginRateThrottle
from pesarail.api.views import StrictQueryParamsMixin
from pesarail.tenants import services
from pesarail.tenants.models import ApiKey, Customer, CustomerToken
from pesarail.tenants.serializers import (
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    CustomerLoginSerializer,
    CustomerSerializer,
    CustomerTokenSerializer,
    MerchantSerializer,
    NewApiKeySerializer,
)


class MerchantMeView(StrictQueryParamsMixin, APIView):
    permission_classes = [IsMerchantOrCustomer]

    @extend_schema(responses=MerchantSerializer, operation_id="merchants_me")
    def get(self, request: Request) -> Response:
        principal = principal_of(request)
        assert principal is not None
        return Response(MerchantSerializer(principal.merchant, context={"request": request}).data)


class CustomerFilter(filters.FilterSet):
    username = filters.CharFilter()
    phone_number = filters.CharFilter()
    external_reference = filters.CharFilter()

    class Meta:
        model = Customer
        fields = ["username", "phone_number", "external_reference"]


class CustomerViewSet(StrictQueryParamsMixin, ScopedQuerysetMixin, mixins.CreateModelMixin,
                      mixins.ListModelMixin,
                      mixins.RetrieveModelMixin, viewsets.GenericViewSet[Customer]):
    """Customers of the authenticated merchant. A customer token sees only itself."""

    queryset = Customer.objects.all()
    serializer_class = CustomerSerializer
    filterset_class = CustomerFilter
    customer_lookup = "pk"

    def get_permissions(self) -> list[Any]:
        if self.action == "create":
            return [IsMerchant()]
        return [IsMerchantOrCustomer()]

    def perform_create(self, serializer: CustomerSerializer) -> None:  # type: ignore[override]
        data = dict(serializer.validated_data)
        serializer.instance = services.create_customer(self.principal.merchant, **data)


class ApiKeyViewSet(StrictQueryParamsMixin, ScopedQuerysetMixin, mixins.ListModelMixin,
                    mixins.RetrieveModelMixin,
                    viewsets.GenericViewSet[ApiKey]):
    """The merchant's secret keys. The secret is returned once, at creation."""

    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer
    permission_classes = [IsMerchant]

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: NewApiKeySerializer})
    def create(self, request: Request) -> Response:
        incoming = ApiKeyCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        if incoming.validated_data["mode"] == "live" and not self.principal.livemode:
            raise PermissionDenied("A test key cannot create live keys.")
        new = services.create_api_key(self.principal.merchant, **incoming.validated_data)
        data = {**ApiKeySerializer(new.key).data, "secret": new.secret}
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        key = services.revoke_api_key(self.get_object())
        return Response(ApiKeySerializer(key).data)



class InvalidLogin(APIException):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "Unknown merchant, username or password."
    default_code = "invalid_credentials"


class CustomerTokenView(StrictQueryParamsMixin, APIView):
    """Customer login: merchant id + username + password -> a customer token."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginRateThrottle]

    @extend_schema(request=CustomerLoginSerializer, responses={201: CustomerTokenSerializer},
                   auth=[], operation_id="auth_token_create")
    def post(self, request: Request) -> Response:
        incoming = CustomerLoginSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        result = services.login_customer(data["merchant"], data["username"], data["password"])
        if result is None:
            raise InvalidLogin()
        customer, secret = result
        token = CustomerToken.objects.get(digest=services.digest(secret))
        body = CustomerTokenSerializer(
            {"token": secret, "expires_at": token.expires_at, "customer": customer},
            context={"request": request},
        ).data
        return Response(body, status=status.HTTP_201_CREATED)


class CustomerTokenRevokeView(StrictQueryParamsMixin, APIView):
    """Log out: revoke the customer token used for this request."""

    permission_classes = [IsMerchantOrCustomer]

    @extend_schema(request=None, responses={204: None}, operation_id="auth_token_revoke")
    def post(self, request: Request) -> Response:
        principal = principal_of(request)
        if principal is None or principal.customer_token is None:
            raise PermissionDenied("Only a customer token can be revoked here.")
        CustomerToken.objects.filter(pk=principal.customer_token.pk).update(
            revoked_at=timezone.now()
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
