"""The STK push waits on the provider without holding a pooled database connection."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction

from pesarail.payments import services
from tests.payments.conftest import Env


def test_the_push_releases_the_connection_before_calling_the_provider(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    real = services.release_db_connection

    def spy() -> None:
        seen.append({"in_transaction": connection.in_atomic_block,
                     "pushes_so_far": int(env.sandbox.stats()["pushes"])})
        real()

    monkeypatch.setattr(services, "release_db_connection", spy)
    response = env.create()
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "processing"
    assert seen == [{"in_transaction": False, "pushes_so_far": 0}]
    assert int(env.sandbox.stats()["pushes"]) == 1


class _Recorder:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


@pytest.mark.django_db(transaction=True)
def test_release_closes_a_pooled_connection_only_outside_a_transaction(
        monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = _Recorder()
    monkeypatch.setattr(connection, "close", recorder.close)
    # Without a pool (SQLite, the test settings) nothing happens.
    monkeypatch.setattr(type(connection), "pool", None, raising=False)
    services.release_db_connection()
    assert recorder.closed == 0
    # With a pool: given back (close() returns a pooled connection to its pool) ...
    monkeypatch.setattr(type(connection), "pool", object(), raising=False)
    services.release_db_connection()
    assert recorder.closed == 1
    # ... but never in the middle of a transaction.
    with transaction.atomic():
        services.release_db_connection()
    assert recorder.closed == 1
