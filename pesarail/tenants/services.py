"""Tenant services: the only code that creates merchants, keys, customers and tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from pesarail.common.errors import Conflict, ValidationFailed
from pesarail.tenants.models import (
    ApiKey,
    Customer,
    CustomerToken,
    KeyMode,
    Membership,
    Merchant,
    Role,
    User,
)

API_KEY_PREFIXES = {KeyMode.TEST: "sk_test_", KeyMode.LIVE: "sk_live_"}
CUSTOMER_TOKEN_PREFIX = "ct_"
DISPLAY_PREFIX_LENGTH = 14


def digest(secret: str) -> str:
    """SHA-256 hex digest of a high-entropy secret (keys carry >= 240 random bits, so a
    slow password hash buys nothing here and would cost every request)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewApiKey:
    key: ApiKey
    secret: str


@transaction.atomic
def create_merchant(
    name: str,
    *,
    country: str = "KE",
    default_currency: str = "KES",
    owner: User | None = None,
    key_mode: str = KeyMode.TEST,
) -> tuple[Merchant, NewApiKey]:
    name = name.strip()
    if not name:
        raise ValidationFailed("merchant name is required", fields={"name": ["Required."]})
    merchant = Merchant.objects.create(
        name=name, country=country.upper(), default_currency=default_currency.upper()
    )
    if owner is not None:
        Membership.objects.create(merchant=merchant, user=owner, role=Role.OWNER)
    return merchant, create_api_key(merchant, mode=key_mode, name="default")


def create_api_key(
    merchant: Merchant, *, mode: str = KeyMode.TEST, name: str = "default",
    created_by: User | None = None,
) -> NewApiKey:
    if mode not in API_KEY_PREFIXES:
        raise ValidationFailed(f"unknown key mode {mode!r}", fields={"mode": ["test or live"]})
    secret = API_KEY_PREFIXES[KeyMode(mode)] + secrets.token_urlsafe(30)
    key = ApiKey.objects.create(
        merchant=merchant,
        name=name,
        mode=mode,
        prefix=secret[:DISPLAY_PREFIX_LENGTH],
        digest=digest(secret),
        created_by=created_by,
    )
    return NewApiKey(key=key, secret=secret)


def revoke_api_key(key: ApiKey) -> ApiKey:
    ApiKey.objects.filter(pk=key.pk, revoked_at=None).update(revoked_at=timezone.now())
    key.refresh_from_db()
    return key


def authenticate_api_key(secret: str) -> ApiKey | None:
    """The active key for ``secret`` (with its merchant), or None."""
    if not secret.startswith(tuple(API_KEY_PREFIXES.values())):
        return None
    key = (
        ApiKey.objects.select_related("merchant")
        .filter(digest=digest(secret), revoked_at=None, merchant__is_active=True)
        .first()
    )
    if key is not None:
        _touch(ApiKey, key)
    return key


def _touch(model: type[ApiKey] | type[CustomerToken], obj: ApiKey | CustomerToken) -> None:
    """Record last use at most once per resolution window: one conditional UPDATE, so a
    busy key does not write on every request."""
    now = timezone.now()
    window = timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
    if obj.last_used_at is None or now - obj.last_used_at >= window:
        model.objects.filter(pk=obj.pk).update(last_used_at=now)
        obj.last_used_at = now


def create_customer(
    merchant: Merchant,
    *,
    username: str,
    password: str | None = None,
    name: str = "",
    email: str = "",
    phone_number: str = "",
    external_reference: str = "",
    metadata: dict[str, object] | None = None,
) -> Customer:
    customer = Customer(
        merchant=merchant,
        username=username,
        name=name,
        email=email,
        phone_number=phone_number,
        external_reference=external_reference,
        metadata=metadata or {},
    )
    customer.set_password(password)
    try:
        with transaction.atomic():
            customer.save()
    except IntegrityError as exc:
        raise Conflict(
            f"a customer with username {username!r} already exists",
            code="customer_exists",
            fields={"username": ["Already taken for this merchant."]},
        ) from exc
    return customer


def issue_customer_token(customer: Customer) -> str:
    secret = CUSTOMER_TOKEN_PREFIX + secrets.token_urlsafe(32)
    CustomerToken.objects.create(
        customer=customer,
        digest=digest(secret),
        expires_at=timezone.now() + timedelta(seconds=settings.CUSTOMER_TOKEN_TTL_SECONDS),
    )
    return secret


def login_customer(merchant_id: str, username: str, password: str) -> tuple[Customer, str] | None:
    customer = (
        Customer.objects.select_related("merchant")
        .filter(merchant_id=merchant_id, username=username, is_active=True,
                merchant__is_active=True)
        .first()
    )
    if customer is None or not customer.check_password(password):
        return None
    return customer, issue_customer_token(customer)


def authenticate_customer_token(secret: str) -> CustomerToken | None:
    if not secret.startswith(CUSTOMER_TOKEN_PREFIX):
        return None
    token = (
        CustomerToken.objects.select_related("customer", "customer__merchant")
        .filter(
            digest=digest(secret),
            revoked_at=None,
            expires_at__gt=timezone.now(),
            customer__is_active=True,
            customer__merchant__is_active=True,
        )
        .first()
    )
    if token is not None:
        _touch(CustomerToken, token)
    return token


def revoke_customer_token(secret: str) -> bool:
    return bool(
        CustomerToken.objects.filter(digest=digest(secret), revoked_at=None).update(
            revoked_at=timezone.now()
        )
    )
