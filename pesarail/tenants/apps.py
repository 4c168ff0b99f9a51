from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "pesarail.tenants"
    label = "tenants"
    verbose_name = "Merchants"
