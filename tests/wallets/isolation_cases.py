"""Every wallet route joins the shared tenant-isolation test (tests/isolation.py)."""

from __future__ import annotations

from pesarail.ledger import services as ledger
from pesarail.ledger.models import AccountKind
from pesarail.wallets import services
from pesarail.wallets.models import Wallet
from tests.factories import CustomerFactory, Tenant
from tests.isolation import Action, IsolationCase, register
from tests.ledger.helpers import topup

# The transfer body names wallets by id and the shared test cannot format a body, so the
# transfer case gives tenant A's wallets fixed ids (each test runs in its own
# transaction, so the ids never collide).
FROM_ID = "wal_isolation_from"
TO_ID = "wal_isolation_to"


def _funded_wallet(t: Tenant) -> Wallet:
    topup(t.customer, "50.00", f"iso-topup:{t.customer.pk}")
    wallet, _ = services.get_or_create_wallet(t.customer, "KES")
    return wallet


def _transfer_wallets(t: Tenant) -> Wallet:
    """A's customer's wallet with a fixed id (funded) and a second one to receive."""
    other = CustomerFactory(merchant=t.merchant)
    wallets = []
    for wallet_id, customer in ((FROM_ID, t.customer), (TO_ID, other)):
        account = ledger.get_or_create_account(AccountKind.CUSTOMER_WALLET, t.merchant.pk,
                                               "KES", customer_id=customer.pk)
        # The account_created signal gave it a wallet with a random id; use ours.
        Wallet.objects.filter(account=account).delete()
        wallets.append(Wallet.objects.create(id=wallet_id, merchant=t.merchant,
                                             customer=customer, currency="KES",
                                             account=account))
    topup(t.customer, "50.00", f"iso-topup:{t.customer.pk}")
    return wallets[0]


register(IsolationCase(
    name="wallets",
    make=_funded_wallet,
    list_url="/api/v1/wallets/",
    detail_url="/api/v1/wallets/{id}/",
    actions=(Action("POST", "/api/v1/wallets/{id}/pay/", {"amount": "1.00"}),),
    customer_owned=True,
    routes=("api/v1/wallets/", "api/v1/wallets/<pk>/", "api/v1/wallets/<pk>/pay/"),
))
register(IsolationCase(
    name="wallet-transactions",
    make=_funded_wallet,
    list_url=None,
    detail_url="/api/v1/wallets/{id}/transactions/",
    customer_owned=True,
    routes=("api/v1/wallets/<pk>/transactions/",),
))
register(IsolationCase(
    name="wallet-transactions-csv",
    make=_funded_wallet,
    list_url=None,
    detail_url="/api/v1/wallets/{id}/transactions/?format=csv",
    customer_owned=True,
))
register(IsolationCase(
    name="transfers",
    make=_transfer_wallets,
    list_url=None,
    detail_url=None,
    actions=(Action("POST", "/api/v1/transfers/",
                    {"from_wallet": FROM_ID, "to_wallet": TO_ID, "amount": "1.00"}),),
    routes=("api/v1/transfers/",),
))
