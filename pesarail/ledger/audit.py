"""Prove the ledger's invariants on a live database (``pesarail audit-ledger``).

Every check is a set-based query that returns the offending rows (a sample of them and a
count), so the audit costs a few scans however large the ledger is. On PostgreSQL the
checks run in one REPEATABLE READ READ ONLY transaction: they all see the same snapshot,
so postings committed while the audit runs cannot produce false alarms.

Other apps may add checks (e.g. "every successful payment has exactly one credit", which
needs the payments table the ledger does not know): list dotted paths of callables in the
setting ``PESARAIL_LEDGER_AUDIT_CHECKS``; each returns an iterable of :class:`Check`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    Count,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    Window,
)
from django.db.models.functions import Coalesce, RowNumber
from django.utils.module_loading import import_string

from pesarail.ledger import db_guards
from pesarail.ledger.models import (
    Account,
    AccountKind,
    EntryKind,
    Hold,
    HoldState,
    JournalEntry,
    Posting,
)

SAMPLE = 20


@dataclass
class Check:
    name: str
    description: str
    count: int = 0
    samples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.count == 0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "ok": self.ok,
                "count": self.count, "samples": self.samples}


@dataclass
class AuditReport:
    checks: list[Check]
    totals: dict[str, int]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "totals": self.totals,
                "checks": [check.as_dict() for check in self.checks]}

    def render(self) -> str:
        lines = [
            "Ledger audit: " + ("OK" if self.ok else f"FAILED ({len(self.failures)} checks)"),
            "  " + ", ".join(f"{name}={value}" for name, value in self.totals.items()),
        ]
        for check in self.checks:
            mark = "ok  " if check.ok else "FAIL"
            lines.append(f"[{mark}] {check.name}: {check.description}")
            if not check.ok:
                lines.append(f"       {check.count} offending row(s); first ones:")
                lines.extend(f"         - {sample}" for sample in check.samples)
        return "\n".join(lines)


def _check(name: str, description: str, queryset: QuerySet[Any],
           describe: Callable[[Any], str]) -> Check:
    check = Check(name, description)
    check.count = queryset.count()
    if check.count:
        check.samples = [describe(row) for row in queryset[:SAMPLE]]
    return check


def _entries_balanced() -> Check:
    qs = (JournalEntry.objects.annotate(n=Count("postings"),
                                        total=Coalesce(Sum("postings__amount"), Value(0)))
          .filter(Q(n__lt=2) | ~Q(total=0)).order_by("id").values("id", "n", "total"))
    return _check("entries_balanced",
                  "every journal entry has >= 2 postings summing to zero", qs,
                  lambda r: f"entry {r['id']}: {r['n']} posting(s), sum {r['total']}")


def _currencies_consistent() -> Check:
    qs = (Posting.objects.filter(~Q(currency=F("account__currency"))
                                 | ~Q(currency=F("entry__currency")))
          .order_by("id").values("id", "currency", "account__currency", "entry__currency"))
    return _check("currencies_consistent",
                  "posting currency = account currency = entry currency", qs,
                  lambda r: f"posting {r['id']}: {r['currency']} on a "
                            f"{r['account__currency']} account in a {r['entry__currency']} entry")


def _zero_sum_per_currency() -> Check:
    postings = (Posting.objects.values("currency").annotate(total=Sum("amount"))
                .exclude(total=0).order_by("currency"))
    accounts = (Account.objects.values("currency").annotate(total=Sum("balance"))
                .exclude(total=0).order_by("currency"))
    check = Check("zero_sum_per_currency",
                  "all postings, and all account balances, sum to zero per currency")
    samples = [f"{r['currency']}: postings sum to {r['total']}" for r in postings]
    samples += [f"{r['currency']}: account balances sum to {r['total']}" for r in accounts]
    check.count, check.samples = len(samples), samples[:SAMPLE]
    return check


def _balance_equals_postings() -> Check:
    totals = (Posting.objects.filter(account=OuterRef("pk")).order_by()
              .values("account").annotate(t=Sum("amount")).values("t"))
    counts = (Posting.objects.filter(account=OuterRef("pk")).order_by()
              .values("account").annotate(c=Count("id")).values("c"))
    last = Posting.objects.filter(account=OuterRef("pk")).order_by("-sequence")
    qs = (Account.objects
          .annotate(total=Coalesce(Subquery(totals), Value(0)),
                    n=Coalesce(Subquery(counts), Value(0)),
                    last_after=Coalesce(Subquery(last.values("balance_after")[:1]), Value(0)),
                    last_seq=Coalesce(Subquery(last.values("sequence")[:1]), Value(0)))
          .filter(~Q(balance=F("total")) | ~Q(balance=F("last_after"))
                  | ~Q(version=F("n")) | ~Q(version=F("last_seq")))
          .order_by("id").values("id", "balance", "total", "last_after", "version", "n"))
    return _check(
        "balance_matches_postings",
        "each account balance = the sum of its postings = the last balance_after "
        "(and version = number of postings)", qs,
        lambda r: f"account {r['id']}: balance {r['balance']}, postings sum {r['total']}, "
                  f"last balance_after {r['last_after']}, version {r['version']}, "
                  f"{r['n']} posting(s)")


def _running_balances() -> Check:
    running = Window(Sum("amount"), partition_by=[F("account_id")],
                     order_by=[F("sequence").asc()])
    position = Window(RowNumber(), partition_by=[F("account_id")],
                      order_by=[F("sequence").asc()])
    qs = (Posting.objects.annotate(running=running, position=position)
          .filter(~Q(balance_after=F("running")) | ~Q(sequence=F("position")))
          .order_by("account_id", "sequence")
          .values("id", "account_id", "sequence", "position", "balance_after", "running"))
    check = Check("history_consistent",
                  "every posting's balance_after is the running sum of its account's "
                  "postings, and sequences run 1, 2, 3...")
    rows = list(qs)  # filtering on a window cannot be counted in SQL; offenders are few
    check.count = len(rows)
    check.samples = [
        f"posting {r['id']} (account {r['account_id']} #{r['sequence']}, expected "
        f"#{r['position']}): balance_after {r['balance_after']}, running sum {r['running']}"
        for r in rows[:SAMPLE]
    ]
    return check


def _no_forbidden_negative() -> Check:
    qs = (Account.objects
          .filter(Q(allow_negative=False, balance__lt=F("held"))
                  | Q(allow_negative=False, balance__lt=0) | Q(held__lt=0)
                  | Q(kind=AccountKind.CUSTOMER_WALLET, allow_negative=True))
          .order_by("id").values("id", "kind", "balance", "held", "allow_negative"))
    return _check("no_forbidden_negative",
                  "no account that may not go negative has balance < held (or < 0)", qs,
                  lambda r: f"account {r['id']} ({r['kind']}): balance {r['balance']}, "
                            f"held {r['held']}, allow_negative={r['allow_negative']}")


def _held_matches_holds() -> Check:
    active = (Hold.objects.filter(account=OuterRef("pk"), state=HoldState.ACTIVE).order_by()
              .values("account").annotate(t=Sum("amount")).values("t"))
    qs = (Account.objects.annotate(active=Coalesce(Subquery(active), Value(0)))
          .exclude(held=F("active")).order_by("id").values("id", "held", "active"))
    return _check("held_matches_active_holds",
                  "each account's held amount = the sum of its active holds", qs,
                  lambda r: f"account {r['id']}: held {r['held']}, active holds {r['active']}")


def _one_credit_per_provider_payment() -> Check:
    duplicates = (JournalEntry.objects.filter(kind=EntryKind.PROVIDER_PAYMENT)
                  .exclude(cause_id="").values("cause_type", "cause_id")
                  .annotate(n=Count("id")).filter(n__gt=1).order_by("cause_type", "cause_id"))
    check = _check("one_credit_per_provider_payment",
                   "at most one provider-payment entry per cause", duplicates,
                   lambda r: f"{r['cause_type']}:{r['cause_id']} credited {r['n']} times")
    # Shape: exactly one debit, on a provider clearing account, and one credit.
    clearing_debits = Count("postings", filter=Q(
        postings__amount__lt=0, postings__account__kind=AccountKind.PROVIDER_CLEARING))
    malformed = (JournalEntry.objects.filter(kind=EntryKind.PROVIDER_PAYMENT)
                 .annotate(n=Count("postings"), debits=clearing_debits)
                 .exclude(n=2, debits=1).order_by("id").values("id", "n", "debits"))
    for row in malformed[:SAMPLE]:
        check.samples.append(f"entry {row['id']}: {row['n']} postings, "
                             f"{row['debits']} clearing debit(s)")
    check.count += malformed.count()
    check.samples = check.samples[:SAMPLE]
    return check


def _reversals_mirror_originals() -> Check:
    check = Check("reversals_mirror_originals",
                  "a reversal has exactly the opposite postings of the entry it reverses")
    reversals = (JournalEntry.objects.filter(kind=EntryKind.REVERSAL)
                 .values_list("id", "reverses_id"))
    for reversal_id, original_id in reversals.iterator(chunk_size=500):
        ids = [reversal_id, original_id]
        rows = Posting.objects.filter(entry_id__in=ids).values_list("entry_id", "account_id",
                                                                   "amount")
        original: Counter[tuple[str, int]] = Counter()
        mirrored: Counter[tuple[str, int]] = Counter()
        for entry_id, account_id, amount in rows:
            if entry_id == original_id:
                original[(account_id, -amount)] += 1
            else:
                mirrored[(account_id, amount)] += 1
        if original != mirrored:
            check.count += 1
            if len(check.samples) < SAMPLE:
                check.samples.append(f"reversal {reversal_id} does not mirror {original_id}")
    return check


def _guards_installed() -> Check:
    expected, present = db_guards.installed(connection)
    missing = sorted(expected - present)
    return Check("database_guards_installed",
                 "the zero-sum / append-only triggers are installed and enabled",
                 count=len(missing), samples=[f"missing trigger {name}" for name in missing])


CHECKS: tuple[Callable[[], Check], ...] = (
    _entries_balanced,
    _currencies_consistent,
    _zero_sum_per_currency,
    _balance_equals_postings,
    _running_balances,
    _no_forbidden_negative,
    _held_matches_holds,
    _one_credit_per_provider_payment,
    _reversals_mirror_originals,
    _guards_installed,
)


def _extra_checks() -> Iterable[Check]:
    for path in getattr(settings, "PESARAIL_LEDGER_AUDIT_CHECKS", ()):
        yield from import_string(path)()


def _totals() -> dict[str, int]:
    return {
        "accounts": Account.objects.count(),
        "entries": JournalEntry.objects.count(),
        "postings": Posting.objects.count(),
        "active_holds": Hold.objects.filter(state=HoldState.ACTIVE).count(),
    }


def run_audit() -> AuditReport:
    """Run every check against one consistent snapshot and return the report."""
    owns_transaction = not connection.in_atomic_block
    with transaction.atomic():
        if owns_transaction and connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # must be the transaction's first statement
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        checks = [check() for check in CHECKS]
        checks.extend(_extra_checks())
        return AuditReport(checks=checks, totals=_totals())
