"""The one place where pesarail reads its environment.

Every setting that can come from the environment is listed here with its default, so
``docs/configuration.md`` and this module can be compared line by line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class ConfigurationError(RuntimeError):
    """Raised when the environment cannot produce a safe configuration."""


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name} must be true or false, got {raw!r}")


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from exc


def _list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


@dataclass(frozen=True)
class Environment:
    home: Path
    database_url: str | None
    secret_key: str | None
    encryption_keys: list[str]
    base_url: str
    allowed_hosts: list[str]
    csrf_trusted_origins: list[str]
    log_level: str
    log_json: bool
    db_pool: bool
    sandbox_enabled: bool | None
    sandbox_url: str | None
    throttle_rate: str


def read() -> Environment:
    """Read every ``PESARAIL_*`` / ``DATABASE_URL`` variable once."""
    home = Path(os.environ.get("PESARAIL_HOME") or "./.pesarail").resolve()
    sandbox_raw = os.environ.get("PESARAIL_SANDBOX_ENABLED")
    return Environment(
        home=home,
        database_url=os.environ.get("DATABASE_URL") or None,
        secret_key=os.environ.get("PESARAIL_SECRET_KEY") or None,
        encryption_keys=_list("PESARAIL_ENCRYPTION_KEYS", []),
        base_url=(os.environ.get("PESARAIL_BASE_URL") or "http://127.0.0.1:8000").rstrip("/"),
        allowed_hosts=_list("PESARAIL_ALLOWED_HOSTS", []),
        csrf_trusted_origins=_list("PESARAIL_CSRF_TRUSTED_ORIGINS", []),
        log_level=(os.environ.get("PESARAIL_LOG_LEVEL") or "INFO").upper(),
        log_json=_bool("PESARAIL_LOG_JSON", True),
        db_pool=_bool("PESARAIL_DB_POOL", True),
        sandbox_enabled=None if not sandbox_raw else _bool("PESARAIL_SANDBOX_ENABLED", False),
        sandbox_url=os.environ.get("PESARAIL_SANDBOX_URL") or None,
        throttle_rate=os.environ.get("PESARAIL_API_THROTTLE_RATE") or "6000/min",
    )


def database_config(env: Environment, *, pool: bool) -> dict[str, object]:
    """``DATABASES['default']`` from ``DATABASE_URL`` or the embedded SQLite file."""
    if env.database_url:
        import dj_database_url

        config: dict[str, object] = dict(dj_database_url.parse(env.database_url))
        if config["ENGINE"] == "django.db.backends.postgresql":
            options: dict[str, object] = dict(config.get("OPTIONS") or {})  # type: ignore[call-overload]
            if pool and env.db_pool:
                options["pool"] = {"min_size": 2, "max_size": 20, "timeout": 10}
                config["CONN_MAX_AGE"] = 0
            config["OPTIONS"] = options
        return config
    env.home.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(env.home / "db.sqlite3"),
        "OPTIONS": {
            # WAL lets readers run beside the single writer; IMMEDIATE takes the write
            # lock at BEGIN so two writers never deadlock upgrading a read lock.
            "init_command": (
                "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA foreign_keys=ON;"
            ),
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
