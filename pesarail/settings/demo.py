"""Demo settings: embedded SQLite, sandbox on, keys generated and kept under PESARAIL_HOME.

Never use for real money: the encryption key lives next to the database.
"""

from __future__ import annotations

import secrets

from cryptography.fernet import Fernet

from pesarail.settings.base import *  # noqa: F403
from pesarail.settings.base import ENV, PESARAIL_HOME


def _kept_secret(name: str, make: object) -> str:
    path = PESARAIL_HOME / name
    PESARAIL_HOME.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(make())  # type: ignore[operator]
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = ENV.secret_key or _kept_secret("secret_key", lambda: secrets.token_urlsafe(50))
PESARAIL_ENCRYPTION_KEYS = ENV.encryption_keys or [
    _kept_secret("encryption.key", lambda: Fernet.generate_key().decode())
]
PESARAIL_SANDBOX_ENABLED = True if ENV.sandbox_enabled is None else ENV.sandbox_enabled
LOG_JSON = False
