"""The provider registry: a plain dict from provider code to adapter class.

To add a provider: write ``pesarail/providers/<code>.py`` with a class satisfying
:class:`~pesarail.providers.base.PaymentProvider`, add it to :data:`PROVIDERS`, and make
it pass ``tests/providers/test_contract.py`` (see docs/providers.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from pesarail.common.errors import NotFound
from pesarail.providers.base import PaymentProvider, ProviderClass
from pesarail.providers.mpesa_ke import DarajaProvider

if TYPE_CHECKING:
    from pesarail.providers.models import ProviderAccount

__all__ = ["PROVIDERS", "effective_config", "get_provider", "provider_class"]

PROVIDERS: dict[str, ProviderClass] = {
    DarajaProvider.code: DarajaProvider,
}


def provider_class(code: str) -> ProviderClass:
    """The adapter class for ``code``; NotFound for an unknown code."""
    try:
        return PROVIDERS[code]
    except KeyError:
        raise NotFound(f"Unknown provider {code!r}.", code="unknown_provider") from None


def effective_config(account: ProviderAccount) -> dict[str, Any]:
    """The account's config with defaults filled in for keys it does not set (so a config
    field added later needs no data migration)."""
    cls = provider_class(account.provider)
    config = dict(account.config or {})
    for spec in cls.config_fields:
        if config.get(spec.name) is None:
            default = spec.default_for(account.environment)
            if default is not None:
                config[spec.name] = default
    return config


def get_provider(
    account: ProviderAccount, *, client: httpx.Client | None = None, **options: Any
) -> PaymentProvider:
    """An adapter for ``account``, built with its decrypted credentials, its effective
    config, its base URL (settings read now) and the shared HTTP client.

    ``options`` go to the adapter's constructor (e.g. ``timeouts=`` for Daraja).
    Works for inactive accounts too (to finish payments started before deactivation);
    choosing an account for a *new* payment is the caller's job (``is_active``).
    """
    cls = provider_class(account.provider)
    return cls(
        base_url=account.api_base_url,
        credentials=dict(account.credentials or {}),
        config=effective_config(account),
        client=client,
        **options,
    )
