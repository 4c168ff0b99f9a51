"""The ledger service: validation, idempotency, refusals that post nothing, accounts."""

from __future__ import annotations

import pytest

from pesarail.common.errors import Unprocessable, ValidationFailed
from pesarail.common.money import Money
from pesarail.ledger import selectors
from pesarail.ledger import services as ledger
from pesarail.ledger.models import Account, AccountKind, EntryKind, JournalEntry, Posting
from pesarail.ledger.services import IdempotencyConflict, InsufficientFunds, Leg
from pesarail.wallets.models import Wallet
from tests.factories import CustomerFactory, Tenant
from tests.ledger.helpers import (
    PROVIDER,
    balance,
    clearing_account,
    kes,
    settlement_account,
    topup,
    wallet_account,
)

pytestmark = pytest.mark.django_db


def _counts() -> tuple[int, int]:
    return JournalEntry.objects.count(), Posting.objects.count()


# ------------------------------------------------------------------------ refusals


def test_insufficient_funds_posts_nothing(tenant: Tenant) -> None:
    topup(tenant.customer, "100.00", "k1")
    wallet = wallet_account(tenant.customer)
    before = _counts()
    with pytest.raises(InsufficientFunds) as caught:
        ledger.pay_merchant(source=wallet, money=kes("100.01"), idempotency_key="k2")
    assert caught.value.status == 422 and caught.value.code == "insufficient_funds"
    assert _counts() == before
    assert balance(wallet) == "100.00"
    assert selectors.merchant_settlement(tenant.merchant.pk, "KES") is None or balance(
        settlement_account(tenant.merchant.pk)) == "0.00"
    # The key was not burnt: the same key may succeed once there is money.
    topup(tenant.customer, "1.00", "k3")
    ledger.pay_merchant(source=wallet, money=kes("100.01"), idempotency_key="k2")
    assert balance(wallet) == "0.99"


def test_an_exact_balance_can_be_spent_to_zero(tenant: Tenant) -> None:
    topup(tenant.customer, "10.00", "k1")
    wallet = wallet_account(tenant.customer)
    ledger.pay_merchant(source=wallet, money=kes("10.00"), idempotency_key="k2")
    assert balance(wallet) == "0.00"


@pytest.mark.parametrize(
    ("amounts", "message"),
    [
        ([100], "at least two"),
        ([100, -99], "sum to zero"),
        ([0, 0], "non-zero"),
        ([100, -100, 0], "non-zero"),
    ],
)
def test_post_refuses_malformed_entries(tenant: Tenant, amounts: list[int],
                                        message: str) -> None:
    accounts = [clearing_account(tenant.merchant.pk), settlement_account(tenant.merchant.pk),
                ledger.get_or_create_account(AccountKind.SUSPENSE, tenant.merchant.pk, "KES")]
    legs = [Leg(accounts[i], amount) for i, amount in enumerate(amounts)]
    with pytest.raises(ValidationFailed, match=message):
        ledger.post(legs=legs, currency="KES", idempotency_key="bad")
    assert _counts() == (0, 0)


def test_post_refuses_mixed_currencies_and_merchants(tenant: Tenant,
                                                     other_tenant: Tenant) -> None:
    clearing = clearing_account(tenant.merchant.pk)
    usd = ledger.get_or_create_account(AccountKind.SUSPENSE, tenant.merchant.pk, "USD")
    with pytest.raises(ValidationFailed, match="USD, not KES"):
        ledger.post(legs=[Leg(clearing, -1), Leg(usd, 1)], currency="KES",
                    idempotency_key="x1")
    foreign = settlement_account(other_tenant.merchant.pk)
    with pytest.raises(ValidationFailed, match="one merchant"):
        ledger.post(legs=[Leg(clearing, -1), Leg(foreign, 1)], currency="KES",
                    idempotency_key="x2")
    with pytest.raises(Unprocessable, match="same merchant"):
        ledger.transfer(source=wallet_account(tenant.customer),
                        destination=wallet_account(other_tenant.customer),
                        money=kes("1.00"), idempotency_key="x3")
    assert _counts() == (0, 0)


def test_amounts_must_be_positive_money(tenant: Tenant) -> None:
    wallet = wallet_account(tenant.customer)
    with pytest.raises(ValidationFailed):
        ledger.pay_merchant(source=wallet, money=Money(0, "KES"), idempotency_key="z")
    with pytest.raises(ValidationFailed):
        ledger.hold(wallet, Money(-5, "KES"), idempotency_key="z")
    with pytest.raises(ValidationFailed):
        ledger.pay_merchant(source=wallet, money=kes("1.00"), idempotency_key="")


def test_a_general_post_updates_every_balance(tenant: Tenant) -> None:
    """Three legs: a KES 100.00 provider payment split into 98.00 merchant + 2.00 fees."""
    clearing = clearing_account(tenant.merchant.pk)
    settlement = settlement_account(tenant.merchant.pk)
    fees = ledger.get_or_create_account(AccountKind.FEES, tenant.merchant.pk, "KES")
    entry = ledger.post(legs=[Leg(clearing, -10000), Leg(settlement, 9800), Leg(fees, 200)],
                        currency="KES", idempotency_key="split-1", cause_type="payment",
                        cause_id="pay_1")
    assert entry.kind == EntryKind.MANUAL
    assert [balance(clearing), balance(settlement), balance(fees)] == [
        "-100.00", "98.00", "2.00"]
    # The caller's instances were refreshed too.
    assert settlement.balance == 9800 and settlement.version == 1


# --------------------------------------------------------------------- idempotency


def test_same_key_returns_the_same_entry(tenant: Tenant) -> None:
    first = topup(tenant.customer, "100.00", "mpesa_callback:ws_1")
    again = topup(tenant.customer, "100.00", "mpesa_callback:ws_1")
    assert again.pk == first.pk
    assert _counts() == (1, 2)
    assert balance(wallet_account(tenant.customer)) == "100.00"


