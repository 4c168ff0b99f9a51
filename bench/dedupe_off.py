"""Bench only: pesarail's web app with callback dedupe switched off, to price idempotency.

S2 measures the callback path twice: as shipped, and "the same path with dedupe off"
(reference/benchmarks.md). pesarail has no switch for that and must not get one, so this
module switches it off **in its own process only**, by patching two names after the
real app is imported:

* ``pesarail.payments.callbacks.already_received`` -> always False (the pre-check query
  on ``CallbackRecord.dedupe_key``);
* ``pesarail.payments.services.apply_result`` -> the original called with
  ``dedupe_key=None`` (the key is not claimed in a savepoint).

Money stays safe without them: a second success for an attempt that already succeeded
is IGNORED under the attempt's row lock, and the ledger has a unique key per provider
payment. What changes is the callback's status (``ignored`` instead of ``duplicate``) and
its cost.

``python -m bench.dedupe_off --port N`` serves it exactly as ``pesarail serve`` does
(the same command, so the same gunicorn gthread configuration, ``PESARAIL_WORKERS`` /
``PESARAIL_THREADS`` defaults and settings); the patches are made in the gunicorn master
before its workers fork. ``bench.dedupe_off:application`` is the patched WSGI app for
any other server. Never import this module in the app or its tests.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from typing import Any

_MARK = "_bench_dedupe_off"


def switch_dedupe_off() -> None:
    """Patch the two dedupe steps of the callback path in this process (idempotent).
    Django must be set up."""
    from pesarail.payments import callbacks, services

    if getattr(services.apply_result, _MARK, False):
        return
    if not callable(getattr(callbacks, "already_received", None)):
        raise SystemExit("bench.dedupe_off: pesarail.payments.callbacks.already_received is "
                         "gone; update bench/dedupe_off.py to the callback path")
    original = services.apply_result

    @functools.wraps(original)
    def apply_result_without_dedupe(*args: Any, **kwargs: Any) -> Any:
        kwargs["dedupe_key"] = None
        return original(*args, **kwargs)

    def never_received(provider: str, dedupe_key: str) -> bool:
        return False

    setattr(apply_result_without_dedupe, _MARK, True)
    services.apply_result = apply_result_without_dedupe
    callbacks.already_received = never_received
    print("bench.dedupe_off: callback dedupe is OFF in this process (bench only)",
          file=sys.stderr, flush=True)


def __getattr__(name: str) -> Any:
    """``application``: the real WSGI app, with dedupe off (built on first access, so
    that ``main`` can set the environment before Django is imported)."""
    if name != "application":
        raise AttributeError(name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pesarail.settings.production")
    from pesarail.wsgi import application

    switch_dedupe_off()
    return application


def main(argv: list[str] | None = None) -> int:
    """``pesarail serve`` with dedupe off: the options are ``pesarail serve``'s."""
    from pesarail import cli

    args = list(sys.argv[1:] if argv is None else argv)
    # what `pesarail serve` sets before Django starts (pesarail.cli.main)
    os.environ["DJANGO_SETTINGS_MODULE"] = cli.settings_module_for("serve")
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pesarail-metrics-")
    import django

    django.setup()
    switch_dedupe_off()
    return cli.main(["serve", *args])


if __name__ == "__main__":
    sys.exit(main())
