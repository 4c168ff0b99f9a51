"""OpenAPI schema helpers: every operation documents the error responses it can give,
all with the one error shape, and idempotent operations document ``Idempotency-Key``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as _AutoSchema
from drf_spectacular.utils import OpenApiParameter

from pesarail.api.errors import TYPES

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "code", "message", "fields"],
            "properties": {
                "type": {"type": "string", "enum": sorted(set(TYPES.values()))},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
                "request_id": {"type": "string", "nullable": True},
            },
        }
    },
}

ERROR_DESCRIPTIONS = {
    "400": "Invalid request: see `error.fields`.",
    "401": "Missing, invalid or revoked credentials.",
    "403": "Authenticated, but not allowed to do this.",
    "404": "No such object (or it belongs to another merchant).",
    "405": "Method not allowed.",
    "406": "Cannot render the requested media type.",
    "409": "Conflict (e.g. an Idempotency-Key reused with a different body).",
    "415": "Unsupported media type: send JSON.",
    "422": "Well formed, but cannot be carried out (e.g. insufficient funds).",
    "429": "Rate limited: retry after the `Retry-After` seconds.",
}

IDEMPOTENCY_HEADER = OpenApiParameter(
    name="Idempotency-Key",
    type=str,
    location=OpenApiParameter.HEADER,
    required=True,
    description=(
        "A unique key (1-255 printable characters) per operation. The first response for a "
        "key is replayed for retries; the same key with a different body is a 409."
    ),
)


class AutoSchema(_AutoSchema):
    def get_override_parameters(self) -> list[Any]:
        params = list(super().get_override_parameters())
        idempotent = getattr(self.view, "idempotent_actions", ())
        action = getattr(self.view, "action", None) or self.method.lower()
        if action in idempotent or self.method.lower() in idempotent:
            params.append(IDEMPOTENCY_HEADER)
        return params


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool
                        ) -> dict[str, Any]:
    """Postprocessing hook: add the error component and error responses everywhere."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_DESCRIPTIONS.items():
                responses.setdefault(
                    code,
                    {"description": description, "content": {"application/json": {"schema": ref}}},
                )
    return result
