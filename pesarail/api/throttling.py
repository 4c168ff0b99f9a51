"""Rate limits per API key / customer token (per client IP when unauthenticated)."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from pesarail.api.permissions import principal_of


class PrincipalRateThrottle(SimpleRateThrottle):
    scope = "principal"

    def get_cache_key(self, request: Request, view: Any) -> str:
        principal = principal_of(request)
        ident = principal.throttle_id if principal else f"ip:{self.get_ident(request)}"
        return f"throttle:{self.scope}:{ident}"


class LoginRateThrottle(SimpleRateThrottle):
    """Slows password guessing on the customer login endpoint (per client IP)."""

    scope = "login"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return f"throttle:{self.scope}:{self.get_ident(request)}"