def test_same_key_for_another_movement_is_a_conflict(tenant: Tenant) -> None:
    topup(tenant.customer, "100.00", "mpesa_callback:ws_2")
    with pytest.raises(IdempotencyConflict):
        topup(tenant.customer, "999.00", "mpesa_callback:ws_2")
    assert balance(wallet_account(tenant.customer)) == "100.00"


def test_one_credit_per_provider_payment_whatever_the_key(tenant: Tenant) -> None:
    first = topup(tenant.customer, "100.00", "callback-a", cause_id="pay_123")
    second = topup(tenant.customer, "100.00", "callback-b", cause_id="pay_123")
    assert second.pk == first.pk
    assert balance(wallet_account(tenant.customer)) == "100.00"
    with pytest.raises(IdempotencyConflict):
        topup(tenant.customer, "50.00", "callback-c", cause_id="pay_123")


def test_provider_payment_without_customer_credits_the_merchant(tenant: Tenant) -> None:
    entry = ledger.record_provider_payment(
        merchant_id=tenant.merchant.pk, provider_account_id=PROVIDER, money=kes("75.50"),
        idempotency_key="mpesa_callback:ws_3", cause_id="pay_9", memo="Order 9",
    )
    assert (entry.cause_type, entry.cause_id, entry.memo) == ("payment", "pay_9", "Order 9")
    assert balance(settlement_account(tenant.merchant.pk)) == "75.50"
    assert balance(clearing_account(tenant.merchant.pk)) == "-75.50"


def test_holds_are_idempotent_by_key(tenant: Tenant) -> None:
    topup(tenant.customer, "100.00", "k")
    wallet = wallet_account(tenant.customer)
    first = ledger.hold(wallet, kes("10.00"), idempotency_key="h1")
    assert ledger.hold(wallet, kes("10.00"), idempotency_key="h1").pk == first.pk
    with pytest.raises(IdempotencyConflict):
        ledger.hold(wallet, kes("20.00"), idempotency_key="h1")
    assert selectors.balances_of(wallet).available == kes("90.00")


# ------------------------------------------------------------------------ accounts


def test_accounts_are_created_once(tenant: Tenant) -> None:
    a = ledger.get_or_create_account(AccountKind.MERCHANT_SETTLEMENT, tenant.merchant.pk, "kes")
    b = ledger.get_or_create_account(AccountKind.MERCHANT_SETTLEMENT, tenant.merchant.pk, "KES")
    assert a.pk == b.pk and a.currency == "KES" and not a.allow_negative
    c = ledger.get_or_create_account(AccountKind.MERCHANT_SETTLEMENT, tenant.merchant.pk, "USD")
    assert c.pk != a.pk


def test_one_clearing_account_per_provider_account(tenant: Tenant) -> None:
    one = ledger.get_or_create_account(AccountKind.PROVIDER_CLEARING, tenant.merchant.pk, "KES",
                                       provider_account_id="pa_1")
    two = ledger.get_or_create_account(AccountKind.PROVIDER_CLEARING, tenant.merchant.pk, "KES",
                                       provider_account_id="pa_2")
    assert one.pk != two.pk and one.allow_negative


def test_account_arguments_are_checked(tenant: Tenant, other_tenant: Tenant) -> None:
    merchant = tenant.merchant.pk
    with pytest.raises(ValidationFailed):
        ledger.get_or_create_account(AccountKind.CUSTOMER_WALLET, merchant, "KES")
    with pytest.raises(ValidationFailed):
        ledger.get_or_create_account(AccountKind.PROVIDER_CLEARING, merchant, "KES")
    with pytest.raises(ValidationFailed):
        ledger.get_or_create_account(AccountKind.FEES, merchant, "KES", customer_id="cus_x")
    with pytest.raises(ValidationFailed):
        ledger.get_or_create_account("piggy_bank", merchant, "KES")
    with pytest.raises(ValidationFailed):
        ledger.get_or_create_account(AccountKind.FEES, merchant, "XXX")
    # Another merchant's customer cannot get a wallet account under this merchant.
    with pytest.raises(ValidationFailed, match="does not belong"):
        ledger.get_or_create_account(AccountKind.CUSTOMER_WALLET, merchant, "KES",
                                     customer_id=other_tenant.customer.pk)
    assert not Account.objects.exists()


def test_a_provider_credit_gives_the_customer_a_wallet(tenant: Tenant) -> None:
    """The M-Pesa flow only calls record_provider_payment; the wallet appears with it."""
    customer = CustomerFactory(merchant=tenant.merchant)
    topup(customer, "20.00", "k")
    wallet = Wallet.objects.get(customer=customer, currency="KES")
    assert wallet.account.balance == 2000 and wallet.merchant_id == tenant.merchant.pk


def test_statement_filters(tenant: Tenant) -> None:
    topup(tenant.customer, "100.00", "k1")
    wallet = wallet_account(tenant.customer)
    ledger.pay_merchant(source=wallet, money=kes("30.00"), idempotency_key="k2")
    rows = list(selectors.statement(wallet))
    assert [(p.amount, p.balance_after) for p in rows] == [(-3000, 7000), (10000, 10000)]
    assert [p.amount for p in selectors.statement(wallet, direction="credit")] == [10000]
    assert [p.amount for p in selectors.statement(wallet, direction="debit")] == [-3000]
    assert [p.amount for p in selectors.statement(wallet, cause_type="payment")] == [10000]
    assert selectors.balance_of(wallet.pk) == kes("70.00")
    with pytest.raises(ValueError):
        selectors.statement(wallet, direction="sideways")
