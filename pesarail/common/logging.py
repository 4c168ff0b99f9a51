"""Structured logging: JSON lines with the request id, secrets redacted, phones masked.

Both structlog loggers and the standard library's (Django, gunicorn, httpx) go through
the same processors, so nothing reaches a handler without passing :func:`redact`.
"""

from __future__ import annotations

import logging
import logging.config
import re
from collections.abc import Mapping
from typing import Any

import structlog

REDACTED = "[REDACTED]"

# Keys whose values are secret wherever they appear (compared lower-case, substring).
_SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "passkey",
    "credential",
    "private_key",
    "cookie",
    "signature",
    "sign",
)
# Keys that are exactly these are secret too (too short for substring matching).
_SECRET_KEYS_EXACT = {"key", "sk", "otp", "pin"}
_PHONE_KEY_PARTS = ("phone", "msisdn", "partya", "mobile")

_SECRET_PATTERNS = [
    re.compile(r"\b(sk|pk)_(test|live)_[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bct_[A-Za-z0-9_\-]{16,}"),
    re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(r"\bgAAAAA[A-Za-z0-9_\-=]{20,}"),  # Fernet tokens
]
# +2547..., 2547..., 07... style numbers embedded in free text.
_PHONE_PATTERN = re.compile(r"(?<![\d])(\+?(?:254|251|255|256)\d{9}|0[17]\d{8})(?![\d])")


def _mask(value: str) -> str:
    from pesarail.common.phone import mask_phone

    if "***" in value:  # already masked (records pass through redaction twice)
        return value
    return mask_phone(value)


def _scrub_text(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return _PHONE_PATTERN.sub(lambda m: _mask(m.group(0)), text)


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    if lowered in _SECRET_KEYS_EXACT:
        return True
    return any(part in lowered for part in _SECRET_KEY_PARTS)


def _is_phone_key(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in _PHONE_KEY_PARTS)


def redact(value: Any, key: str | None = None, _depth: int = 0) -> Any:
    """Return a copy of ``value`` with secrets replaced and phone numbers masked."""
    if _depth > 8:
        return REDACTED
    if key is not None and _is_secret_key(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: redact(v, str(k), _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [redact(v, key, _depth + 1) for v in value]
    if isinstance(value, str):
        if key is not None and _is_phone_key(key):
            return _mask(value)
        return _scrub_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and key and _is_phone_key(key):
        return _mask(str(value))
    return value


def redact_processor(
    _logger: Any, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    return {k: (redact(v) if k == "event" else redact(v, k)) for k, v in event_dict.items()}


def _redacting_record_factory(base: Any) -> Any:
    """Wrap the LogRecord factory so every record is scrubbed when it is created, before
    any handler (ours, a test harness's or an operator's extra one) can see it."""

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = base(*args, **kwargs)
        try:
            if isinstance(record.msg, dict):
                record.msg = redact_processor(None, "", dict(record.msg))
            elif record.args:
                record.msg = _scrub_text(record.getMessage())
                record.args = ()
            elif isinstance(record.msg, str):
                record.msg = _scrub_text(record.msg)
        except Exception:  # never let redaction break logging; fail closed
            record.msg, record.args = REDACTED, ()
        return record

    factory._pesarail_redacting = True  # type: ignore[attr-defined]
    return factory


def configure_logging(
    level: str | None = None, json: bool | None = None, stream: Any = None
) -> None:
    from django.conf import settings

    level = level or getattr(settings, "LOG_LEVEL", "INFO")
    json = getattr(settings, "LOG_JSON", True) if json is None else json
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structured": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "foreign_pre_chain": shared,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info,
                        redact_processor,
                        renderer,
                    ],
                }
            },
            "handlers": {
                "console": {"class": "logging.StreamHandler", "formatter": "structured",
                            **({"stream": stream} if stream is not None else {})}
            },
            "root": {"handlers": ["console"], "level": level},
            "loggers": {
                "django.server": {"level": "WARNING"},
                "httpx": {"level": "WARNING"},
                "httpcore": {"level": "WARNING"},
            },
        }
    )
    current = logging.getLogRecordFactory()
    if not getattr(current, "_pesarail_redacting", False):
        logging.setLogRecordFactory(_redacting_record_factory(current))
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            redact_processor,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
