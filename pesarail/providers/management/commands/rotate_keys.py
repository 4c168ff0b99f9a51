"""``pesarail rotate-keys``: re-encrypt every encrypted column under the newest key.

Rotation: generate a key (``pesarail generate-encryption-key``), put it FIRST in
PESARAIL_ENCRYPTION_KEYS (keep the old keys after it), restart, run this command, then
remove the old keys. Safe to run any number of times: values already under the newest
key are left alone. Each value is swapped with a compare-and-set UPDATE, so a row
written meanwhile by the application is not overwritten.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from pesarail.providers.crypto import DecryptionError, encrypted_fields, is_current, rotate


class Command(BaseCommand):
    help = "Re-encrypt every encrypted value under the newest PESARAIL_ENCRYPTION_KEYS key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true",
                            help="Count what would be re-encrypted; change nothing.")
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        batch: int = max(1, options["batch_size"])
        totals = {"rotated": 0, "current": 0, "failed": 0}
        quote = connection.ops.quote_name
        for model, field in encrypted_fields():
            table = quote(model._meta.db_table)
            column = quote(str(field.column))
            pk_column = quote(str(model._meta.pk.column))
            counts = {"rotated": 0, "current": 0, "failed": 0}
            last_pk: Any = None
            while True:
                with connection.cursor() as cursor:
                    where = f"WHERE {column} IS NOT NULL"
                    params: list[Any] = []
                    if last_pk is not None:
                        where += f" AND {pk_column} > %s"
                        params.append(last_pk)
                    cursor.execute(
                        f"SELECT {pk_column}, {column} FROM {table} {where} "  # noqa: S608
                        f"ORDER BY {pk_column} LIMIT %s", [*params, batch],
                    )
                    rows = cursor.fetchall()
                if not rows:
                    break
                last_pk = rows[-1][0]
                for pk, ciphertext in rows:
                    if is_current(ciphertext):
                        counts["current"] += 1
                        continue
                    try:
                        fresh = rotate(ciphertext)
                    except DecryptionError:
                        counts["failed"] += 1
                        self.stderr.write(f"{model._meta.label}.{field.name} pk={pk}: cannot "
                                          "decrypt with any configured key")
                        continue
                    counts["rotated"] += 1
                    if dry_run:
                        continue
                    with transaction.atomic(), connection.cursor() as cursor:
                        cursor.execute(
                            f"UPDATE {table} SET {column} = %s "  # noqa: S608
                            f"WHERE {pk_column} = %s AND {column} = %s",
                            [fresh, pk, ciphertext],
                        )
            label = f"{model._meta.label}.{field.name}"
            self.stdout.write(f"{label}: {counts['rotated']} re-encrypted, "
                              f"{counts['current']} already current, {counts['failed']} failed"
                              + (" (dry run)" if dry_run else ""))
            for key, value in counts.items():
                totals[key] += value
        self.stdout.write(f"total: {totals['rotated']} re-encrypted, {totals['current']} "
                          f"already current, {totals['failed']} failed"
                          + (" (dry run)" if dry_run else ""))
        if totals["failed"]:
            raise CommandError(f"{totals['failed']} value(s) could not be decrypted; keep the "
                               "key that encrypted them in PESARAIL_ENCRYPTION_KEYS.")
