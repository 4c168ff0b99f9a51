"""Authentication for ``/api/v1/``: ``Authorization: Token <secret>`` (or ``Bearer``).

A merchant secret key (``sk_test_…``/``sk_live_…``) authenticates the merchant; a customer
token (``ct_…``) authenticates one customer of one merchant. Either way ``request.user`` is
a :class:`Principal` and every queryset is scoped from it (see ``pesarail.api.scoping``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from pesarail.tenants import services
from pesarail.tenants.models import ApiKey, Customer, CustomerToken, Merchant

KEYWORDS = ("token", "bearer")


@dataclass(frozen=True)
class Principal:
    merchant: Merchant
    customer: Customer | None = None
    api_key: ApiKey | None = None
    customer_token: CustomerToken | None = None

    is_authenticated = True
    is_anonymous = False
    is_staff = False

    @property
    def is_merchant(self) -> bool:
        return self.api_key is not None

    @property
    def is_customer(self) -> bool:
        return self.customer is not None

    @property
    def throttle_id(self) -> str:
        if self.api_key is not None:
            return self.api_key.pk
        assert self.customer_token is not None
        return self.customer_token.pk

    @property
    def livemode(self) -> bool:
        return self.api_key is not None and self.api_key.mode == "live"

    def __str__(self) -> str:
        return f"customer:{self.customer.pk}" if self.customer else f"merchant:{self.merchant.pk}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    www_authenticate_realm = "api"

    def authenticate(self, request: Request) -> tuple[Principal, ApiKey | CustomerToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").strip()
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() not in KEYWORDS:
            raise exceptions.AuthenticationFailed(
                "Authorization header must be 'Token <key>' or 'Bearer <key>'.",
                code="malformed_authorization",
            )
        secret = parts[1]
        if secret.startswith(services.CUSTOMER_TOKEN_PREFIX):
            token = services.authenticate_customer_token(secret)
            if token is None:
                raise exceptions.AuthenticationFailed(
                    "Invalid, expired or revoked customer token.", code="invalid_token"
                )
            customer = token.customer
            return Principal(merchant=customer.merchant, customer=customer,
                             customer_token=token), token
        key = services.authenticate_api_key(secret)
        if key is None:
            raise exceptions.AuthenticationFailed(
                "Invalid or revoked API key.", code="invalid_api_key"
            )
        return Principal(merchant=key.merchant, api_key=key), key

    def authenticate_header(self, request: Request) -> str:
        return 'Token realm="api"'
