"""Routes under ``/hooks/`` (provider callbacks; not part of the versioned API)."""

from django.urls import path

from pesarail.payments import hooks

urlpatterns = [
    path("<str:provider>/<str:token>/", hooks.provider_callback, name="provider-callback"),
    # The URL pesarail gives the provider per attempt (the attempt id matches a result
    # whose reference we never learned, e.g. after a push timeout).
    path("<str:provider>/<str:token>/<str:attempt>/", hooks.provider_callback,
         name="provider-callback-attempt"),
]
