"""One error shape for every failure under ``/api/v1/``::

    {"error": {"type": "...", "code": "...", "message": "...", "fields": {...},
               "request_id": "req_..."}}
"""

from __future__ import annotations

from typing import Any

import structlog
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from pesarail.common.errors import ApplicationError

log = structlog.get_logger("pesarail.api")

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limit_error",
    500: "api_error",
}
DEFAULT_CODES = {
    400: "invalid_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    500: "internal_error",
}


def error_body(
    status_code: int,
    message: str,
    *,
    code: str | None = None,
    type_: str | None = None,
    fields: dict[str, list[str]] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    return {
        "error": {
            "type": type_ or TYPES.get(status_code, "api_error"),
            "code": code or DEFAULT_CODES.get(status_code, "error"),
            "message": message,
            "fields": fields or {},
            "request_id": request_id,
        }
    }


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested ValidationError detail -> ``{"a.b": ["msg", ...]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in _flatten(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                for k, v in _flatten(item, f"{prefix}.{index}" if prefix else str(index)).items():
                    out.setdefault(k, []).extend(v)
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def _first_code(detail: Any) -> str | None:
    if isinstance(detail, exceptions.ErrorDetail):
        return detail.code
    if isinstance(detail, dict):
        for value in detail.values():
            found = _first_code(value)
            if found:
                return found
    if isinstance(detail, list):
        for value in detail:
            found = _first_code(value)
            if found:
                return found
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    request = context.get("request")
    request_id = getattr(request, "request_id", None)
    headers: dict[str, str] = {}

    if isinstance(exc, ApplicationError):
        set_rollback()
        return Response(
            error_body(exc.status, exc.message, code=exc.code, type_=exc.type,
                       fields=exc.fields, request_id=request_id),
            status=exc.status,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a real bug: Django's 500 handler renders it (JSON under /api/)

    set_rollback()
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    status_code = exc.status_code
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        non_field = fields.pop("non_field_errors", [])
        message = non_field[0] if non_field else "Some fields are invalid."
        if fields and not non_field:
            first = next(iter(fields))
            message = f"Invalid {first}: {fields[first][0]}"
        body = error_body(
            status_code, message, code="validation_error", fields=fields, request_id=request_id
        )
    elif isinstance(exc, exceptions.Throttled):
        body = error_body(status_code, "Too many requests; retry later.",
                          request_id=request_id)
    else:
        detail = exc.detail
        message = str(detail) if not isinstance(detail, dict | list) else "Request failed."
        code = _first_code(detail) or DEFAULT_CODES.get(status_code)
        if status_code == 401 and code in {"authentication_failed", "not_authenticated"}:
            code = "not_authenticated" if code == "not_authenticated" else "invalid_credentials"
        body = error_body(status_code, message, code=code, request_id=request_id)
    return Response(body, status=status_code, headers=headers)


def _json_error(request: HttpRequest, status_code: int, message: str) -> JsonResponse:
    return JsonResponse(
        error_body(status_code, message, request_id=getattr(request, "request_id", None)),
        status=status_code,
    )


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json_error(request, status.HTTP_404_NOT_FOUND, "No such endpoint or object.")


def server_error(request: HttpRequest) -> JsonResponse:
    log.error("unhandled_error", path=request.path)
    return _json_error(request, 500, "Internal error; it has been logged with this request id.")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json_error(request, 400, "Bad request.")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _json_error(request, 403, "Permission denied.")
