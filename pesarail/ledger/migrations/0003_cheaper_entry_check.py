"""The zero-sum/currency check in one query (it runs at every commit, with the account
locks still held)."""

from django.db import migrations

from pesarail.ledger import db_guards


def forwards(apps, schema_editor):
    db_guards.replace_check_function(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0002_db_guards")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=True)]
