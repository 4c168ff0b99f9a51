"""Production settings with the naive view as the only URLconf (bench only)."""

from pesarail.settings.production import *  # noqa: F403

ROOT_URLCONF = "bench.naive.urls"
DATABASES["default"]["OPTIONS"].pop("pool", None)  # noqa: F405 - naive: no pool
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405 - a new connection per request
