"""Property-based checks of the whole API against its own OpenAPI schema.

Every operation is called with generated input (valid and invalid), authenticated with a
real merchant key; all schemathesis checks run: no 5xx, every status code and body
documented, content types right.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.cache import cache
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from pesarail.tenants import services
from pesarail.wsgi import application

# Generating the schema touches no database, so it is loaded at collection time.
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)


@pytest.fixture
def keep_db_connection() -> Iterator[None]:
    """Requests go straight to the WSGI app, so Django would close the test's database
    connection at the end of each (PostgreSQL then fails with "connection is closed").
    Keep it open, as django.test.Client does."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def merchant_key(db: None, keep_db_connection: None) -> str:
    cache.clear()
    _merchant, new = services.create_merchant("Schema Shop")
    return new.secret


def _mutates_auth(case: Any) -> bool:
    """A negative case that removes or breaks the Authorization header must reach the
    server without our key, or the server rightly answers 200 to what the harness thinks
    is an unauthenticated request."""
    meta = getattr(case, "meta", None)
    if meta is None or not meta.generation.mode.is_negative:
        return False
    data = meta.phase.data
    names = {getattr(data, "parameter", None)}
    names |= {getattr(m, "parameter", None) for m in getattr(data, "mutations", None) or ()}
    return any(str(name).lower() == "authorization" for name in names if name)


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_api_conforms_to_schema(case: Any, merchant_key: str) -> None:
    case.call_and_validate(
        app=application,
        headers={} if _mutates_auth(case) else {"Authorization": f"Token {merchant_key}"},
        # Every check runs except "schema-valid data must be accepted": JSON Schema cannot
        # say which strings are real phone numbers or amounts with the currency's decimals,
        # so the API rightly answers 400 to some schema-valid input. The opposite check
        # (schema-INVALID data must be rejected) does run.
        excluded_checks=[positive_data_acceptance],
    )
