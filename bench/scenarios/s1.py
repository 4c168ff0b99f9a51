"""S1: needs the payments app (issue in progress)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.run import Context, ScenarioReport


def run(ctx: Context) -> ScenarioReport:
    raise SystemExit("bench: S1 needs pesarail.payments (not landed yet)")
