from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _strict_char_to_internal_value(self: Any, data: Any) -> str:
    """A JSON string field takes a JSON string. DRF's CharField turns 0 into "0"; for a
    payments API a number where text belongs is a client bug we report (400), not guess."""
    if not isinstance(data, str):
        self.fail("invalid")
    return _original_char_to_internal_value(self, data)  # type: ignore[no-any-return,unused-ignore]


_original_char_to_internal_value: Any = None


class ApiConfig(AppConfig):
    name = "pesarail.api"
    label = "api"
    verbose_name = "API plumbing"

    def ready(self) -> None:
        global _original_char_to_internal_value
        from rest_framework.fields import CharField

        if _original_char_to_internal_value is None:
            _original_char_to_internal_value = CharField.to_internal_value
            CharField.to_internal_value = _strict_char_to_internal_value  # type: ignore[method-assign]
            CharField.default_error_messages = {
                **CharField.default_error_messages, "invalid": "Must be a string."}
