"""Customer wallets: one per customer and currency, each backed by one ledger account.

A wallet row holds no money; its balance *is* its ledger account's balance, changed only
by :mod:`pesarail.ledger.services`.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from pesarail.common.models import id_field
from pesarail.ledger.models import Account


class Wallet(models.Model):
    id = id_field("wal")
    merchant = models.ForeignKey("tenants.Merchant", on_delete=models.PROTECT,
                                 related_name="wallets")
    customer = models.ForeignKey("tenants.Customer", on_delete=models.PROTECT,
                                 related_name="wallets")
    currency = models.CharField(max_length=3)
    account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="wallet")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering: ClassVar = ["-id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["customer", "currency"],
                                    name="wallet_one_per_customer_currency"),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.customer_id}, {self.currency})"
