"""Zero-sum constraint trigger and append-only guards (see pesarail.ledger.db_guards)."""

from django.db import migrations

from pesarail.ledger import db_guards


def forwards(apps, schema_editor):
    db_guards.install(schema_editor)


def backwards(apps, schema_editor):
    db_guards.uninstall(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
