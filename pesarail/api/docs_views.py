"""Swagger UI under the strict Content Security Policy: the page's one inline script and
style carry the request's CSP nonce; every asset is served locally (sidecar package)."""

from __future__ import annotations

from drf_spectacular.views import SpectacularSwaggerView


class SwaggerView(SpectacularSwaggerView):
    template_name = "api/swagger_ui.html"
