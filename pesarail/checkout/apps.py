from django.apps import AppConfig


class CheckoutConfig(AppConfig):
    name = "pesarail.checkout"
    label = "checkout"
    verbose_name = "Checkout"
