"""Provider account operations: validate, create, update, deactivate, test, look up.

The API, the admin and commands all go through here; nothing else writes
``ProviderAccount`` rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.utils import timezone

from pesarail.common.errors import Conflict, ValidationFailed
from pesarail.common.logging import get_logger
from pesarail.providers.base import CredentialCheck, FieldSpec, ProviderClass
from pesarail.providers.models import Environment, ProviderAccount
from pesarail.providers.registry import PROVIDERS, get_provider

__all__ = [
    "TestOutcome",
    "create_account",
    "deactivate_account",
    "default_account",
    "find_by_callback_token",
    "test_account",
    "update_account",
]

log = get_logger("pesarail.providers")

_UNSET: Any = object()


def _provider(code: str) -> ProviderClass:
    cls = PROVIDERS.get(code)
    if cls is None:
        raise ValidationFailed(
            f"Unknown provider {code!r}; known: {', '.join(sorted(PROVIDERS))}.",
            fields={"provider": [f"Must be one of: {', '.join(sorted(PROVIDERS))}."]},
        )
    return cls


def _clean_section(
    specs: tuple[FieldSpec, ...], data: Mapping[str, Any], section: str,
    errors: dict[str, list[str]], *, fill_defaults: bool, environment: str,
) -> dict[str, Any]:
    """Validate one section (config or credentials) of an account, completely."""
    known = {spec.name: spec for spec in specs}
    for name in data:
        if name not in known:
            errors.setdefault(f"{section}.{name}", []).append(
                f"Unknown field; expected: {', '.join(known)}."
            )
    cleaned: dict[str, Any] = {}
    for spec in specs:
        value = data.get(spec.name)
        if value is None:
            if fill_defaults and spec.default_for(environment) is not None:
                continue  # the default applies at use time (registry.effective_config)
            if spec.required and spec.default is None:
                errors.setdefault(f"{section}.{spec.name}", []).append("This field is required.")
            continue
        try:
            cleaned[spec.name] = spec.clean(value)
        except ValueError as exc:  # messages never echo secret values
            errors.setdefault(f"{section}.{spec.name}", []).append(str(exc))
    return cleaned


def _clean_base_url(environment: str, base_url: str, errors: dict[str, list[str]]) -> str:
    base_url = (base_url or "").strip()
    if environment != Environment.CUSTOM:
        if base_url:
            errors["base_url"] = ["Only for environment 'custom'; sandbox and production "
                                  "use the provider's own URL."]
        return ""
    if not base_url:
        errors["base_url"] = ["Required when environment is 'custom'."]
        return ""
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        errors["base_url"] = ["Not a valid URL."]
        return ""
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        errors["base_url"] = ["Must be an http:// or https:// URL."]
    elif parts.query or parts.fragment or parts.username or parts.password:
        errors["base_url"] = ["Must not contain credentials, a query or a fragment."]
    return base_url.rstrip("/")


def _validate(
    cls: ProviderClass, environment: str, base_url: str,
    config: Mapping[str, Any], credentials: Mapping[str, Any],
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    errors: dict[str, list[str]] = {}
    if environment not in Environment.values:
        errors["environment"] = [f"Must be one of: {', '.join(Environment.values)}."]
        environment = Environment.SANDBOX
    url = _clean_base_url(environment, base_url, errors)
    clean_config = _clean_section(cls.config_fields, config, "config", errors,
                                  fill_defaults=True, environment=environment)
    clean_creds = _clean_section(cls.credential_fields, credentials, "credentials", errors,
                                 fill_defaults=False, environment=environment)
    if not errors:
        with_defaults = dict(clean_config)
        for spec in cls.config_fields:
            if spec.name not in with_defaults and spec.default_for(environment) is not None:
                with_defaults[spec.name] = spec.default_for(environment)
        for name, messages in cls.validate_config(with_defaults).items():
            errors.setdefault(name, []).extend(messages)
    if errors:
        first = next(iter(errors))
        raise ValidationFailed(f"Invalid {first}: {errors[first][0]}", fields=errors)
    return url, clean_config, clean_creds


def _merge(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Partial update of a section: new keys replace, ``None`` removes."""
    merged = dict(current)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _save(account: ProviderAccount, *, make_default: bool) -> None:
    try:
        with transaction.atomic():
            if make_default:
                (ProviderAccount.objects
                 .filter(merchant_id=account.merchant_id, provider=account.provider,
                         is_default=True)
                 .exclude(pk=account.pk)
                 .update(is_default=False))
            account.save()
    except IntegrityError as exc:
        raise Conflict("Another request changed this merchant's default provider account "
                       "at the same time; retry.", code="default_conflict") from exc


