from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "pesarail.ledger"
    label = "ledger"
    verbose_name = "Ledger"
