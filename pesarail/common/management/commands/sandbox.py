"""``pesarail sandbox --provider mpesa_ke --port N``: a provider simulator on its own port.

Any client of that provider works against it by changing only its base URL.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

PROVIDERS = ("mpesa_ke",)


class Command(BaseCommand):
    help = "Run a provider simulator (offline sandbox) on 127.0.0.1."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--provider", default="mpesa_ke", choices=PROVIDERS)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8089)
        parser.add_argument("--auto-answer", type=float, default=None, metavar="SECONDS",
                            help="seconds before an unanswered prompt answers by itself")
        parser.add_argument("--control-token", default=None,
                            help="require X-Sandbox-Token on the /_sandbox/ control API")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["provider"] != "mpesa_ke":
            raise CommandError(f"no simulator for {options['provider']!r}")
        from pesarail.sandbox import daraja

        argv = ["--host", options["host"], "--port", str(options["port"])]
        if options["auto_answer"] is not None:
            argv += ["--auto-answer", str(options["auto_answer"])]
        if options["control_token"]:
            argv += ["--control-token", options["control_token"]]
        daraja.main(argv)
