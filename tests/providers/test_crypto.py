"""Encryption at rest: only ciphertext in the database, key rotation, idempotent
``rotate-keys``."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from pesarail.providers import crypto
from pesarail.providers.models import ProviderAccount, ProviderToken
from pesarail.providers.services import create_account
from tests.factories import Tenant

SECRETS = {
    "consumer_key": "ck-live-abcdefgh12345678",
    "consumer_secret": "cs-very-secret-value-0042",
    "passkey": "pk-super-secret-passkey-9999",
    "initiator_password": "Safaricom999!*!",
}


def _raw(account_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM providers_provideraccount WHERE id = %s",
                       [account_id])
        (value,) = cursor.fetchone()
    return str(value)


def _account(tenant: Tenant) -> ProviderAccount:
    return create_account(
        tenant.merchant, provider="mpesa_ke", name="Till", environment="sandbox",
        config={"shortcode": "174379"}, credentials=SECRETS,
    )


def test_round_trip_and_newest_key_encrypts() -> None:
    token = crypto.encrypt("hello ✓")
    assert token != "hello ✓"
    assert crypto.decrypt(token) == "hello ✓"
    assert crypto.is_current(token)
    newest = Fernet(settings.PESARAIL_ENCRYPTION_KEYS[0])
    assert newest.decrypt(token.encode()).decode() == "hello ✓"


def test_keys_are_read_at_call_time() -> None:
    new_key = Fernet.generate_key().decode()
    with override_settings(PESARAIL_ENCRYPTION_KEYS=[new_key]):
        token = crypto.encrypt("x")
        assert crypto.decrypt(token) == "x"
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token)  # the configured keys do not include new_key any more


def test_missing_or_bad_keys_are_configuration_errors() -> None:
    with override_settings(PESARAIL_ENCRYPTION_KEYS=[]), pytest.raises(ImproperlyConfigured):
        crypto.encrypt("x")
    with override_settings(PESARAIL_ENCRYPTION_KEYS=["not-a-key"]), \
            pytest.raises(ImproperlyConfigured) as info:
        crypto.encrypt("x")
    assert "not-a-key" not in str(info.value)


@pytest.mark.django_db
def test_credentials_column_holds_ciphertext_only(tenant: Tenant) -> None:
    account = _account(tenant)
    raw = _raw(account.pk)
    for secret in SECRETS.values():
        assert secret not in raw
    assert "consumer_key" not in raw  # not even the field names
    assert raw.startswith("gAAAAA")  # a Fernet token
    decrypted = crypto.decrypt(raw)
    for secret in SECRETS.values():
        assert secret in decrypted
    assert ProviderAccount.objects.get(pk=account.pk).credentials == SECRETS


@pytest.mark.django_db
def test_rotate_keys_reencrypts_under_the_newest_key_and_is_idempotent(tenant: Tenant) -> None:
    old_keys = list(settings.PESARAIL_ENCRYPTION_KEYS)
    # Data written while only the older key was configured.
    with override_settings(PESARAIL_ENCRYPTION_KEYS=old_keys[1:]):
        account = _account(tenant)
        ProviderToken.objects.create(provider="mpesa_ke", credential_fingerprint="f" * 64,
                                     access_token="tok-123")
    before = _raw(account.pk)
    new_key = Fernet.generate_key().decode()
    keys = [new_key, *old_keys]
    with override_settings(PESARAIL_ENCRYPTION_KEYS=keys):
        out = StringIO()
        call_command("rotate_keys", stdout=out)
        text = out.getvalue()
        assert "providers.ProviderAccount.credentials: 1 re-encrypted, 0 already current" in text
        assert "providers.ProviderToken.access_token: 1 re-encrypted" in text
        after = _raw(account.pk)
        assert after != before
        assert Fernet(new_key).decrypt(after.encode())  # readable with the new key alone

        out = StringIO()
        call_command("rotate_keys", stdout=out)  # second run: nothing to do
        assert "total: 0 re-encrypted, 2 already current, 0 failed" in out.getvalue()
        assert _raw(account.pk) == after

    # The old keys can now be dropped.
    with override_settings(PESARAIL_ENCRYPTION_KEYS=[new_key]):
        assert ProviderAccount.objects.get(pk=account.pk).credentials == SECRETS
        assert ProviderToken.objects.get().access_token == "tok-123"


@pytest.mark.django_db
def test_rotate_keys_dry_run_changes_nothing(tenant: Tenant) -> None:
    account = _account(tenant)
    before = _raw(account.pk)
    with override_settings(PESARAIL_ENCRYPTION_KEYS=[Fernet.generate_key().decode(),
                                                     *settings.PESARAIL_ENCRYPTION_KEYS]):
        out = StringIO()
        call_command("rotate_keys", "--dry-run", stdout=out)
    assert "1 re-encrypted" in out.getvalue() and "(dry run)" in out.getvalue()
    assert _raw(account.pk) == before


@pytest.mark.django_db
def test_rotate_keys_reports_values_no_key_can_read(tenant: Tenant) -> None:
    account = _account(tenant)
    with override_settings(PESARAIL_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        err = StringIO()
        with pytest.raises(CommandError, match="could not be decrypted"):
            call_command("rotate_keys", stdout=StringIO(), stderr=err)
        assert account.pk in err.getvalue()
    assert ProviderAccount.objects.get(pk=account.pk).credentials == SECRETS
