from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "pesarail.api"
    label = "api"
    verbose_name = "API plumbing"
