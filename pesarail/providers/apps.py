from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "pesarail.providers"
    label = "providers"
    verbose_name = "Payment providers"
    default_auto_field = "django.db.models.BigAutoField"
