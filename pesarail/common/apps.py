from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "pesarail.common"
    label = "common"

    def ready(self) -> None:
        from pesarail.common.logging import configure_logging

        configure_logging()