@transaction.atomic
def create_account(
    merchant: Any,
    *,
    provider: str,
    name: str,
    environment: str = Environment.SANDBOX,
    base_url: str = "",
    config: Mapping[str, Any] | None = None,
    credentials: Mapping[str, Any] | None = None,
    is_default: bool | None = None,
) -> ProviderAccount:
    """Create an account. ``is_default=None`` makes it the default when the merchant has
    no default account for this provider yet."""
    cls = _provider(provider)
    url, clean_config, clean_creds = _validate(cls, environment, base_url, config or {},
                                               credentials or {})
    if is_default is None:
        is_default = not ProviderAccount.objects.filter(
            merchant_id=merchant.pk, provider=provider, is_default=True).exists()
    account = ProviderAccount(
        merchant=merchant, provider=provider, name=name, environment=environment,
        base_url=url, config=clean_config, credentials=clean_creds, is_default=is_default,
    )
    _save(account, make_default=is_default)
    log.info("provider_account_created", account_id=account.pk, provider=provider,
             environment=environment, merchant_id=merchant.pk)
    return account


def update_account(
    account: ProviderAccount,
    *,
    name: str = _UNSET,
    environment: str = _UNSET,
    base_url: str = _UNSET,
    config: Mapping[str, Any] | None = None,
    credentials: Mapping[str, Any] | None = None,
    is_active: bool = _UNSET,
    is_default: bool = _UNSET,
) -> ProviderAccount:
    """Partial update. ``config`` and ``credentials`` merge into what is stored (a key set
    to ``None`` is removed); the result is validated as a whole. Writing credentials (or
    moving the account) clears the last test result."""
    cls = _provider(account.provider)
    new_env = account.environment if environment is _UNSET else environment
    new_url = account.base_url if base_url is _UNSET else base_url
    if environment is not _UNSET and new_env != Environment.CUSTOM and base_url is _UNSET:
        new_url = ""
    new_config = _merge(account.config or {}, config or {})
    new_creds = _merge(account.credentials or {}, credentials or {})
    url, clean_config, clean_creds = _validate(cls, new_env, new_url, new_config, new_creds)
    new_active = account.is_active if is_active is _UNSET else bool(is_active)
    new_default = account.is_default if is_default is _UNSET else bool(is_default)
    if not new_active:
        if is_default is not _UNSET and new_default:
            raise ValidationFailed("An inactive account cannot be the default.",
                                   fields={"is_default": ["The account is inactive."]})
        new_default = False

    moved = (new_env, url) != (account.environment, account.base_url)
    rekeyed = bool(credentials)
    if name is not _UNSET:
        account.name = name
    account.environment, account.base_url = new_env, url
    account.config, account.credentials = clean_config, clean_creds
    account.is_active, account.is_default = new_active, new_default
    if moved or rekeyed:
        account.last_tested_at = None
        account.last_test_ok = None
        account.last_test_message = ""
    _save(account, make_default=new_default)
    log.info("provider_account_updated", account_id=account.pk, credentials_written=rekeyed,
             environment=new_env)
    return account


def deactivate_account(account: ProviderAccount) -> ProviderAccount:
    """Soft delete: the account stops being used for new payments (and stops being the
    default); it stays for payments already started and for history."""
    account.is_active = False
    account.is_default = False
    account.save(update_fields=["is_active", "is_default", "updated_at"])
    log.info("provider_account_deactivated", account_id=account.pk)
    return account


@dataclass(frozen=True, slots=True)
class TestOutcome:
    ok: bool
    message: str
    tested_at: datetime


def test_account(account: ProviderAccount) -> TestOutcome:
    """Ask the provider whether the stored credentials work (Daraja: its token endpoint)
    and record the answer on the account. Never raises for a provider or network
    failure; do not call inside a transaction (it makes an HTTP call)."""
    try:
        check = get_provider(account).check_credentials()
    except Exception as exc:  # a bug or a broken account must not hide behind a 500
        log.exception("provider_account_test_crashed", account_id=account.pk)
        check = CredentialCheck(False, f"The test could not run ({type(exc).__name__}).")
    now = timezone.now()
    message = check.message[:500]
    ProviderAccount.objects.filter(pk=account.pk).update(
        last_tested_at=now, last_test_ok=check.ok, last_test_message=message, updated_at=now,
    )
    account.last_tested_at, account.last_test_ok = now, check.ok
    account.last_test_message = message
    log.info("provider_account_tested", account_id=account.pk, ok=check.ok)
    return TestOutcome(ok=check.ok, message=message, tested_at=now)


test_account.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def find_by_callback_token(provider: str, token: str) -> ProviderAccount | None:
    """The account a callback URL (``/hooks/<provider>/<token>/``) belongs to, or None.
    Inactive accounts are returned too: callbacks for payments started before
    deactivation must still be applied."""
    if not token or len(token) > 64:
        return None
    return (ProviderAccount.objects.select_related("merchant")
            .filter(provider=provider, callback_token=token).first())


def default_account(merchant: Any, provider: str) -> ProviderAccount | None:
    """The merchant's active default account for ``provider`` (None if there is none)."""
    return ProviderAccount.objects.filter(
        merchant_id=merchant.pk, provider=provider, is_default=True, is_active=True
    ).first()
