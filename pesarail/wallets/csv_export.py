"""Streaming CSV of wallet transactions: rows come from a server-side cursor and go out as
they are produced, so memory stays constant however long the history is."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from typing import Any

from django.db.models import QuerySet
from rest_framework.renderers import BaseRenderer

from pesarail.common.money import Money
from pesarail.ledger.models import Posting

HEADER = ["id", "created_at", "direction", "amount", "currency", "balance_after",
          "cause_type", "cause_id", "memo", "entry"]
CHUNK = 1000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class CSVRenderer(BaseRenderer):
    """Lets content negotiation accept ``?format=csv`` / ``Accept: text/csv``. The view
    streams the body itself; errors are rendered as JSON (see the view's
    ``finalize_response``)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: Mapping[str, Any] | None = None) -> bytes:
        raise NotImplementedError("CSV responses are streamed by the view")


class _Echo:
    def write(self, value: str) -> str:
        return value


def _safe(text: str) -> str:
    """Neutralise spreadsheet formulas in free text (CSV injection)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def rows(queryset: QuerySet[Posting]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(HEADER)
    values = queryset.values_list(
        "id", "created_at", "amount", "currency", "balance_after", "entry__cause_type",
        "entry__kind", "entry__cause_id", "entry_id", "entry__memo",
    )
    for (pk, created_at, amount, currency, balance_after, cause_type, kind, cause_id,
         entry_id, memo) in values.iterator(chunk_size=CHUNK):
        yield writer.writerow([
            pk,
            created_at.isoformat(),
            "credit" if amount > 0 else "debit",
            Money(abs(amount), currency).to_decimal_string(),
            currency,
            Money(balance_after, currency).to_decimal_string(),
            _safe(cause_type or kind),
            _safe(cause_id or entry_id),
            _safe(memo),
            entry_id,
        ])
