from django.apps import AppConfig


class SandboxPhoneConfig(AppConfig):
    name = "pesarail.sandbox_phone"
    label = "sandbox_phone"
    verbose_name = "Sandbox phone"
