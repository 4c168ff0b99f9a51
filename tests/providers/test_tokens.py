"""One Daraja token per credential set, shared by threads and processes, refreshed
before expiry and once after an auth error (design.md section 4, rule 5)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from pesarail.common.money import Money
from pesarail.providers.base import ChargeRequest
from pesarail.providers.models import ProviderAccount, ProviderToken
from pesarail.providers.mpesa_ke import DarajaProvider
from pesarail.providers.registry import get_provider
from pesarail.providers.tokens import TokenCache
from tests.sandbox_fixtures import CallbackReceiver, DarajaSandbox


def _adapter(account: ProviderAccount, **options: Any) -> DarajaProvider:
    provider = get_provider(account, **options)
    assert isinstance(provider, DarajaProvider)
    return provider


def _charge(receiver: CallbackReceiver, phone: str) -> ChargeRequest:
    return ChargeRequest(
        intent_id="pi_test", attempt_id="pat_test", money=Money.parse("5", "KES"),
        phone_e164=phone, reference="ORDER", description="Shop", callback_url=receiver.url(),
    )


def _run_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run ``work(i)`` on ``count`` threads released together; return their errors."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            work(index)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own database connection

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.mark.django_db(transaction=True)
def test_200_pushes_from_8_threads_fetch_exactly_one_token(
    daraja_account: ProviderAccount, daraja_sandbox: DarajaSandbox,
    callback_receiver: CallbackReceiver,
) -> None:
    daraja_sandbox.configure(auto_answer_seconds=60)  # keep prompts open; no callback storm
    provider = _adapter(daraja_account)
    started: list[str] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        for n in range(25):
            phone = f"+2547110{index:02d}{n:03d}"  # 200 distinct subscribers
            reference = provider.start_charge(_charge(callback_receiver, phone))
            with lock:
                started.append(reference.provider_reference)

    errors = _run_threads(8, work)
    assert not errors, errors[:3]
    assert len(set(started)) == 200
    stats = daraja_sandbox.stats()
    assert stats["pushes"] == 200
    assert stats["tokens_issued"] == 1
    assert stats["push_errors"] == 0
    row = ProviderToken.objects.get()
    assert row.refresh_count == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_in_separate_processes_share_one_token(
    daraja_account: ProviderAccount, daraja_sandbox: DarajaSandbox,
) -> None:
    """Six "processes" (each its own memory cache and locks, its own DB connection) ask
    at the same moment: the row lock lets one fetch; the others adopt its token.

    PostgreSQL only: SQLite's in-memory test database (shared cache) answers concurrent
    writers with "table is locked" at once instead of waiting like a database file does.
    """
    if connection.vendor != "postgresql":
        pytest.skip("concurrent row locks need PostgreSQL (set DATABASE_URL=postgres://...)")
    tokens: list[str] = []

    def work(index: int) -> None:
        provider = _adapter(daraja_account, token_cache=TokenCache())
        tokens.append(provider.tokens.get())

    errors = _run_threads(6, work)
    assert not errors, errors[:3]
    assert len(set(tokens)) == 1
    assert daraja_sandbox.tokens_issued() == 1


@pytest.mark.django_db
def test_revoked_token_is_refreshed_once_and_the_push_retried_once(
    daraja_account: ProviderAccount, daraja_sandbox: DarajaSandbox,
    callback_receiver: CallbackReceiver,
) -> None:
    provider = _adapter(daraja_account)
    provider.start_charge(_charge(callback_receiver, "+254711000001"))
    assert daraja_sandbox.tokens_issued() == 1

    assert daraja_sandbox.revoke_tokens() == 1
    started = provider.start_charge(_charge(callback_receiver, "+254711000002"))

    assert started.provider_reference
    stats = daraja_sandbox.stats()
    assert stats["tokens_issued"] == 2  # refreshed exactly once
    assert stats["pushes"] == 2  # the refused push started nothing
    assert stats["push_errors"] == 1  # 404.001.03 Invalid Access Token, once


@pytest.mark.django_db
def test_another_process_refresh_is_adopted_not_repeated(
    daraja_account: ProviderAccount, daraja_sandbox: DarajaSandbox,
) -> None:
    first = _adapter(daraja_account, token_cache=TokenCache())
    second = _adapter(daraja_account, token_cache=TokenCache())
    old = first.tokens.get()
    assert second.tokens.get() == old  # read from the shared row
    assert daraja_sandbox.tokens_issued() == 1

    daraja_sandbox.revoke_tokens()
    new = first.tokens.refresh(stale=old)  # first worker hits the auth error
    assert second.tokens.refresh(stale=old) == new  # second adopts it
    assert daraja_sandbox.tokens_issued() == 2


@pytest.mark.django_db
def test_token_is_refreshed_before_it_expires(
    daraja_account: ProviderAccount, daraja_sandbox: DarajaSandbox,
) -> None:
    daraja_sandbox.configure(token_ttl_seconds=2, expires_in_as_number=True)
    provider = _adapter(daraja_account)
    first = provider.tokens.get()
    assert provider.tokens.get() == first  # plenty of life left
    time.sleep(1.1)  # less than half of its 2 s life is left now
    assert provider.tokens.get() != first
    assert daraja_sandbox.tokens_issued() == 2


@pytest.mark.django_db
def test_token_row_holds_no_credential_and_an_encrypted_token(
    daraja_account: ProviderAccount, daraja_sandbox: DarajaSandbox,
) -> None:
    token = _adapter(daraja_account).tokens.get()
    row = ProviderToken.objects.get()
    assert row.access_token == token
    assert len(row.credential_fingerprint) == 64
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM providers_providertoken")
        raw = " ".join(str(value) for value in cursor.fetchone())
    assert token not in raw
    for secret in daraja_sandbox.credentials.values():
        assert secret not in raw
    assert row.expires_at and row.refreshed_at and row.expires_at > row.refreshed_at


@pytest.mark.django_db
def test_different_credentials_get_different_tokens(
    make_daraja_account: Callable[..., ProviderAccount], daraja_sandbox: DarajaSandbox,
) -> None:
    from pesarail.sandbox.daraja import DarajaApp

    other = DarajaApp(consumer_key="second-app-key", consumer_secret="second-app-secret",
                      shortcode="600000", passkey="second-passkey")
    daraja_sandbox.control("POST", "apps", json={
        "consumer_key": other.consumer_key, "consumer_secret": other.consumer_secret,
        "shortcode": other.shortcode, "passkey": other.passkey})
    first = _adapter(make_daraja_account())
    second = _adapter(make_daraja_account(
        name="second", config={"shortcode": "600000"},
        credentials={"consumer_key": other.consumer_key,
                     "consumer_secret": other.consumer_secret, "passkey": other.passkey}))
    assert first.tokens.get() != second.tokens.get()
    assert ProviderToken.objects.count() == 2
