"""Provider tests run against the real Daraja simulator over HTTP; nothing else is
reachable (``loopback_only_http`` is on for every test here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox_fixtures import *  # noqa: F403
from tests.sandbox_fixtures import LoopbackGuard


@pytest.fixture(autouse=True)
def _no_external_http(loopback_only_http: LoopbackGuard) -> Iterator[LoopbackGuard]:
    yield loopback_only_http
