"""Routes under ``/hooks/`` (provider callbacks; not part of the versioned API)."""

from django.urls import path

from pesarail.payments import hooks

urlpatterns = [
    path("<str:provider>/<str:token>/", hooks.provider_callback, name="provider-callback"),
]
