"""Root URLconf."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.defaults import page_not_found
from drf_spectacular.views import SpectacularAPIView

from pesarail.api import errors
from pesarail.api.docs_views import SwaggerView
from pesarail.common.views import healthz, metrics_view

api_v1 = [
    path("", include("pesarail.tenants.urls")),
    path("", include("pesarail.providers.urls")),
    path("", include("pesarail.wallets.urls")),
    path("", include("pesarail.payments.urls")),
    path("", include("pesarail.checkout.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/v1/", include(api_v1)),
    path("hooks/", include("pesarail.payments.hooks_urls")),
    path("pay/", include("pesarail.checkout.web_urls")),
    path("sandbox/phone/", include("pesarail.sandbox_phone.urls")),
    path("admin/", admin.site.urls),
]

_JSON_PREFIXES = ("/api/", "/hooks/")


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith(_JSON_PREFIXES):
        return errors.not_found(request, exception)
    return page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(_JSON_PREFIXES):
        return errors.server_error(request)
    from django.views.defaults import server_error

    return server_error(request)
