"""The provider contract: what crosses the boundary between pesarail and a provider.

Everything here is a frozen dataclass, an exception or a Protocol; nothing touches the
database. An adapter (e.g. :mod:`pesarail.providers.mpesa_ke`) converts units, phone
formats, timestamps and result codes *inside* itself, so callers only ever see
:class:`~pesarail.common.money.Money`, E.164 phone numbers, aware datetimes and the
statuses in :class:`PaymentStatus`.

How to read the exceptions (design.md section 4, rule 4):

=====================  =====================================================  =========
exception              meaning for a payment attempt                          retry?
=====================  =====================================================  =========
ProviderError          the provider definitely refused: the attempt FAILED    per flag
ProviderAuthError      (a ProviderError) our credentials/config were refused  no
ProviderUnavailable    nothing was accepted (connection refused, 5xx busy)   yes
ProviderTimeout        the request may have been accepted: outcome UNKNOWN    never
                       blindly; ask ``fetch_status`` / wait for the callback
=====================  =====================================================  =========

For reads (``fetch_status``, ``check_credentials``) no money can move, so an adapter
raises :class:`ProviderUnavailable` for every transport failure, timeouts included.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import httpx

from pesarail.common.money import Money

__all__ = [
    "ChargeRequest",
    "ChargeStarted",
    "CredentialCheck",
    "FieldSpec",
    "MalformedCallback",
    "PaymentProvider",
    "PaymentStatus",
    "ProviderAuthError",
    "ProviderError",
    "ProviderEvent",
    "ProviderException",
    "ProviderTimeout",
    "ProviderUnavailable",
    "StatusResult",
]


class PaymentStatus(StrEnum):
    """The outcome of a payment as a provider reports it (a ``str``)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # the customer declined (e.g. cancelled the phone prompt)
    EXPIRED = "expired"  # nobody answered in time
    PENDING = "pending"  # not decided yet (only from fetch_status)

    @property
    def is_final(self) -> bool:
        return self is not PaymentStatus.PENDING


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """Ask the customer to pay ``money`` from ``phone_e164``.

    ``reference`` is shown to the customer (the adapter truncates it to what the provider
    allows); ``callback_url`` is where the provider posts the result -- normally
    ``ProviderAccount.callback_url``, optionally with a query string of the caller's.
    """

    intent_id: str
    attempt_id: str
    money: Money
    phone_e164: str
    reference: str
    description: str
    callback_url: str


@dataclass(frozen=True, slots=True)
class ChargeStarted:
    """The provider accepted the request; the outcome arrives later (callback or
    ``fetch_status``).

    ``provider_reference`` is the id to match the callback and to query with (Daraja:
    ``CheckoutRequestID``); ``secondary_reference`` is any other id the provider gave
    (Daraja: ``MerchantRequestID``). ``next_action`` is JSON for the API/checkout, e.g.
    ``{"type": "phone_prompt", "phone": "+254708***149", "message": "...",
    "expires_in_seconds": 120}``. ``raw`` is the provider's response body.
    """

    provider_reference: str
    secondary_reference: str | None
    next_action: dict[str, Any]
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """A payment result, from a callback (``source="callback"``) or a status query
    (``source="status_query"``; then ``status`` may be ``pending``).

    ``result_code`` is the provider's code as a string (``"0"``, ``"1032"``);
    ``message`` is human and safe to show to the customer; ``provider_message`` is the
    provider's own text, for logs and staff. ``retryable`` says whether offering the
    customer "try again" makes sense. ``dedupe_key`` is unique per provider event (use it
    in the unique constraint that drops duplicate callbacks). ``receipt``, ``amount``,
    ``phone_e164`` and ``paid_at`` are filled when the provider sends them (Daraja: only
    in a success callback, never from a status query).
    """

    kind: Literal["payment_result"]
    provider_reference: str
    status: PaymentStatus
    result_code: str
    message: str
    retryable: bool
    receipt: str | None = None
    amount: Money | None = None
    phone_e164: str | None = None
    paid_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    source: Literal["callback", "status_query"] = "callback"
    secondary_reference: str | None = None
    provider_message: str = ""
    dedupe_key: str = ""

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    @property
    def pending(self) -> bool:
        return self.status is PaymentStatus.PENDING


#: ``fetch_status`` returns the same type; ``pending`` tells an undecided payment.
StatusResult = ProviderEvent


@dataclass(frozen=True, slots=True)
class CredentialCheck:
    """Result of ``check_credentials``: ``message`` is for the merchant and never holds
    a secret."""

    ok: bool
    message: str


# ----------------------------------------------------------------------- exceptions


