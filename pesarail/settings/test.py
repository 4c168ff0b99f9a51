"""Test settings: fast hashing, plain static storage, sandbox on, fixed keys."""

from __future__ import annotations

import os

from pesarail.settings import env as _env
from pesarail.settings.base import *  # noqa: F403
from pesarail.settings.base import ENV, REST_FRAMEWORK

SECRET_KEY = "test-only-not-secret"
# Two keys so rotation code paths run in every test: newest first.
PESARAIL_ENCRYPTION_KEYS = [
    "Tm90LWEtcmVhbC1rZXktMDEtdGVzdC1vbmx5LXBlc2E=",
    "b2xkZXIta2V5LTAyLXRlc3Qtb25seS1wZXNhcmFpbDE=",
]
PESARAIL_SANDBOX_ENABLED = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# pytest-django creates its own test database; no pool so test DB setup/teardown is simple.
DATABASES = {"default": _env.database_config(ENV, pool=False)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("PESARAIL_TEST_DB", "test_pesarail")}
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"principal": "100000/min", "login": "100000/min"},
}
STATIC_ROOT = None  # type: ignore[assignment]  # static files come from the app finders in tests
LOG_JSON = True
LOG_LEVEL = "WARNING"
