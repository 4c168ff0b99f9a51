"""The contract every registered provider passes (design.md section 7)."""

from __future__ import annotations

import dataclasses

import pytest

from pesarail.common.money import CURRENCY_EXPONENTS, Money
from pesarail.providers.base import (
    ChargeRequest,
    ChargeStarted,
    CredentialCheck,
    PaymentProvider,
    PaymentStatus,
    ProviderAuthError,
    ProviderError,
    ProviderEvent,
    ProviderTimeout,
    ProviderUnavailable,
)
from pesarail.providers.models import Environment, provider_choices
from pesarail.providers.registry import PROVIDERS, effective_config, provider_class

CODES = sorted(PROVIDERS)
FLAGS = ("supports_stk_push", "supports_refund", "supports_payout", "signs_callbacks",
         "supports_status_query")


@pytest.mark.parametrize("code", CODES)
def test_class_declares_the_contract(code: str) -> None:
    cls = PROVIDERS[code]
    assert cls.code == code
    assert cls.display_name
    assert cls.currencies and all(c in CURRENCY_EXPONENTS for c in cls.currencies)
    for flag in FLAGS:
        assert isinstance(getattr(cls, flag), bool), flag
    assert set(cls.default_base_urls) == {"sandbox", "production"}
    assert all(url.startswith("https://") for url in cls.default_base_urls.values())
    for specs in (cls.credential_fields, cls.config_fields):
        names = [spec.name for spec in specs]
        assert len(names) == len(set(names))
    for spec in cls.credential_fields:
        assert not (spec.secret and spec.hint), f"{spec.name}: a secret cannot have a hint"
    assert any(spec.secret for spec in cls.credential_fields)
    for env in Environment.values:
        for spec in cls.config_fields:
            default = spec.default_for(env)
            if default is not None:
                assert spec.clean(default) == default, (spec.name, env)


@pytest.mark.parametrize("code", CODES)
def test_instances_satisfy_the_protocol_without_io(code: str) -> None:
    cls = PROVIDERS[code]
    secret = "do-not-show-this-secret"
    provider = cls(base_url="http://127.0.0.1:9",
                   credentials={spec.name: secret for spec in cls.credential_fields},
                   config={"shortcode": "174379"})
    assert isinstance(provider, PaymentProvider)
    assert secret not in repr(provider)
    status, body = provider.callback_ack(True)
    assert status == 200 and isinstance(body, dict)
    assert isinstance(provider.callback_ack(False), tuple)


def test_registry_drives_choices_and_lookup() -> None:
    assert provider_choices() == [(c, PROVIDERS[c].display_name) for c in PROVIDERS]
    assert provider_class("mpesa_ke") is PROVIDERS["mpesa_ke"]
    from pesarail.common.errors import NotFound

    with pytest.raises(NotFound):
        provider_class("nope")


def test_boundary_values_are_frozen() -> None:
    request = ChargeRequest("pi_1", "pat_1", Money.parse("1", "KES"), "+254708374149",
                            "ref", "desc", "http://127.0.0.1/cb")
    started = ChargeStarted("ws_CO_1", None, {"type": "phone_prompt"}, {})
    event = ProviderEvent(kind="payment_result", provider_reference="ws_CO_1",
                          status=PaymentStatus.PENDING, result_code="", message="",
                          retryable=False)
    for value in (request, started, event, CredentialCheck(True, "ok")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, dataclasses.fields(value)[0].name, "changed")
    assert event.pending and not event.is_final
    assert PaymentStatus.SUCCEEDED == "succeeded" and PaymentStatus.SUCCEEDED.is_final


def test_exception_semantics() -> None:
    assert issubclass(ProviderAuthError, ProviderError)
    assert not issubclass(ProviderTimeout, ProviderError)  # unknown is not failed
    assert not issubclass(ProviderUnavailable, ProviderError)
    assert ProviderUnavailable("x", provider="p").retryable is True
    assert ProviderTimeout("x", provider="p").retryable is False
    error = ProviderError("busy", provider="mpesa_ke", code="500.001.1001", retryable=True)
    assert (error.message, error.code, error.retryable) == ("busy", "500.001.1001", True)


@pytest.mark.django_db
def test_effective_config_fills_defaults_per_environment(tenant: object) -> None:
    from pesarail.providers.services import create_account

    account = create_account(
        tenant.merchant,  # type: ignore[attr-defined]
        provider="mpesa_ke", name="x", environment="sandbox", config={"shortcode": "1"},
        credentials={"consumer_key": "k", "consumer_secret": "s", "passkey": "p"})
    assert account.config == {"shortcode": "1"}  # only what was given is stored
    assert effective_config(account)["confirm_callbacks_with_query"] is False
    account.environment = "production"
    assert effective_config(account)["confirm_callbacks_with_query"] is True
