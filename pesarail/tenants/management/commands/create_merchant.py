from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from pesarail.tenants import services


class Command(BaseCommand):
    help = "Create a merchant and its first secret API key (the key is printed once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--country", default="KE")
        parser.add_argument("--currency", default="KES")
        parser.add_argument("--live", action="store_true", help="create a live key")
        parser.add_argument("--json", action="store_true", help="print JSON only")

    def handle(self, *args: Any, **options: Any) -> None:
        merchant, new = services.create_merchant(
            options["name"],
            country=options["country"],
            default_currency=options["currency"],
            key_mode="live" if options["live"] else "test",
        )
        if options["json"]:
            self.stdout.write(json.dumps({"merchant_id": merchant.pk, "api_key": new.secret}))
            return
        self.stdout.write(f"merchant: {merchant.name} ({merchant.pk})")
        self.stdout.write(f"api key:  {new.secret}")
        self.stdout.write("The key is shown once; only its digest is stored.")
