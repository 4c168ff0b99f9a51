"""Request id and Prometheus metrics middleware."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import structlog
from django.http import HttpRequest, HttpResponse

from pesarail.common import metrics
from pesarail.common.ids import new_id

_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def canonical_route(route: str) -> str:
    """Router regexes (``^customers/(?P<pk>[^/.]+)/$``) -> ``customers/<pk>/``."""
    return _REGEX_GROUP.sub(r"<\1>", route).replace("^", "").replace("$", "")


_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9_\-.]{8,64}$")
REQUEST_ID_HEADER = "X-Request-ID"


class RequestIdMiddleware:
    """Give every request an id (a valid incoming ``X-Request-ID`` is kept), bind it to
    every log line, and return it on every response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.log = structlog.get_logger("pesarail.request")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else new_id("req")
        request.request_id = request_id  # type: ignore[attr-defined]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        # Not cleared on the way out: Django logs 4xx/5xx after the middleware chain
        # returns, and those lines should carry the id too. The next request clears it.
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        if not request.path.startswith(("/metrics", "/healthz", "/static/")):
            self.log.info(
                "request",
                request_id=request_id,
                method=request.method,
                path=request.path,
                status=response.status_code,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
        return response


class MetricsMiddleware:
    """Count requests and time them by route pattern (not raw path: bounded labels)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = "/" + canonical_route(match.route) if match is not None and match.route else (
            "unmatched")
        metrics.observe_request(
            route=route,
            method=request.method or "",
            status=response.status_code,
            seconds=time.perf_counter() - started,
        )
        return response
