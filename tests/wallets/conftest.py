from __future__ import annotations

import pytest
from django.db import connection


@pytest.fixture
def postgres_only() -> None:
    """Skip unless the tests run on PostgreSQL (real row locks, deferred triggers).
    CI runs the suite on both databases, so these run there."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serialises writers and has no row locks or "
                    "deferred constraint triggers (set DATABASE_URL=postgres://...)")
