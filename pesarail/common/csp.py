"""The admin's relaxed Content Security Policy.

The site-wide policy (settings ``SECURE_CSP``) allows no inline code. The admin theme
(unfold) uses Alpine.js, which evaluates expressions and sets inline styles, so under
``/admin/`` only we allow ``'unsafe-eval'`` and inline styles. Still nothing third party.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.csp import CSP

ADMIN_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.UNSAFE_INLINE, CSP.UNSAFE_EVAL],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.SELF],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}


class AdminCspMiddleware:
    """Place after Django's ContentSecurityPolicyMiddleware (it runs first on the way out)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith("/admin/"):
            response._csp_config = ADMIN_CSP  # type: ignore[attr-defined]
        return response