class ProviderException(Exception):
    """Base of every provider failure. ``message`` is safe to show to the merchant (and,
    for ProviderError with a customer-facing cause, to the customer); ``code`` is the
    provider's error code when there is one."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        code: str = "",
        retryable: bool | None = None,
        raw: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.code = code
        if retryable is not None:
            self.retryable = retryable
        self.raw: dict[str, Any] = dict(raw or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.provider}:{self.code or '-'}: {self.message!r})"


class ProviderError(ProviderException):
    """The provider definitely refused the request: nothing will happen, the payment
    attempt FAILED. ``retryable`` says whether a *new* attempt may succeed later."""


class ProviderAuthError(ProviderError):
    """Our credentials or account configuration were refused (consumer key/secret,
    passkey, shortcode). The merchant must fix the provider account."""


class ProviderUnavailable(ProviderException):
    """The provider could not take the request (connection refused, overloaded, 5xx
    before processing): nothing was sent or accepted. Safe to retry later."""

    retryable = True


class ProviderTimeout(ProviderException):
    """No answer in time after the request was (possibly) sent: the outcome is UNKNOWN.
    Never retry a money-moving call on this; reconcile with ``fetch_status`` or the
    callback instead."""


class MalformedCallback(ValueError):
    """A callback body is not what the provider sends (not JSON, wrong shape)."""


# ---------------------------------------------------------------------- field specs


FieldKind = Literal["string", "digits", "choice", "bool", "int", "ip_list"]
_DIGITS = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One credential or config field an adapter needs, with its validation.

    ``secret`` fields are write-only everywhere; ``hint`` fields show their last four
    characters in API responses. ``default`` may be a callable taking the account's
    environment (``"sandbox"``, ``"production"``, ``"custom"``).
    """

    name: str
    label: str
    kind: FieldKind = "string"
    required: bool = True
    secret: bool = False
    hint: bool = False
    choices: tuple[str, ...] = ()
    default: Any = None
    min_value: int | None = None
    max_value: int | None = None
    max_length: int = 512
    help_text: str = ""

    def default_for(self, environment: str) -> Any:
        if callable(self.default):
            return self.default(environment)
        return self.default

    def clean(self, value: Any) -> Any:
        """Return the cleaned value or raise ``ValueError`` with a message."""
        kind = self.kind
        if kind in {"string", "digits", "choice"}:
            if isinstance(value, int) and not isinstance(value, bool) and kind == "digits":
                value = str(value)
            if not isinstance(value, str):
                raise ValueError("Must be a string.")
            if value == "":
                raise ValueError("May not be blank.")
            if value != value.strip():
                raise ValueError("Has leading or trailing spaces (a copy-paste slip?).")
            if len(value) > self.max_length:
                raise ValueError(f"At most {self.max_length} characters.")
            if kind == "digits" and not _DIGITS.fullmatch(value):
                raise ValueError("Digits only.")
            if kind == "choice" and value not in self.choices:
                raise ValueError(f"Must be one of: {', '.join(self.choices)}.")
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError("Must be true or false.")
            return value
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError("Must be an integer.")
            if self.min_value is not None and value < self.min_value:
                raise ValueError(f"Must be at least {self.min_value}.")
            if self.max_value is not None and value > self.max_value:
                raise ValueError(f"Must be at most {self.max_value}.")
            return value
        if kind == "ip_list":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("Must be a list of IP addresses or CIDR networks.")
            cleaned = []
            for item in value:
                try:
                    cleaned.append(str(ipaddress.ip_network(item.strip(), strict=False)))
                except ValueError:
                    raise ValueError(f"{item!r} is not an IP address or network.") from None
            return cleaned
        raise AssertionError(f"unknown field kind {kind}")  # pragma: no cover


# ------------------------------------------------------------------------- protocol


@runtime_checkable
class PaymentProvider(Protocol):
    """What every provider adapter offers. Adapters are cheap, per-account objects:
    build one with :func:`pesarail.providers.registry.get_provider` for each use; they
    share one pooled HTTP client and one token store per process.

    Constructor convention: ``Adapter(*, base_url, credentials, config, client=None)``
    where ``credentials``/``config`` are the account's decrypted credentials and cleaned
    config.
    """

    code: ClassVar[str]
    display_name: ClassVar[str]
    currencies: ClassVar[tuple[str, ...]]
    supports_stk_push: ClassVar[bool]
    supports_refund: ClassVar[bool]
    supports_payout: ClassVar[bool]
    signs_callbacks: ClassVar[bool]
    supports_status_query: ClassVar[bool]
    credential_fields: ClassVar[tuple[FieldSpec, ...]]
    config_fields: ClassVar[tuple[FieldSpec, ...]]
    default_base_urls: ClassVar[Mapping[str, str]]

    def __init__(
        self,
        *,
        base_url: str,
        credentials: Mapping[str, Any],
        config: Mapping[str, Any],
        client: httpx.Client | None = None,
    ) -> None: ...

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, list[str]]:
        """Cross-field checks after each field is clean; returns field -> messages."""
        ...

    def check_credentials(self) -> CredentialCheck:
        """Ask the provider whether the credentials work. Never raises for a refusal or
        a network failure: those are ``ok=False`` with a clear message."""
        ...

    def validate_charge(self, money: Money, phone_e164: str) -> None:
        """Refuse, without any I/O, a charge this provider cannot take: raises
        ``ValidationFailed`` (fields ``currency``, ``amount``, ``phone_number``).
        ``start_charge`` runs the same checks first."""
        ...

    def start_charge(self, request: ChargeRequest) -> ChargeStarted:
        """Start a charge. Raises ProviderError (refused), ProviderUnavailable (not sent),
        ProviderTimeout (unknown), or ValidationFailed for a request the provider cannot
        take at all (e.g. cents for M-Pesa). Never retries the money-moving call."""
        ...

    def parse_callback(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        """Parse a provider callback. Raises MalformedCallback (a ValueError)."""
        ...

    def fetch_status(self, provider_reference: str) -> ProviderEvent:
        """Ask the provider for the current status (``pending`` allowed). Idempotent;
        retried internally a little. Raises ProviderUnavailable or ProviderError."""
        ...

    def callback_ack(self, accepted: bool) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON body the provider expects in answer to a callback."""
        ...


ProviderClass = type[PaymentProvider]
FieldDefault = Callable[[str], Any]
FieldSpecs = Sequence[FieldSpec]
