"""Domain errors raised by services and turned into the API error shape by the API layer."""

from __future__ import annotations


class ApplicationError(Exception):
    """An expected failure a client can act on.

    ``status`` is the HTTP status the API answers with; ``code`` is a stable machine
    code; ``fields`` maps a field name to a list of messages.
    """

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: dict[str, list[str]] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.fields = fields or {}


class ValidationFailed(ApplicationError):
    status = 400
    type = "invalid_request_error"
    code = "validation_error"


class NotFound(ApplicationError):
    status = 404
    type = "not_found"
    code = "not_found"


class Conflict(ApplicationError):
    status = 409
    type = "conflict"
    code = "conflict"


class Unprocessable(ApplicationError):
    """The request is well formed but cannot be carried out (e.g. insufficient funds)."""

    status = 422
    type = "unprocessable"
    code = "unprocessable"
