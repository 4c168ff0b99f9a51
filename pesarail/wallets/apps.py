from django.apps import AppConfig


class WalletsConfig(AppConfig):
    name = "pesarail.wallets"
    label = "wallets"
    verbose_name = "Wallets"

    def ready(self) -> None:
        from pesarail.ledger.services import account_created
        from pesarail.wallets.services import on_account_created

        account_created.connect(on_account_created, dispatch_uid="wallets.on_account_created")
