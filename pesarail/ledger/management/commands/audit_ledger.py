"""``pesarail audit-ledger``: check every ledger invariant; exit 1 with a report if one
fails (``--json`` for machines)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from pesarail.ledger.audit import run_audit


class Command(BaseCommand):
    help = ("Check the ledger's invariants on this database: zero-sum entries and "
            "currencies, balances = postings = last balance_after, no forbidden negative "
            "balance, holds, one credit per provider payment. Exits 1 when one fails.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        report = run_audit()
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self.stdout.write(report.render())
        if not report.ok:
            self.stderr.write(f"ledger audit failed: {', '.join(c.name for c in report.failures)}")
            raise SystemExit(1)
