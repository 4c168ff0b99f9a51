"""Production settings: secure by default; refuses to start without its secrets."""

from __future__ import annotations

from pesarail.settings.base import *  # noqa: F403
from pesarail.settings.base import ENV
from pesarail.settings.env import ConfigurationError

if not ENV.secret_key or len(ENV.secret_key) < 32:
    raise ConfigurationError(
        "PESARAIL_SECRET_KEY must be set to a random string of at least 32 characters"
    )
if not ENV.encryption_keys:
    raise ConfigurationError(
        "PESARAIL_ENCRYPTION_KEYS must hold at least one Fernet key (newest first); "
        "generate one with: pesarail generate-encryption-key"
    )

SECRET_KEY = ENV.secret_key
PESARAIL_ENCRYPTION_KEYS = ENV.encryption_keys
PESARAIL_SANDBOX_ENABLED = False if ENV.sandbox_enabled is None else ENV.sandbox_enabled
DEBUG = False
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = ENV.base_url.startswith("https://")
SECURE_HSTS_SECONDS = 31536000 if SECURE_SSL_REDIRECT else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_SSL_REDIRECT
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
