"""``pesarail bench SCENARIO [--seconds N]``: run the benchmarks in ``bench/``.

The benchmarks (and the deliberately naive baseline they compare against) live in the
repository's ``bench/`` folder, which is never shipped in the package. This command only
finds that folder next to the installed ``pesarail`` package (an editable install or a
checkout) and hands over to ``bench.run``; without a checkout it says so.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import pesarail


def _checkout() -> Path | None:
    root = Path(pesarail.__file__).resolve().parent.parent
    return root if (root / "bench" / "run.py").is_file() else None


NO_CHECKOUT = (
    "pesarail bench: the benchmarks live in the repository's bench/ folder, which is not "
    "part of the installed package. Run them from a checkout of the repository: "
    "make bench (or .venv/bin/python -m bench.run S0)."
)


def run_bench(argv: list[str]) -> int:
    """Run ``bench.run.main(argv)``; needs no Django settings (the harness configures
    its own processes), so ``pesarail.cli`` may call it before settings load."""
    root = _checkout()
    if root is None:
        print(NO_CHECKOUT, file=sys.stderr)
        return 2
    sys.path.insert(0, str(root))
    from bench.run import main

    return int(main(argv))


class Command(BaseCommand):
    help = ("Run a benchmark scenario (S0 S1 S2 S3 S4 all) from the repository's bench/ "
            "folder; needs a git checkout of pesarail. See docs/performance.md.")
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("args", nargs="*", help="SCENARIO [--seconds N] ...")

    def run_from_argv(self, argv: list[str]) -> None:
        # Everything after "bench" goes to bench.run's own parser (its --help included).
        raise SystemExit(run_bench(argv[2:]))

    def handle(self, *args: Any, **options: Any) -> None:  # pragma: no cover
        raise CommandError("use run_from_argv")
