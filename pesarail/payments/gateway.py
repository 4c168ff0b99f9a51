"""The payments side of the provider layer: choosing an account, checking a charge
before it is created, building adapters, and reading per-account settings.

Everything provider-specific that payments needs goes through here, so services never
touch ``pesarail.providers`` internals directly.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings

from pesarail.common.errors import NotFound, Unprocessable, ValidationFailed
from pesarail.common.money import Money
from pesarail.providers import registry
from pesarail.providers import services as provider_services
from pesarail.providers.base import PaymentProvider
from pesarail.providers.models import ProviderAccount

DEFAULT_STK_TIMEOUT_SECONDS = 120



def resolve_account(merchant: Any, *, provider: str | None, account_id: str | None
                    ) -> ProviderAccount:
    """The provider account a new payment uses: ``account_id`` (must be the merchant's
    and active) or the merchant's default account for ``provider``."""
    if account_id:
        account = ProviderAccount.objects.filter(pk=account_id, merchant_id=merchant.pk).first()
        if account is None:
            raise NotFound(f"No such provider account: {account_id}",
                           fields={"provider_account": ["No such provider account."]})
        if provider and provider != account.provider:
            raise ValidationFailed(
                f"provider_account {account_id} is a {account.provider} account, not "
                f"{provider}.", fields={"provider": [f"The account is {account.provider}."]})
        if not account.is_active:
            raise Unprocessable("This provider account is deactivated.",
                                code="provider_account_inactive",
                                fields={"provider_account": ["Deactivated."]})
        return account
    if not provider:
        raise ValidationFailed("Give provider (e.g. mpesa_ke) or provider_account.",
                               fields={"provider": ["This field is required."]})
    if provider not in registry.PROVIDERS:
        known = ", ".join(sorted(registry.PROVIDERS))
        raise ValidationFailed(f"Unknown provider {provider!r}; known: {known}.",
                               fields={"provider": [f"Must be one of: {known}."]})
    account = provider_services.default_account(merchant, provider)
    if account is None:
        raise Unprocessable(
            f"This merchant has no active {provider} provider account; add one at "
            "/api/v1/provider-accounts/ first.", code="no_provider_account",
            fields={"provider": ["No active account for this provider."]})
    return account


def precheck(account: ProviderAccount, money: Money, phone: str) -> None:
    """Refuse, before anything is written, a charge the provider cannot take (currency,
    cents, phone). No I/O: the adapter's ``validate_charge``."""
    adapter_for(account).validate_charge(money, phone)


def adapter_for(account: ProviderAccount) -> PaymentProvider:
    """An adapter for ``account``. ``PESARAIL_STK_PUSH_TIMEOUT_SECONDS`` (read now)
    shortens how long a push may take before its outcome is declared unknown."""
    options: dict[str, Any] = {}
    push_timeout = getattr(settings, "PESARAIL_STK_PUSH_TIMEOUT_SECONDS", None)
    if push_timeout and account.provider == "mpesa_ke":
        from pesarail.providers.mpesa_ke import DarajaTimeouts

        options["timeouts"] = DarajaTimeouts(push_read=float(push_timeout))
    return registry.get_provider(account, **options)


def config(account: ProviderAccount) -> dict[str, Any]:
    return registry.effective_config(account)


def stk_timeout_seconds(account: ProviderAccount) -> int:
    value = config(account).get("stk_timeout_seconds")
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_STK_TIMEOUT_SECONDS


def confirm_with_query(account: ProviderAccount) -> bool:
    """Whether callbacks are confirmed by a status query before they are applied (on by
    default outside the sandbox)."""
    if not account.provider_class.supports_status_query:
        return False
    value = config(account).get("confirm_callbacks_with_query")
    if value is None:
        return bool(account.environment != "sandbox")
    return bool(value)


def ip_allowed(account: ProviderAccount, source_ip: str | None) -> bool:
    """An empty allow-list allows everyone; otherwise the source must be in it."""
    networks = config(account).get("ip_allowlist") or []
    if not networks:
        return True
    if not source_ip:
        return False
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return False
    for network in networks:
        try:
            if address in ipaddress.ip_network(str(network), strict=False):
                return True
        except ValueError:
            continue
    return False


def find_account_by_token(provider: str, token: str) -> ProviderAccount | None:
    return provider_services.find_by_callback_token(provider, token)
