"""The only code that writes the ledger: post, hold, settle, release, reverse.

Every write follows one recipe, in one database transaction:

1. validate in Python (two or more postings, none zero, one currency, sum zero, one
   merchant, the accounts' currency);
2. claim the idempotency key by inserting the entry (or hold) inside a savepoint; when a
   concurrent request already holds the key, the INSERT waits for it and then fails, the
   savepoint is rolled back and the winner's entry is returned instead;
3. lock every touched account with ``SELECT ... FOR UPDATE`` *in primary-key order*
   (one global order, so two writers can never wait on each other in a cycle);
4. compute the new balances from the locked rows, refuse with
   :class:`InsufficientFunds` (HTTP 422) when an account that may not go negative would
   have ``balance < held``, write the postings (each with ``balance_after`` and its
   per-account ``sequence``) and update the account rows.

The database backs this up: CHECK constraints (amount != 0, ``allow_negative OR
balance >= held``), unique keys, a unique ``(account, sequence)`` and, on PostgreSQL, a
deferred constraint trigger that refuses to commit an unbalanced entry or a posting
whose currency differs from its account's.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from pesarail.common.errors import Conflict, Unprocessable, ValidationFailed
from pesarail.common.money import Money, MoneyError, parse_currency
from pesarail.ledger.models import (
    ALLOW_NEGATIVE,
    Account,
    AccountKind,
    EntryKind,
    Hold,
    HoldState,
    JournalEntry,
    Posting,
)

__all__ = [
    "IdempotencyConflict",
    "InsufficientFunds",
    "Leg",
    "account_created",
    "ensure_account",
    "get_or_create_account",
    "hold",
    "pay_merchant",
    "post",
    "record_provider_payment",
    "release_hold",
    "reverse_entry",
    "settle_hold",
    "transfer",
]

#: Sent (inside the creating transaction) when a new account row is created, with
#: ``account=``. The wallets app listens to give every customer wallet account a Wallet.
account_created = Signal()

MAX_KEY_LENGTH = 255

# Called by _write with the locked accounts and the saved entry, before the postings.
_OnLocked = Callable[[dict[str, Account], JournalEntry], None]


class InsufficientFunds(Unprocessable):
    code = "insufficient_funds"


class IdempotencyConflict(Conflict):
    code = "idempotency_key_reused"


@dataclass(frozen=True)
class Leg:
    """One side of an entry: ``amount`` minor units, credit > 0, debit < 0."""

    account: Account
    amount: int


# --------------------------------------------------------------------------- accounts


def get_or_create_account(
    kind: str,
    merchant_id: str,
    currency: str,
    customer_id: str | None = None,
    provider_account_id: str | None = None,
) -> Account:
    """The one account for this owner and currency, created on first use.

    Race-safe: the unique constraints decide, and the loser of a concurrent create reads
    the winner's row. ``customer_id`` is required for (and only for) customer wallets,
    ``provider_account_id`` for (and only for) provider clearing accounts.
    """
    return ensure_account(kind, merchant_id, currency, customer_id=customer_id,
                          provider_account_id=provider_account_id)[0]


def ensure_account(
    kind: str,
    merchant_id: str,
    currency: str,
    *,
    customer_id: str | None = None,
    provider_account_id: str | None = None,
) -> tuple[Account, bool]:
    """:func:`get_or_create_account`, also saying whether this call created the row."""
    if kind not in AccountKind.values:
        raise ValidationFailed(f"unknown account kind {kind!r}")
    currency = _currency(currency)
    is_wallet = kind == AccountKind.CUSTOMER_WALLET
    is_clearing = kind == AccountKind.PROVIDER_CLEARING
    if is_wallet != bool(customer_id):
        raise ValidationFailed("customer_id is required for customer wallets and only there")
    if is_clearing != bool(provider_account_id):
        raise ValidationFailed(
            "provider_account_id is required for provider clearing accounts and only there"
        )
    if provider_account_id and len(provider_account_id) > 64:
        raise ValidationFailed("provider_account_id is longer than 64 characters")
    lookup: dict[str, object] = {"kind": kind, "merchant_id": merchant_id, "currency": currency,
                                 "customer_id": customer_id or None,
                                 "provider_account_id": provider_account_id or ""}
    existing = Account.objects.filter(**lookup).first()
    if existing is not None:
        return existing, False
    if is_wallet and not _customer_of_merchant(customer_id or "", merchant_id):
        raise ValidationFailed("the customer does not belong to this merchant")
    try:
        with transaction.atomic():
            account = Account.objects.create(allow_negative=ALLOW_NEGATIVE[kind], **lookup)
            account_created.send(sender=Account, account=account)
    except IntegrityError:
        found = Account.objects.filter(**lookup).first()
        if found is None:
            raise
        return found, False
    return account, True


def _customer_of_merchant(customer_id: str, merchant_id: str) -> bool:
    # Through the foreign key's model, so the ledger imports no tenants code.
    customer_model = Account._meta.get_field("customer").related_model
    assert isinstance(customer_model, type)
    manager = customer_model._default_manager
    return bool(manager.filter(pk=customer_id, merchant_id=merchant_id).exists())


# ------------------------------------------------------------------------------ post


def post(
    *,
    legs: Sequence[Leg],
    currency: str,
    idempotency_key: str,
    kind: str = EntryKind.MANUAL,
    cause_type: str = "",
    cause_id: str = "",
    memo: str = "",
) -> JournalEntry:
    """Write one balanced entry (the general form of every money movement).

    Returns the existing entry when ``idempotency_key`` was used before for the same
    postings; raises :class:`IdempotencyConflict` when it was used for different ones,
    :class:`InsufficientFunds` (nothing written) when an account would be overdrawn.
    """
    if kind == EntryKind.REVERSAL:
        raise ValidationFailed("use reverse_entry() to reverse an entry")
    currency = _currency(currency)
    _check_legs(legs, currency)
    entry = JournalEntry(
        merchant_id=legs[0].account.merchant_id, kind=kind, currency=currency,
        idempotency_key=_key(idempotency_key), cause_type=cause_type[:40],
        cause_id=cause_id[:100], memo=memo[:255],
    )
    return _write(entry, legs)


def record_provider_payment(
    *,
    merchant_id: str,
    provider_account_id: str,
    money: Money,
    idempotency_key: str,
    customer_id: str | None = None,
    memo: str = "",
    cause_type: str = "payment",
    cause_id: str = "",
) -> JournalEntry:
    """Money received through a provider: debit the provider clearing account, credit the
    customer's wallet (``customer_id``) or else the merchant settlement account.

    Exactly once: the same ``idempotency_key`` returns the first entry, and (when
    ``cause_id`` is given) a second credit for the same ``(cause_type, cause_id)`` is
    refused by a unique constraint and answered with the first entry too.
    """
    _positive(money)
    clearing_kind = (AccountKind.PROVIDER_CLEARING, None, provider_account_id)
    target_kind = ((AccountKind.CUSTOMER_WALLET, customer_id, "") if customer_id
                   else (AccountKind.MERCHANT_SETTLEMENT, None, ""))
    # Both accounts in one read (they exist after a merchant's first payment).
    found = {(a.kind, a.customer_id, a.provider_account_id): a
             for a in Account.objects.filter(
                 Q(kind=clearing_kind[0], provider_account_id=provider_account_id)
                 | Q(kind=target_kind[0], customer_id=customer_id),
                 merchant_id=merchant_id, currency=money.currency)}
    clearing = found.get(clearing_kind) or get_or_create_account(
        AccountKind.PROVIDER_CLEARING, merchant_id, money.currency,
        provider_account_id=provider_account_id)
    target = found.get(target_kind) or get_or_create_account(
        target_kind[0], merchant_id, money.currency, customer_id=customer_id)
    legs = [Leg(clearing, -money.minor), Leg(target, money.minor)]
    entry = JournalEntry(
        merchant_id=merchant_id, kind=EntryKind.PROVIDER_PAYMENT, currency=money.currency,
        idempotency_key=_key(idempotency_key), cause_type=cause_type[:40],
        cause_id=cause_id[:100], memo=memo[:255],
    )
    return _write(entry, legs)


def transfer(
    *,
    source: Account,
    destination: Account,
    money: Money,
    idempotency_key: str,
    memo: str = "",
    cause_type: str = "transfer",
    cause_id: str = "",
) -> JournalEntry:
    """Move ``money`` from ``source`` to ``destination`` (same merchant, same currency)."""
    _positive(money)
    if source.pk == destination.pk:
        raise ValidationFailed("cannot transfer to the same account")
    if source.merchant_id != destination.merchant_id:
        raise Unprocessable("both accounts must belong to the same merchant",
                            code="merchant_mismatch")
    return _simple(EntryKind.TRANSFER, source, destination, money, idempotency_key,
                   memo=memo, cause_type=cause_type, cause_id=cause_id)


def pay_merchant(
    *,
    source: Account,
    money: Money,
    idempotency_key: str,
    memo: str = "",
    cause_type: str = "wallet_payment",
    cause_id: str = "",
) -> JournalEntry:
    """Pay the merchant from a customer wallet: debit the wallet, credit the merchant's
    settlement account in the same currency."""
    _positive(money)
    if source.kind != AccountKind.CUSTOMER_WALLET:
        raise ValidationFailed("only a customer wallet can pay the merchant")
    settlement = get_or_create_account(AccountKind.MERCHANT_SETTLEMENT, source.merchant_id,
                                       money.currency)
    return _simple(EntryKind.WALLET_PAYMENT, source, settlement, money, idempotency_key,
                   memo=memo, cause_type=cause_type, cause_id=cause_id)


def reverse_entry(entry: JournalEntry, idempotency_key: str, *, memo: str = "") -> JournalEntry:
    """Undo ``entry`` with a new entry of the opposite postings (postings are never
    changed). An entry is reversed at most once: a second call returns the reversal. The
    reversal is refused like any debit if it would overdraw an account (e.g. a top-up
    already spent)."""
    postings = list(Posting.objects.filter(entry=entry).select_related("account")
                    .order_by("id"))
    legs = [Leg(p.account, -p.amount) for p in postings]
    new = JournalEntry(
        merchant_id=entry.merchant_id, kind=EntryKind.REVERSAL, currency=entry.currency,
        idempotency_key=_key(idempotency_key), cause_type="reversal", cause_id=entry.pk,
        memo=(memo or f"Reversal of {entry.pk}")[:255], reverses=entry,
    )
    _check_legs(legs, entry.currency)
    return _write(new, legs)


# ----------------------------------------------------------------------------- holds


def hold(
    account: Account,
    money: Money,
    *,
    idempotency_key: str,
    memo: str = "",
    cause_type: str = "hold",
    cause_id: str = "",
) -> Hold:
    """Reserve ``money`` on ``account``: ``available`` drops, ``balance`` stays. Refused
    with :class:`InsufficientFunds` when the account may not go negative and has less
    available. Idempotent by key."""
    _positive(money)
    if money.currency != account.currency:
        raise ValidationFailed(f"the account is in {account.currency}, not {money.currency}")
    key = _key(idempotency_key)

    def same(existing: Hold) -> Hold:
        if existing.account_id != account.pk or existing.amount != money.minor:
            raise IdempotencyConflict("this idempotency key was used for another hold")
        return existing

    found = Hold.objects.filter(idempotency_key=key).first()
    if found is not None:
        return same(found)
    try:
        with transaction.atomic():
            new = Hold.objects.create(account_id=account.pk, currency=money.currency,
                                      amount=money.minor, idempotency_key=key,
                                      memo=memo[:255], cause_type=cause_type[:40],
                                      cause_id=cause_id[:100])
            locked = _lock([account.pk])[account.pk]
            locked.held += money.minor
            _check_funds([locked])
            _save_accounts([locked])
    except IntegrityError:
        found = Hold.objects.filter(idempotency_key=key).first()
        if found is None:
            raise
        return same(found)
    _copy_back([locked], [account])
    return new


def settle_hold(
    hold: Hold,
    *,
    destination: Account,
    idempotency_key: str,
    amount: Money | None = None,
    memo: str = "",
) -> JournalEntry:
    """Turn an active hold into a posting: debit the held account by ``amount`` (default:
    the whole hold; a smaller amount frees the rest) and credit ``destination``. The
    hold moves active -> settled by a conditional UPDATE, so it settles at most once;
    settling it again with the same key returns the same entry."""
    money = amount or Money(hold.amount, hold.currency)
    _positive(money)
    if money.currency != hold.currency or money.minor > hold.amount:
        raise ValidationFailed("the settlement must be in the hold's currency and not more "
                               "than the hold")
    if destination.pk == hold.account_id:
        raise ValidationFailed("cannot settle a hold into the held account")
    source = Account.objects.get(pk=hold.account_id)
    legs = [Leg(source, -money.minor), Leg(destination, money.minor)]
    _check_legs(legs, money.currency)
    entry = JournalEntry(
        merchant_id=source.merchant_id, kind=EntryKind.HOLD_SETTLEMENT,
        currency=money.currency, idempotency_key=_key(idempotency_key),
        cause_type=hold.cause_type or "hold", cause_id=hold.cause_id or hold.pk,
        memo=(memo or hold.memo)[:255],
    )

    def on_locked(accounts: dict[str, Account], saved: JournalEntry) -> None:
        changed = Hold.objects.filter(pk=hold.pk, state=HoldState.ACTIVE).update(
            state=HoldState.SETTLED, settlement_entry=saved, resolved_at=timezone.now()
        )
        if changed != 1:
            state = Hold.objects.values_list("state", flat=True).get(pk=hold.pk)
            raise Conflict(f"the hold is {state}, not active", code="hold_not_active")
        accounts[hold.account_id].held -= hold.amount

    result = _write(entry, legs, on_locked=on_locked)
    hold.refresh_from_db()
    return result


def release_hold(hold: Hold) -> Hold:
    """Free an active hold (available goes back up). Releasing a released hold is a
    no-op; releasing a settled one is a :class:`Conflict`."""
    with transaction.atomic():
        locked = _lock([hold.account_id])[hold.account_id]
        changed = Hold.objects.filter(pk=hold.pk, state=HoldState.ACTIVE).update(
            state=HoldState.RELEASED, resolved_at=timezone.now()
        )
        if changed == 1:
            locked.held -= hold.amount
            _save_accounts([locked])
    hold.refresh_from_db()
    if hold.state != HoldState.RELEASED:
        raise Conflict(f"the hold is {hold.state}; it cannot be released",
                       code="hold_not_active")
    return hold


# -------------------------------------------------------------------------- internals


def _currency(code: str) -> str:
    try:
        return parse_currency(code)
    except MoneyError as exc:
        raise ValidationFailed(str(exc), fields={"currency": [str(exc)]}) from exc


def _key(key: str) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(f"an idempotency key of 1-{MAX_KEY_LENGTH} characters is "
                               "required")
    return key


def _positive(money: Money) -> None:
    if not isinstance(money, Money) or money.minor <= 0:
        raise ValidationFailed("the amount must be a positive Money",
                               fields={"amount": ["Must be greater than zero."]})


def _check_legs(legs: Sequence[Leg], currency: str) -> None:
    if len(legs) < 2:
        raise ValidationFailed("an entry needs at least two postings")
    merchants = {leg.account.merchant_id for leg in legs}
    if len(merchants) != 1:
        raise ValidationFailed("all accounts of an entry must belong to one merchant")
    for leg in legs:
        if isinstance(leg.amount, bool) or not isinstance(leg.amount, int) or leg.amount == 0:
            raise ValidationFailed("every posting needs a non-zero integer amount")
        if leg.account.currency != currency:
            raise ValidationFailed(
                f"account {leg.account.pk} is in {leg.account.currency}, not {currency}",
                code="currency_mismatch",
            )
        # Money() enforces the global cap per posting.
        Money(leg.amount, currency)
    if sum(leg.amount for leg in legs) != 0:
        raise ValidationFailed("the postings of an entry must sum to zero")


def _simple(kind: str, source: Account, destination: Account, money: Money, key: str, *,
            memo: str, cause_type: str, cause_id: str) -> JournalEntry:
    legs = [Leg(source, -money.minor), Leg(destination, money.minor)]
    _check_legs(legs, money.currency)
    entry = JournalEntry(
        merchant_id=source.merchant_id, kind=kind, currency=money.currency,
        idempotency_key=_key(key), cause_type=cause_type[:40], cause_id=cause_id[:100],
        memo=memo[:255],
    )
    return _write(entry, legs)


def _signature(pairs: Iterable[tuple[str, int]]) -> Counter[tuple[str, int]]:
    return Counter(pairs)


def _same_or_conflict(existing: JournalEntry, entry: JournalEntry,
                      legs: Sequence[Leg]) -> JournalEntry:
    """A replay must describe the same movement; anything else is a client bug."""
    stored = _signature(Posting.objects.filter(entry=existing)
                        .values_list("account_id", "amount"))
    wanted = _signature((leg.account.pk, leg.amount) for leg in legs)
    if stored != wanted or existing.kind != entry.kind:
        raise IdempotencyConflict(
            "this idempotency key (or provider payment) was already used for a different "
            "movement of money"
        )
    return existing


def _existing(entry: JournalEntry) -> JournalEntry | None:
    found = JournalEntry.objects.filter(idempotency_key=entry.idempotency_key).first()
    if found is None and entry.kind == EntryKind.PROVIDER_PAYMENT and entry.cause_id:
        found = JournalEntry.objects.filter(
            kind=EntryKind.PROVIDER_PAYMENT, cause_type=entry.cause_type,
            cause_id=entry.cause_id,
        ).first()
    if found is None and entry.reverses_id:
        found = JournalEntry.objects.filter(reverses_id=entry.reverses_id).first()
    return found


def _write(entry: JournalEntry, legs: Sequence[Leg], *, on_locked: _OnLocked | None = None
           ) -> JournalEntry:
    # No look-up first: the unique keys (idempotency key, one credit per provider
    # payment, one reversal per entry) decide, and a first write is the common case. A
    # replay fails the INSERT below and is answered from the stored entry.
    try:
        # Nested in a caller's transaction this is a savepoint, so either way a failure
        # rolls back exactly this entry.
        with transaction.atomic():
            entry.save(force_insert=True)  # claims the key (waits for a concurrent claim)
            accounts = _lock(leg.account.pk for leg in legs)
            if on_locked is not None:
                on_locked(accounts, entry)
            now = timezone.now()
            postings = []
            for leg in legs:
                account = accounts[leg.account.pk]
                account.balance += leg.amount
                account.version += 1
                postings.append(Posting(
                    entry=entry, account_id=account.pk, currency=entry.currency,
                    amount=leg.amount, balance_after=account.balance,
                    sequence=account.version, created_at=now,
                ))
            touched = list(accounts.values())
            _check_funds(touched)
            Posting.objects.bulk_create(postings)
            _save_accounts(touched)
    except IntegrityError:
        # A concurrent writer claimed the key first: answer with its entry.
        existing = _existing(entry)
        if existing is None:
            raise
        return _same_or_conflict(existing, entry, legs)
    _copy_back(touched, [leg.account for leg in legs])
    return entry


def _lock(ids: Iterable[str]) -> dict[str, Account]:
    """Lock the accounts, always in primary-key order (the one global lock order)."""
    wanted = sorted(set(ids))
    rows = list(Account.objects.select_for_update().filter(pk__in=wanted).order_by("pk"))
    if len(rows) != len(wanted):
        raise ValidationFailed("unknown account")
    return {row.pk: row for row in rows}


def _check_funds(accounts: Iterable[Account]) -> None:
    for account in accounts:
        if not account.allow_negative and account.balance < account.held:
            raise InsufficientFunds(
                "Insufficient funds: the amount is more than the available balance.",
                fields={"amount": ["More than the available balance."]},
            )


def _save_accounts(accounts: Iterable[Account]) -> None:
    """Write the new balance, held, version of every touched (and locked) account: one
    parameterised UPDATE per row, sent as a batch (the ORM's ``bulk_update`` compiles a
    ``CASE`` statement on every call, which cost more than the database work)."""
    rows = list(accounts)
    now = timezone.now()
    for account in rows:
        account.updated_at = now
    stamp = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.executemany(_update_account_sql(),
                           [(a.balance, a.held, a.version, stamp, a.pk) for a in rows])


@functools.cache
def _update_account_sql() -> str:
    quote = connection.ops.quote_name
    columns: dict[str, str] = {f.name: str(f.column) for f in Account._meta.concrete_fields}
    sets = ", ".join(f"{quote(columns[name])} = %s"
                     for name in ("balance", "held", "version", "updated_at"))
    # Only model metadata (table and column names) goes into the text; values are
    # parameters.
    return (f"UPDATE {quote(str(Account._meta.db_table))} SET {sets} "  # noqa: S608
            f"WHERE {quote(columns['id'])} = %s")


def _copy_back(fresh: Iterable[Account], stale: Iterable[Account]) -> None:
    """Refresh the caller's instances so they do not keep showing old balances."""
    by_id = {account.pk: account for account in fresh}
    for account in stale:
        source = by_id.get(account.pk)
        if source is not None and account is not source:
            account.balance, account.held = source.balance, source.held
            account.version = source.version

