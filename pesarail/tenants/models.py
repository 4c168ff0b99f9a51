"""Tenancy: merchants, their staff, their API keys and their customers."""

from __future__ import annotations

from typing import ClassVar

from django.contrib.auth.hashers import check_password, make_password
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q

from pesarail.common.models import TimestampedModel, id_field


class User(AbstractUser):
    """A person who signs in to the dashboard or admin: merchant staff or a platform
    operator (``is_superuser``). Customers of merchants are :class:`Customer`, not users."""


class Merchant(TimestampedModel):
    id = id_field("mer")
    name = models.CharField(max_length=200)
    country = models.CharField(max_length=2, default="KE", help_text="ISO 3166 alpha-2")
    default_currency = models.CharField(max_length=3, default="KES")
    is_active = models.BooleanField(default=True)
    staff: models.ManyToManyField[User, Membership] = models.ManyToManyField(
        User, through="Membership", related_name="merchants"
    )

    class Meta:
        ordering: ClassVar = ["-id"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    VIEWER = "viewer", "Viewer"


class Membership(TimestampedModel):
    id = id_field("mem")
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["merchant", "user"], name="membership_unique_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.merchant} ({self.role})"


class KeyMode(models.TextChoices):
    TEST = "test", "Test"
    LIVE = "live", "Live"


class ApiKey(TimestampedModel):
    """A merchant secret key. Only a SHA-256 digest and a display prefix are stored."""

    id = id_field("key")
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    mode = models.CharField(max_length=4, choices=KeyMode.choices, default=KeyMode.TEST)
    prefix = models.CharField(max_length=20, help_text="First characters, for recognition")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering: ClassVar = ["-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Customer(TimestampedModel):
    """An end user of a merchant's app (e.g. a wallet holder). Usernames are unique per
    merchant; the password is optional (a customer without one cannot log in)."""

    id = id_field("cus")
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="customers")
    username = models.CharField(max_length=150)
    name = models.CharField(max_length=200, blank=True, default="")
    email = models.EmailField(blank=True, default="")
    phone_number = models.CharField(max_length=16, blank=True, default="")
    external_reference = models.CharField(max_length=100, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    password = models.CharField(max_length=128, blank=True, default="", editable=False)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering: ClassVar = ["-id"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["merchant", "username"], name="customer_unique_username"
            )
        ]
        indexes: ClassVar = [models.Index(fields=["merchant", "phone_number"])]

    def __str__(self) -> str:
        return self.username

    def set_password(self, raw: str | None) -> None:
        self.password = make_password(raw) if raw else ""

    def check_password(self, raw: str) -> bool:
        return bool(self.password) and check_password(raw, self.password)


class CustomerToken(TimestampedModel):
    """A login token for a customer. Only its digest is stored."""

    id = id_field("ctk")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="tokens")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["customer"], name="ctoken_active", condition=Q(revoked_at=None))
        ]
