"""Offline simulator of Safaricom's Daraja API (M-Pesa Kenya).

Speaks the real protocol -- OAuth token, M-Pesa Express (STK push), STK query, the STK
callback -- with Daraja's paths, field names, error envelopes and result codes, so a
Daraja client works against it by changing only its base URL. Outcomes are scripted by
the last four digits of the phone number, or chosen by a person (or a test) through the
control API under ``/_sandbox/``. See ``docs/sandbox.md``.

Plain WSGI, standard library plus httpx (for callbacks); no Django.

    from pesarail.sandbox.daraja import DarajaConfig, run_daraja
    server, sim = run_daraja(config=DarajaConfig(auto_answer_seconds=0.2))
    ...  # point a Daraja client at server.url
    server.stop()  # also stops the simulator's background threads
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import dataclasses
import hmac
import json
import logging
import math
import random
import re
import secrets
import string
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any, Final, Literal
from urllib.parse import parse_qs, urlsplit
from wsgiref.types import StartResponse, WSGIEnvironment

from pesarail.sandbox.scheduler import (
    AutoAnswerJob,
    CallbackJob,
    DeliveryResult,
    Scheduler,
)
from pesarail.sandbox.server import SandboxServer, serve_forever

__all__ = [
    "ACTIONS",
    "DEFAULT_APP",
    "EAT",
    "RESULT_DESCRIPTIONS",
    "SANDBOX_PASSKEY",
    "SCRIPTED_OUTCOMES",
    "DarajaApp",
    "DarajaConfig",
    "DarajaSimulator",
    "LatencySpec",
    "PromptAlreadyAnswered",
    "PromptNotFound",
    "eat_now",
    "normalize_msisdn",
    "run_daraja",
    "stk_password",
    "stk_timestamp",
]

log = logging.getLogger(__name__)

#: East Africa Time. Kenya has no daylight saving, so a fixed offset is exact.
EAT: Final = timezone(timedelta(hours=3), "EAT")

#: Safaricom's public sandbox Lipa Na M-Pesa Online passkey (shortcode 174379).
SANDBOX_PASSKEY: Final = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"

TOKEN_PATH: Final = "/oauth/v1/generate"
STK_PUSH_PATH: Final = "/mpesa/stkpush/v1/processrequest"
STK_QUERY_PATH: Final = "/mpesa/stkpushquery/v1/query"
CONTROL_PREFIX: Final = "/_sandbox/"

#: STK result codes the simulator produces, with Daraja's descriptions.
RESULT_DESCRIPTIONS: Final[Mapping[int, str]] = {
    0: "The service request is processed successfully.",
    1: "The balance is insufficient for the transaction.",
    1001: "Unable to lock subscriber, a transaction is already in process for the current"
    " subscriber",
    1019: "Transaction has expired.",
    1032: "Request cancelled by user",
    1037: "DS timeout user cannot be reached",
    2001: "The initiator information is invalid.",
}

#: Last four digits of PhoneNumber -> the result code its prompt answers with.
#: Every other number (e.g. Safaricom's 254708374149) succeeds.
SCRIPTED_OUTCOMES: Final[Mapping[str, int]] = {
    "1032": 1032,
    "0001": 1,
    "1037": 1037,
    "2001": 2001,
    "1001": 1001,
    "1019": 1019,
}

#: Control-plane answers a person can give on the phone. ``ignore`` leaves the prompt
#: unanswered: it times out with 1037 when its auto-answer time comes.
ACTIONS: Final[Mapping[str, int | None]] = {
    "approve": 0,
    "cancel": 1032,
    "wrong_pin": 2001,
    "ignore": None,
}

_TIMEOUT_CODE: Final = 1037
_STATUS_BY_CODE: Final[Mapping[int, str]] = {
    0: "completed",
    1032: "cancelled",
    1037: "timed_out",
    1019: "expired",
}
_PENDING_STATUSES: Final = frozenset({"open", "ignored"})

_PUSH_ACCEPTED: Final = "Success. Request accepted for processing"
_QUERY_ACCEPTED: Final = "The service request has been accepted successsfully"  # sic (Daraja)
_LOCKED: Final = RESULT_DESCRIPTIONS[1001]
_TRANSACTION_TYPES: Final = frozenset({"CustomerPayBillOnline", "CustomerBuyGoodsOnline"})
_MSISDN_RE: Final = re.compile(r"^254[17]\d{8}$")
_TIMESTAMP_RE: Final = re.compile(r"^\d{14}$")
_DIGITS_RE: Final = re.compile(r"^\d{1,15}$")
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_TOKEN_ALPHABET: Final = string.ascii_letters + string.digits
_RECEIPT_ALPHABET: Final = string.ascii_uppercase + string.digits
_MAX_BODY: Final = 1 << 20
_Z99: Final = 2.3263478740408408  # standard normal quantile at 0.99


def eat_now() -> datetime:
    """The current time in East Africa Time."""
    return datetime.now(EAT)


def stk_timestamp(when: datetime | None = None) -> str:
    """A Daraja ``Timestamp`` (``YYYYMMDDHHmmss`` in EAT)."""
    return (when or eat_now()).astimezone(EAT).strftime("%Y%m%d%H%M%S")


def stk_password(shortcode: str | int, passkey: str, timestamp: str) -> str:
    """``base64(BusinessShortCode + Passkey + Timestamp)`` as Daraja expects it."""
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode("ascii")


def _random_id() -> str:
    """An id shaped like Daraja's MerchantRequestID / requestId (``2654-4b64-97ff-b8...``)."""
    h = uuid.uuid4().hex
    return f"{h[0:4]}-{h[4:8]}-{h[8:12]}-{h[12:24]}{secrets.randbelow(9_000_000) + 1_000_000}"


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DarajaApp:
    """One Daraja app: a consumer key/secret pair bound to one shortcode and passkey."""

    consumer_key: str
    consumer_secret: str
    shortcode: str
    passkey: str
    name: str = ""

    def __post_init__(self) -> None:
        for attr in ("consumer_key", "consumer_secret", "passkey"):
            value = getattr(self, attr)
            if not isinstance(value, str) or not value:
                raise ValueError(f"DarajaApp.{attr} must be a non-empty string")
        shortcode = self.shortcode
        if isinstance(shortcode, int) and not isinstance(shortcode, bool):
            shortcode = str(shortcode)
            object.__setattr__(self, "shortcode", shortcode)
        if not isinstance(shortcode, str) or not _DIGITS_RE.match(shortcode):
            raise ValueError("DarajaApp.shortcode must be digits")
        if not isinstance(self.name, str):
            raise TypeError("DarajaApp.name must be a string")
        if not self.name:
            object.__setattr__(self, "name", f"app-{shortcode}-{self.consumer_key[:8]}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DarajaApp:
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"unknown app field(s): {', '.join(unknown)}")
        missing = sorted({"consumer_key", "consumer_secret", "shortcode", "passkey"} - set(data))
        if missing:
            raise ValueError(f"missing app field(s): {', '.join(missing)}")
        return cls(**dict(data))

    def public_dict(self) -> dict[str, Any]:
        """Everything except the secret and the passkey."""
        return {"name": self.name, "consumer_key": self.consumer_key, "shortcode": self.shortcode}


#: The app every simulator knows unless configured otherwise.
DEFAULT_APP: Final = DarajaApp(
    consumer_key="pesarail-sandbox-key",
    consumer_secret="pesarail-sandbox-secret",
    shortcode="174379",
    passkey=SANDBOX_PASSKEY,
    name="pesarail-sandbox",
)


@dataclass(frozen=True)
class LatencySpec:
    """Added response time: ``fixed`` seconds plus, if ``median`` and ``p99`` are given,
    a log-normal draw with that median and 99th percentile (capped at 10 x p99)."""

    fixed: float = 0.0
    median: float | None = None
    p99: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fixed", _non_negative("fixed", self.fixed))
        if (self.median is None) != (self.p99 is None):
            raise ValueError("latency median and p99 must be given together")
        if self.median is not None and self.p99 is not None:
            median = _non_negative("median", self.median)
            p99 = _non_negative("p99", self.p99)
            if median <= 0 or p99 < median:
                raise ValueError("latency needs 0 < median <= p99")
            object.__setattr__(self, "median", median)
            object.__setattr__(self, "p99", p99)

    @classmethod
    def coerce(cls, value: Any) -> LatencySpec:
        """Accept a LatencySpec, a number (fixed seconds) or ``{"fixed", "median", "p99"}``."""
        if isinstance(value, LatencySpec):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return cls(fixed=float(value))
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {"fixed", "median", "p99"})
            if unknown:
                raise ValueError(f"unknown latency key(s): {', '.join(map(str, unknown))}")
            return cls(**dict(value))
        raise ValueError("latency must be a number of seconds or {fixed, median, p99}")

    @property
    def is_zero(self) -> bool:
        return self.fixed == 0 and self.median is None

    def sample(self, rng: random.Random) -> float:
        delay = self.fixed
        if self.median is not None and self.p99 is not None:
            sigma = math.log(self.p99 / self.median) / _Z99
            draw = rng.lognormvariate(math.log(self.median), sigma) if sigma > 0 else self.median
            delay += min(draw, 10 * self.p99)
        return delay

    def to_dict(self) -> dict[str, Any]:
        return {"fixed": self.fixed, "median": self.median, "p99": self.p99}


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number")
    if value < 0:
        raise ValueError(f"{name} must be >= 0")
    return float(value)


_FLOAT_FIELDS: Final = (
    "token_ttl_seconds",
    "timestamp_tolerance_seconds",
    "auto_answer_seconds",
    "callback_delay_seconds",
    "late_callback_seconds",
    "out_of_order_window_seconds",
    "timeout_hold_seconds",
)
_BOOL_FIELDS: Final = (
    "expires_in_as_number",
    "lose_callbacks",
    "out_of_order",
    "allow_external_callbacks",
)
_COUNT_FIELDS: Final = ("duplicate_callbacks", "max_prompts", "max_callback_log")
_LATENCY_FIELDS: Final = ("token_latency", "stkpush_latency", "query_latency")
_PUSH_FAULTS: Final = (None, "500", "timeout")


@dataclass(frozen=True)
class DarajaConfig:
    """Everything that shapes the simulator's behaviour. Immutable; change it at runtime
    with :meth:`DarajaSimulator.update_config` or ``POST /_sandbox/config``."""

    apps: tuple[DarajaApp, ...] = (DEFAULT_APP,)
    # OAuth
    token_ttl_seconds: float = 3599.0
    expires_in_as_number: bool = False  # Daraja's docs show 3599, real responses "3599"
    # STK push validation
    timestamp_tolerance_seconds: float = 3600.0
    # the phone
    auto_answer_seconds: float = 3.0
    # callbacks
    callback_delay_seconds: float = 0.0
    late_callback_seconds: float = 0.0
    duplicate_callbacks: int = 0
    lose_callbacks: bool = False
    callback_loss_rate: float = 0.0
    out_of_order: bool = False
    out_of_order_window_seconds: float = 1.0
    allow_external_callbacks: bool = False
    # provider-side faults
    push_fault: Literal["500", "timeout"] | None = None
    timeout_hold_seconds: float = 30.0
    # latency per endpoint
    token_latency: LatencySpec = LatencySpec()
    stkpush_latency: LatencySpec = LatencySpec()
    query_latency: LatencySpec = LatencySpec()
    # control plane and housekeeping
    control_token: str | None = None
    max_prompts: int = 1000
    max_callback_log: int = 1000
    seed: int | None = None

    def __post_init__(self) -> None:
        apps = tuple(self.apps)
        if not apps or not all(isinstance(a, DarajaApp) for a in apps):
            raise ValueError("apps must be a non-empty sequence of DarajaApp")
        if len({a.consumer_key for a in apps}) != len(apps):
            raise ValueError("apps must have distinct consumer keys")
        if len({a.name for a in apps}) != len(apps):
            raise ValueError("apps must have distinct names")
        object.__setattr__(self, "apps", apps)
        for name in _FLOAT_FIELDS:
            object.__setattr__(self, name, _non_negative(name, getattr(self, name)))
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be true or false")
        for name in _COUNT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer")
        if self.max_prompts < 1 or self.max_callback_log < 1:
            raise ValueError("max_prompts and max_callback_log must be >= 1")
        rate = _non_negative("callback_loss_rate", self.callback_loss_rate)
        if rate > 1:
            raise ValueError("callback_loss_rate must be between 0 and 1")
        object.__setattr__(self, "callback_loss_rate", rate)
        for name in _LATENCY_FIELDS:
            object.__setattr__(self, name, LatencySpec.coerce(getattr(self, name)))
        fault: Any = self.push_fault
        if isinstance(fault, int) and not isinstance(fault, bool):
            fault = str(fault)
        if fault not in _PUSH_FAULTS:
            raise ValueError('push_fault must be null, "500" or "timeout"')
        object.__setattr__(self, "push_fault", fault)
        if self.control_token is not None and (
            not isinstance(self.control_token, str) or not self.control_token
        ):
            raise ValueError("control_token must be a non-empty string or null")
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError("seed must be an integer or null")

    def app_by_key(self, consumer_key: str) -> DarajaApp | None:
        for app in self.apps:
            if app.consumer_key == consumer_key:
                return app
        return None

    def with_changes(self, changes: Mapping[str, Any]) -> DarajaConfig:
        """A copy with ``changes`` applied (JSON-friendly values accepted).

        Raises ``ValueError`` for unknown keys, ``apps`` (use ``add_app``) or bad values,
        ``TypeError`` for values of the wrong type.
        """
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(map(str, unknown))}")
        if "apps" in changes:
            raise ValueError("apps cannot be changed here; add apps with add_app")
        return dataclasses.replace(self, **dict(changes))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view; secrets are not shown."""
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "apps":
                data["apps"] = [a.public_dict() for a in value]
            elif f.name == "control_token":
                data["control_token_set"] = value is not None
            elif isinstance(value, LatencySpec):
                data[f.name] = value.to_dict()
            else:
                data[f.name] = value
        return data


# --------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------


class PromptNotFound(LookupError):
    """No prompt has that CheckoutRequestID."""


class PromptAlreadyAnswered(RuntimeError):
    """The prompt was answered (or ignored) already."""

    def __init__(self, prompt: dict[str, Any]) -> None:
        super().__init__(f"prompt {prompt['checkout_request_id']} is {prompt['status']}")
        self.prompt = prompt


@dataclass
class _Token:
    value: str
    consumer_key: str
    expires_at: float  # time.monotonic()


@dataclass
class _Prompt:
    checkout_request_id: str
    merchant_request_id: str
    app_key: str
    app_name: str
    shortcode: str
    party_a: str
    party_b: str
    phone: str
    amount: int
    transaction_type: str
    account_reference: str
    transaction_desc: str
    callback_url: str
    created_at: datetime
    auto_answer_at: datetime
    scripted_code: int
    generation: int
    status: str = "open"
    result_code: int | None = None
    result_desc: str | None = None
    receipt: str | None = None
    answered_at: datetime | None = None
    answered_by: str | None = None  # "auto" | "control"
    callback_payload: dict[str, Any] | None = None

    @property
    def pending(self) -> bool:
        return self.status in _PENDING_STATUSES

    def to_dict(self) -> dict[str, Any]:
        business = self.transaction_desc or self.account_reference or self.app_name
        return {
            "checkout_request_id": self.checkout_request_id,
            "merchant_request_id": self.merchant_request_id,
            "msisdn": self.phone,
            "party_a": self.party_a,
            "party_b": self.party_b,
            "amount": self.amount,
            "shortcode": self.shortcode,
            "transaction_type": self.transaction_type,
            "account_reference": self.account_reference,
            "transaction_desc": self.transaction_desc,
            "business_name": business,
            "app": self.app_name,
            "prompt_text": (
                f"Do you want to pay KES {self.amount} to {business}"
                f" account no. {self.account_reference}? Enter M-PESA PIN."
            ),
            "status": self.status,
            "pending": self.pending,
            "scripted_result_code": self.scripted_code,
            "result_code": self.result_code,
            "result_desc": self.result_desc,
            "mpesa_receipt_number": self.receipt,
            "callback_url": self.callback_url,
            "created_at": self.created_at.isoformat(),
            "auto_answer_at": self.auto_answer_at.isoformat(),
            "answered_at": self.answered_at.isoformat() if self.answered_at else None,
            "answered_by": self.answered_by,
        }


def _new_stats() -> dict[str, Any]:
    return {
        "token_issues": {},
        "token_errors": 0,
        "pushes": 0,
        "push_errors": 0,
        "queries": 0,
        "query_errors": 0,
        "callbacks_sent": 0,
        "callbacks_failed": 0,
        "callbacks_lost": 0,
        "callbacks_refused": 0,
    }


@dataclass
class _Response:
    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)


class _Invalid(Exception):
    """A validation failure carrying the response to send."""

    def __init__(self, response: _Response) -> None:
        super().__init__(response.status)
        self.response = response


def _envelope(status: int, code: str, message: str, request_id: str | None = None) -> _Response:
    return _Response(
        status,
        {"requestId": request_id or _random_id(), "errorCode": code, "errorMessage": message},
    )


def _bad_field(name: str) -> _Invalid:
    return _Invalid(_envelope(400, "400.002.02", f"Bad Request - Invalid {name}"))


def _control_error(status: int, message: str) -> _Response:
    return _Response(status, {"error": message})


def normalize_msisdn(value: str) -> str:
    """``0712 345 678``, ``+254712345678``, ``712345678`` -> ``254712345678`` (best effort)."""
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) == 10 and digits.startswith("0"):
        return "254" + digits[1:]
    if len(digits) == 9 and digits[0] in "17":
        return "254" + digits
    return digits


def _digits(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    if isinstance(value, str) and _DIGITS_RE.match(value.strip()):
        return value.strip()
    return None


# --------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------


class DarajaSimulator:
    """A WSGI application that behaves like Daraja. Thread-safe.

    Background work (auto-answers, callbacks) runs on a :class:`Scheduler` that starts
    lazily on the first STK push, or explicitly with :meth:`start_background`.
    """

    provider: Final = "mpesa_ke"

    def __init__(self, config: DarajaConfig | None = None) -> None:
        self._initial_config = config or DarajaConfig()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._generation = 0
        self._scheduler = Scheduler(
            on_auto_answer=self._on_auto_answer,
            on_delivery=self._on_delivery,
            check_url=self._check_callback_url,
            name="daraja-sandbox",
            # Daraja delivers callbacks concurrently; a handful of senders would make a
            # busy receiver's latency throttle every later callback.
            senders=16,
        )
        self._init_state(self._initial_config)

    # -- lifecycle -------------------------------------------------------------------

    def _init_state(self, config: DarajaConfig) -> None:
        """(Re)initialise all state. Caller holds the lock (or is ``__init__``)."""
        self._config = config
        self._rng = random.Random(config.seed)
        self._generation += 1
        self._tokens: dict[str, _Token] = {}
        self._token_by_app: dict[str, str] = {}
        self._prompts: dict[str, _Prompt] = {}
        self._open_by_phone: dict[str, str] = {}
        self._receipts: set[str] = set()
        self._callback_log: deque[dict[str, Any]] = deque(maxlen=config.max_callback_log)
        self._log_seq = 0
        self._stats = _new_stats()

    def start_background(self) -> None:
        """Start the scheduler thread (idempotent; also happens lazily)."""
        self._closing.clear()
        self._scheduler.start()

    def stop(self) -> None:
        """Stop background threads; pending auto-answers and callbacks are dropped.
        Requests held by a latency or ``timeout`` fault are released at once."""
        self._closing.set()
        self._scheduler.stop()

    def _ensure_background(self) -> None:
        if not self._scheduler.running:
            self.start_background()

    # -- Python control API (same behaviour as /_sandbox/) ---------------------------

    @property
    def config(self) -> DarajaConfig:
        return self._config

    def update_config(self, **changes: Any) -> DarajaConfig:
        """Partially update the config; raises ``ValueError`` (unknown key, bad value) or
        ``TypeError`` (wrong type); the config is unchanged then."""
        with self._lock:
            new = self._config.with_changes(changes)
            self._config = new
            if "seed" in changes:
                self._rng.seed(new.seed)
            if new.max_callback_log != self._callback_log.maxlen:
                self._callback_log = deque(self._callback_log, maxlen=new.max_callback_log)
            return new

    def reset(self) -> None:
        """Forget tokens, prompts, callbacks and stats; drop pending jobs; restore the
        config (and apps) the simulator was constructed with."""
        with self._lock:
            self._scheduler.clear()
            self._init_state(self._initial_config)
            self._changed.notify_all()

    def revoke_tokens(self) -> int:
        """Invalidate every current access token; returns how many were revoked."""
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
            self._token_by_app.clear()
            return count

    def add_app(self, app: DarajaApp) -> DarajaApp:
        """Register another credential set at runtime (``ValueError`` on duplicates)."""
        with self._lock:
            self._config = dataclasses.replace(self._config, apps=(*self._config.apps, app))
            return app

    def apps(self) -> list[dict[str, Any]]:
        return [a.public_dict() for a in self._config.apps]

    def prompts(
        self, msisdn: str | None = None, *, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Prompts, newest first; optionally for one phone number and/or one status
        (``pending`` matches open and ignored prompts)."""
        phone = normalize_msisdn(msisdn) if msisdn else None
        with self._lock:
            found: list[dict[str, Any]] = []
            for prompt in reversed(self._prompts.values()):
                if phone is not None and prompt.phone != phone:
                    continue
                if status is not None and not (
                    prompt.status == status or (status == "pending" and prompt.pending)
                ):
                    continue
                found.append(prompt.to_dict())
                if len(found) >= limit:
                    break
            return found

    def prompt(self, checkout_request_id: str) -> dict[str, Any]:
        with self._lock:
            prompt = self._prompts.get(checkout_request_id)
            if prompt is None:
                raise PromptNotFound(checkout_request_id)
            return prompt.to_dict()

    def answer(self, checkout_request_id: str, action: str) -> dict[str, Any]:
        """Answer an open prompt as the phone's owner would.

        ``action``: approve (0), cancel (1032), wrong_pin (2001) or ignore (no answer;
        times out with 1037 at the prompt's auto-answer time). Raises ``ValueError``,
        :class:`PromptNotFound` or :class:`PromptAlreadyAnswered`.
        """
        if action not in ACTIONS:
            raise ValueError(f"action must be one of: {', '.join(ACTIONS)}")
        with self._lock:
            prompt = self._prompts.get(checkout_request_id)
            if prompt is None:
                raise PromptNotFound(checkout_request_id)
            if prompt.status != "open":
                raise PromptAlreadyAnswered(prompt.to_dict())
            code = ACTIONS[action]
            if code is None:
                prompt.status = "ignored"
                prompt.answered_by = "control"
                jobs: list[tuple[float, CallbackJob]] = []
            else:
                jobs = self._finish(prompt, code, "control")
            result = prompt.to_dict()
        self._schedule_callbacks(jobs)
        return result

    def callbacks(self, checkout_request_id: str | None = None) -> list[dict[str, Any]]:
        """The callback delivery log, oldest first."""
        with self._lock:
            return [
                copy.deepcopy(entry)
                for entry in self._callback_log
                if checkout_request_id is None
                or entry["checkout_request_id"] == checkout_request_id
            ]

    def wait_for_callbacks(
        self,
        count: int = 1,
        *,
        checkout_request_id: str | None = None,
        timeout: float = 5.0,
    ) -> list[dict[str, Any]]:
        """Block until the log holds ``count`` entries (for one prompt, if given) or
        ``timeout`` passes; returns the matching entries either way."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                entries = self.callbacks(checkout_request_id)
                remaining = deadline - time.monotonic()
                if len(entries) >= count or remaining <= 0:
                    return entries
                self._changed.wait(remaining)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            stats = copy.deepcopy(self._stats)
            stats["tokens_issued"] = sum(stats["token_issues"].values())
            stats["prompts_open"] = sum(1 for p in self._prompts.values() if p.pending)
            stats["prompts_total"] = len(self._prompts)
        stats["jobs_pending"] = self._scheduler.pending()
        return stats

    def token_issue_count(self, app: str | None = None) -> int:
        """Tokens issued so far, for one app (name or consumer key) or for all."""
        with self._lock:
            issues: dict[str, int] = self._stats["token_issues"]
            if app is None:
                return sum(issues.values())
            for a in self._config.apps:
                if app in (a.name, a.consumer_key):
                    return issues.get(a.name, 0)
            return 0

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "provider": self.provider,
            "time": eat_now().isoformat(),
            "background_running": self._scheduler.running,
            "apps": self.apps(),
        }

    # -- WSGI ------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            response = self._route(environ)
        except Exception:
            log.exception("daraja sandbox: unhandled error")
            response = _envelope(500, "500.003.1001", "Internal Server Error")
        status = f"{response.status} {HTTPStatus(response.status).phrase}"
        if response.status == 204:
            start_response(status, response.headers)
            return [b""]
        data = json.dumps(response.body).encode("utf-8")
        headers = [
            ("Content-Type", "application/json;charset=UTF-8"),
            ("Content-Length", str(len(data))),
            *response.headers,
        ]
        start_response(status, headers)
        return [data]

    def _route(self, environ: WSGIEnvironment) -> _Response:
        path = environ.get("PATH_INFO", "") or "/"
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if path == TOKEN_PATH:
            return self._handle_token(environ, method)
        if path == STK_PUSH_PATH:
            return self._api_call(environ, method, "stkpush", self._stk_push)
        if path == STK_QUERY_PATH:
            return self._api_call(environ, method, "query", self._stk_query)
        if path.startswith(CONTROL_PREFIX) or path == CONTROL_PREFIX.rstrip("/"):
            return self._control(environ, method, path)
        return _envelope(404, "404.001.01", "Resource not found")

    # -- helpers ---------------------------------------------------------------------

    def _sleep(self, spec: LatencySpec) -> None:
        if spec.is_zero:
            return
        with self._lock:
            delay = spec.sample(self._rng)
        if delay > 0:
            self._closing.wait(delay)  # sleeps this request's thread only

    @staticmethod
    def _read_body(environ: WSGIEnvironment) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length <= 0:
            return b""
        if length > _MAX_BODY:
            raise ValueError("request body too large")
        data: bytes = environ["wsgi.input"].read(length)
        return data

    @classmethod
    def _read_json_object(cls, environ: WSGIEnvironment) -> dict[str, Any] | None:
        """The body as a JSON object, ``{}`` if empty, None if malformed."""
        try:
            raw = cls._read_body(environ)
            if not raw.strip():
                return {}
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    # -- OAuth -----------------------------------------------------------------------

    def _handle_token(self, environ: WSGIEnvironment, method: str) -> _Response:
        if method != "GET":
            return _envelope(405, "405.001", "Method Not Allowed")
        config = self._config
        self._sleep(config.token_latency)
        app = self._basic_auth_app(config, str(environ.get("HTTP_AUTHORIZATION", "")))
        if app is None:
            with self._lock:
                self._stats["token_errors"] += 1
            return _envelope(400, "400.008.01", "Invalid Authentication passed")
        query = parse_qs(str(environ.get("QUERY_STRING", "")))
        if query.get("grant_type") != ["client_credentials"]:
            with self._lock:
                self._stats["token_errors"] += 1
            return _envelope(400, "400.008.02", "Invalid grant type passed")
        value = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(28))
        with self._lock:
            ttl = self._config.token_ttl_seconds
            old = self._token_by_app.pop(app.consumer_key, None)
            if old is not None:  # a new token invalidates the app's previous one
                self._tokens.pop(old, None)
            self._tokens[value] = _Token(value, app.consumer_key, time.monotonic() + ttl)
            self._token_by_app[app.consumer_key] = value
            issues = self._stats["token_issues"]
            issues[app.name] = issues.get(app.name, 0) + 1
            as_number = self._config.expires_in_as_number
        expires_in: int | str = int(ttl) if as_number else str(int(ttl))
        return _Response(200, {"access_token": value, "expires_in": expires_in})

    @staticmethod
    def _basic_auth_app(config: DarajaConfig, header: str) -> DarajaApp | None:
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        key, sep, secret = decoded.partition(":")
        if not sep:
            return None
        app = config.app_by_key(key)
        if app is None or not hmac.compare_digest(
            secret.encode("utf-8"), app.consumer_secret.encode("utf-8")
        ):
            return None
        return app

    def _bearer_app(self, environ: WSGIEnvironment) -> DarajaApp | _Response:
        header = str(environ.get("HTTP_AUTHORIZATION", "")).strip()
        if not header:
            return _envelope(404, "404.001.03", "Invalid Access Token")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            return _envelope(404, "404.001.04", "Invalid Authenticator Header")
        value = value.strip()
        with self._lock:
            token = self._tokens.get(value) if value else None
            if token is not None and token.expires_at <= time.monotonic():
                self._tokens.pop(value, None)
                if self._token_by_app.get(token.consumer_key) == value:
                    del self._token_by_app[token.consumer_key]
                token = None
            app = self._config.app_by_key(token.consumer_key) if token else None
        if app is None:
            return _envelope(404, "404.001.03", "Invalid Access Token")
        return app

    def _api_call(
        self,
        environ: WSGIEnvironment,
        method: str,
        endpoint: Literal["stkpush", "query"],
        handler: Callable[[DarajaApp, dict[str, Any], DarajaConfig], _Response],
    ) -> _Response:
        if method != "POST":
            return _envelope(405, "405.001", "Method Not Allowed", None)
        config = self._config
        self._sleep(config.stkpush_latency if endpoint == "stkpush" else config.query_latency)
        auth = self._bearer_app(environ)
        if isinstance(auth, _Response):
            response = auth
        else:
            body = self._read_json_object(environ)
            if body is None:
                response = _envelope(400, "400.002.05", "Invalid request payload")
            else:
                try:
                    response = handler(auth, body, config)
                except _Invalid as invalid:
                    response = invalid.response
        if response.status != 200:
            key = "push_errors" if endpoint == "stkpush" else "query_errors"
            with self._lock:
                self._stats[key] += 1
        return response

    # -- STK push --------------------------------------------------------------------

    def _check_shortcode_and_timestamp(
        self, app: DarajaApp, body: Mapping[str, Any], config: DarajaConfig
    ) -> tuple[str, str]:
        """Validate BusinessShortCode and Timestamp (400s); return them for the
        password check, which callers run after the other field checks."""
        shortcode = _digits(body.get("BusinessShortCode"))
        if shortcode is None or shortcode != app.shortcode:
            raise _bad_field("BusinessShortCode")
        raw_ts = body.get("Timestamp")
        timestamp = str(raw_ts) if isinstance(raw_ts, str | int) else ""
        if isinstance(raw_ts, bool) or not _TIMESTAMP_RE.match(timestamp):
            raise _bad_field("Timestamp")
        try:
            when = datetime.strptime(timestamp, "%Y%m%d%H%M%S").replace(tzinfo=EAT)
        except ValueError:
            raise _bad_field("Timestamp") from None
        if abs((eat_now() - when).total_seconds()) > config.timestamp_tolerance_seconds:
            raise _bad_field("Timestamp")
        return shortcode, timestamp

    @staticmethod
    def _check_password(
        app: DarajaApp, body: Mapping[str, Any], shortcode: str, timestamp: str
    ) -> None:
        password = body.get("Password")
        expected = stk_password(shortcode, app.passkey, timestamp)
        if not isinstance(password, str) or not hmac.compare_digest(
            password.encode("utf-8"), expected.encode("utf-8")
        ):
            raise _Invalid(_envelope(500, "500.001.1001", "Wrong credentials"))

    def _stk_push(self, app: DarajaApp, body: dict[str, Any], config: DarajaConfig) -> _Response:
        if config.push_fault == "500":
            return _envelope(500, "500.003.02", "System is busy")
        shortcode, timestamp = self._check_shortcode_and_timestamp(app, body, config)

        transaction_type = body.get("TransactionType")
        if transaction_type not in _TRANSACTION_TYPES:
            raise _bad_field("TransactionType")
        amount = self._parse_amount(body.get("Amount"))
        party_a = self._msisdn(body.get("PartyA"), "PartyA")
        party_b = _digits(body.get("PartyB"))
        if party_b is None:
            raise _bad_field("PartyB")
        phone = self._msisdn(body.get("PhoneNumber"), "PhoneNumber")
        callback_url = body.get("CallBackURL")
        if not isinstance(callback_url, str) or not self._is_http_url(callback_url):
            raise _bad_field("CallBackURL")
        account_reference = body.get("AccountReference")
        if isinstance(account_reference, int) and not isinstance(account_reference, bool):
            account_reference = str(account_reference)
        if not isinstance(account_reference, str) or len(account_reference) > 12:
            raise _bad_field("AccountReference")
        transaction_desc = body.get("TransactionDesc", "")
        if transaction_desc is None:
            transaction_desc = ""
        if not isinstance(transaction_desc, str) or len(transaction_desc) > 13:
            raise _bad_field("TransactionDesc")
        self._check_password(app, body, shortcode, timestamp)

        self._ensure_background()
        with self._lock:
            if phone in self._open_by_phone:
                raise _Invalid(_envelope(500, "500.001.1001", _LOCKED))
            now = eat_now()
            checkout_id = self._new_checkout_id(now, phone)
            auto_delay = self._config.auto_answer_seconds
            prompt = _Prompt(
                checkout_request_id=checkout_id,
                merchant_request_id=_random_id(),
                app_key=app.consumer_key,
                app_name=app.name,
                shortcode=shortcode,
                party_a=party_a,
                party_b=party_b,
                phone=phone,
                amount=amount,
                transaction_type=str(transaction_type),
                account_reference=account_reference,
                transaction_desc=transaction_desc,
                callback_url=callback_url,
                created_at=now,
                auto_answer_at=now + timedelta(seconds=auto_delay),
                scripted_code=SCRIPTED_OUTCOMES.get(phone[-4:], 0),
                generation=self._generation,
            )
            self._prompts[checkout_id] = prompt
            self._open_by_phone[phone] = checkout_id
            self._stats["pushes"] += 1
            self._prune_prompts()
            hold = self._config.timeout_hold_seconds if config.push_fault == "timeout" else 0.0
        self._scheduler.schedule(AutoAnswerJob(checkout_id, prompt.generation), auto_delay)
        log.info("daraja sandbox: STK push %s for KES %s", checkout_id, amount)
        if hold > 0:
            # The prompt goes ahead; only the HTTP answer is late (the client times out).
            self._closing.wait(hold)
        return _Response(
            200,
            {
                "MerchantRequestID": prompt.merchant_request_id,
                "CheckoutRequestID": checkout_id,
                "ResponseCode": "0",
                "ResponseDescription": _PUSH_ACCEPTED,
                "CustomerMessage": _PUSH_ACCEPTED,
            },
        )

    @staticmethod
    def _parse_amount(value: Any) -> int:
        amount: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            amount = value
        elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            amount = int(value.strip())
        if amount is None or amount < 1:
            raise _bad_field("Amount")
        return amount

    @staticmethod
    def _msisdn(value: Any, name: str) -> str:
        text = _digits(value)
        if text is None or not _MSISDN_RE.match(text):
            raise _bad_field(name)
        return text

    @staticmethod
    def _is_http_url(value: str) -> bool:
        if value != value.strip() or " " in value:
            return False
        try:
            parts = urlsplit(value)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and bool(host)

    def _new_checkout_id(self, now: datetime, phone: str) -> str:
        """``ws_CO_`` + DDMMYYYYHHMMSS + milliseconds + the subscriber digits, as Daraja
        does; unique among the prompts held. Caller holds the lock."""
        stamp = now.strftime("%d%m%Y%H%M%S")
        millis = f"{now.microsecond // 1000:03d}"
        while True:
            candidate = f"ws_CO_{stamp}{millis}{phone[3:]}"
            if candidate not in self._prompts:
                return candidate
            millis = f"{self._rng.randrange(1000):03d}"

    def _prune_prompts(self) -> None:
        excess = len(self._prompts) - self._config.max_prompts
        if excess <= 0:
            return
        for checkout_id in [cid for cid, p in self._prompts.items() if not p.pending][:excess]:
            del self._prompts[checkout_id]

    # -- STK query -------------------------------------------------------------------

    def _stk_query(self, app: DarajaApp, body: dict[str, Any], config: DarajaConfig) -> _Response:
        shortcode, timestamp = self._check_shortcode_and_timestamp(app, body, config)
        checkout_id = body.get("CheckoutRequestID")
        if not isinstance(checkout_id, str) or not checkout_id:
            raise _bad_field("CheckoutRequestID")
        self._check_password(app, body, shortcode, timestamp)
        with self._lock:
            self._stats["queries"] += 1
            prompt = self._prompts.get(checkout_id)
            if prompt is None or prompt.app_key != app.consumer_key:
                raise _bad_field("CheckoutRequestID")
            if prompt.pending:
                return _envelope(
                    500, "500.001.1001", "The transaction is being processed", checkout_id
                )
            return _Response(
                200,
                {
                    "ResponseCode": "0",
                    "ResponseDescription": _QUERY_ACCEPTED,
                    "MerchantRequestID": prompt.merchant_request_id,
                    "CheckoutRequestID": prompt.checkout_request_id,
                    "ResultCode": str(prompt.result_code),
                    "ResultDesc": prompt.result_desc,
                },
            )

    # -- answering and callbacks -----------------------------------------------------

    def _on_auto_answer(self, job: AutoAnswerJob) -> None:
        with self._lock:
            prompt = self._prompts.get(job.checkout_request_id)
            if prompt is None or job.generation != self._generation or not prompt.pending:
                return
            code = _TIMEOUT_CODE if prompt.status == "ignored" else prompt.scripted_code
            jobs = self._finish(prompt, code, "auto")
        self._schedule_callbacks(jobs)

    def _finish(self, prompt: _Prompt, code: int, source: str) -> list[tuple[float, CallbackJob]]:
        """Record the outcome and plan the callback(s). Caller holds the lock."""
        now = eat_now()
        prompt.status = _STATUS_BY_CODE.get(code, "failed")
        prompt.result_code = code
        prompt.result_desc = RESULT_DESCRIPTIONS.get(code, "")
        prompt.answered_at = now
        prompt.answered_by = source
        if self._open_by_phone.get(prompt.phone) == prompt.checkout_request_id:
            del self._open_by_phone[prompt.phone]
        callback: dict[str, Any] = {
            "MerchantRequestID": prompt.merchant_request_id,
            "CheckoutRequestID": prompt.checkout_request_id,
            "ResultCode": code,
            "ResultDesc": prompt.result_desc,
        }
        if code == 0:
            prompt.receipt = self._new_receipt()
            callback["CallbackMetadata"] = {
                "Item": [
                    {"Name": "Amount", "Value": float(prompt.amount)},
                    {"Name": "MpesaReceiptNumber", "Value": prompt.receipt},
                    {"Name": "Balance"},
                    {"Name": "TransactionDate", "Value": int(now.strftime("%Y%m%d%H%M%S"))},
                    {"Name": "PhoneNumber", "Value": int(prompt.phone)},
                ]
            }
        payload = {"Body": {"stkCallback": callback}}
        prompt.callback_payload = payload
        self._changed.notify_all()
        return self._plan_callbacks(prompt, payload)

    def _new_receipt(self) -> str:
        while True:
            receipt = self._rng.choice(string.ascii_uppercase) + "".join(
                self._rng.choice(_RECEIPT_ALPHABET) for _ in range(9)
            )
            if receipt not in self._receipts:
                self._receipts.add(receipt)
                return receipt

    def _plan_callbacks(
        self, prompt: _Prompt, payload: dict[str, Any]
    ) -> list[tuple[float, CallbackJob]]:
        config = self._config
        base_delay = config.callback_delay_seconds + config.late_callback_seconds
        planned: list[tuple[float, CallbackJob]] = []
        now = time.time()
        for copy_no in range(1 + config.duplicate_callbacks):
            job = CallbackJob(
                url=prompt.callback_url,
                payload=payload,
                checkout_request_id=prompt.checkout_request_id,
                copy=copy_no,
                generation=prompt.generation,
                scheduled_at=now,
            )
            lost = config.lose_callbacks or (
                config.callback_loss_rate > 0 and self._rng.random() < config.callback_loss_rate
            )
            if lost:
                self._log_delivery(job, "lost", None, "dropped by lose_callbacks", None, now, 0.0)
                continue
            delay = base_delay
            if config.out_of_order:
                delay += self._rng.uniform(0.0, config.out_of_order_window_seconds)
            planned.append((delay, job))
        return planned

    def _schedule_callbacks(self, jobs: Sequence[tuple[float, CallbackJob]]) -> None:
        for delay, job in jobs:
            self._scheduler.schedule(job, delay)

    def _check_callback_url(self, url: str) -> str | None:
        """None if the callback may be sent; otherwise why not."""
        if self._config.allow_external_callbacks:
            return None
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            return "invalid URL"
        if host in _LOOPBACK_HOSTS:
            return None
        return f"host {host!r} is not loopback (set allow_external_callbacks to permit it)"

    def _on_delivery(self, result: DeliveryResult) -> None:
        job = result.job
        with self._lock:
            if job.generation != self._generation:
                return  # the sandbox was reset meanwhile
            self._log_delivery(
                job,
                result.outcome,
                result.http_status,
                result.error,
                result.response_body,
                result.started_at,
                result.elapsed_seconds,
            )

    def _log_delivery(
        self,
        job: CallbackJob,
        outcome: str,
        http_status: int | None,
        error: str | None,
        response_body: str | None,
        at: float,
        elapsed: float,
    ) -> None:
        """Append to the callback log and count it. Caller holds the lock."""
        self._log_seq += 1
        key = {
            "delivered": "callbacks_sent",
            "failed": "callbacks_failed",
            "lost": "callbacks_lost",
            "refused": "callbacks_refused",
        }[outcome]
        self._stats[key] += 1
        self._callback_log.append(
            {
                "id": self._log_seq,
                "checkout_request_id": job.checkout_request_id,
                "url": job.url,
                "copy": job.copy,
                "outcome": outcome,
                "http_status": http_status,
                "error": error,
                "response_body": response_body,
                "payload": job.payload,
                "planned_at": datetime.fromtimestamp(job.scheduled_at, EAT).isoformat(),
                "at": datetime.fromtimestamp(at, EAT).isoformat(),
                "elapsed_ms": round(elapsed * 1000, 1),
            }
        )
        self._changed.notify_all()

    # -- control plane ---------------------------------------------------------------

    def _control(self, environ: WSGIEnvironment, method: str, path: str) -> _Response:
        route = path[len(CONTROL_PREFIX) :].strip("/") if path.startswith(CONTROL_PREFIX) else ""
        if route != "health" and not self._control_authorized(environ):
            return _control_error(401, "missing or wrong X-Sandbox-Token header")
        query = {k: v[-1] for k, v in parse_qs(str(environ.get("QUERY_STRING", ""))).items()}
        parts = route.split("/") if route else []

        def need(expected: str) -> _Response | None:
            if method != expected:
                return _Response(405, {"error": "method not allowed"}, [("Allow", expected)])
            return None

        if route == "health":
            return need("GET") or _Response(200, self.health())
        if route == "stats":
            return need("GET") or _Response(200, self.stats())
        if route == "callbacks":
            return need("GET") or _Response(
                200, {"callbacks": self.callbacks(query.get("checkout_request_id"))}
            )
        if route == "config":
            if method == "GET":
                return _Response(200, self._config.to_dict())
            return need("POST") or self._control_config(environ)
        if route == "reset":
            if denied := need("POST"):
                return denied
            self.reset()
            return _Response(200, {"status": "reset", "config": self._config.to_dict()})
        if route == "revoke-tokens":
            return need("POST") or _Response(200, {"revoked": self.revoke_tokens()})
        if route == "apps":
            if method == "GET":
                return _Response(200, {"apps": self.apps()})
            return need("POST") or self._control_add_app(environ)
        if parts and parts[0] == "prompts":
            if len(parts) == 1:
                return need("GET") or self._control_prompts(query)
            if len(parts) == 2:
                if denied := need("GET"):
                    return denied
                try:
                    return _Response(200, self.prompt(parts[1]))
                except PromptNotFound:
                    return _control_error(404, "unknown CheckoutRequestID")
            if len(parts) == 3 and parts[2] == "answer":
                return need("POST") or self._control_answer(environ, parts[1])
        return _control_error(404, "not found")

    def _control_authorized(self, environ: WSGIEnvironment) -> bool:
        expected = self._config.control_token
        if expected is None:
            return True
        given = str(environ.get("HTTP_X_SANDBOX_TOKEN", ""))
        return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))

    def _control_prompts(self, query: Mapping[str, str]) -> _Response:
        try:
            limit = int(query.get("limit", "50"))
        except ValueError:
            return _control_error(400, "limit must be an integer")
        if limit < 1:
            return _control_error(400, "limit must be >= 1")
        found = self.prompts(query.get("msisdn"), status=query.get("status"), limit=limit)
        return _Response(200, {"prompts": found})

    def _control_answer(self, environ: WSGIEnvironment, checkout_id: str) -> _Response:
        body = self._read_json_object(environ)
        if body is None:
            return _control_error(400, "body must be a JSON object")
        action = body.get("action")
        if not isinstance(action, str) or action not in ACTIONS:
            return _control_error(400, f"action must be one of: {', '.join(ACTIONS)}")
        try:
            return _Response(200, self.answer(checkout_id, action))
        except PromptNotFound:
            return _control_error(404, "unknown CheckoutRequestID")
        except PromptAlreadyAnswered as exc:
            return _Response(409, {"error": "prompt already answered", "prompt": exc.prompt})

    def _control_config(self, environ: WSGIEnvironment) -> _Response:
        body = self._read_json_object(environ)
        if body is None:
            return _control_error(400, "body must be a JSON object")
        try:
            config = self.update_config(**body)
        except (ValueError, TypeError) as exc:
            return _control_error(400, str(exc))
        return _Response(200, config.to_dict())

    def _control_add_app(self, environ: WSGIEnvironment) -> _Response:
        body = self._read_json_object(environ)
        if body is None:
            return _control_error(400, "body must be a JSON object")
        try:
            app = self.add_app(DarajaApp.from_dict(body))
        except (ValueError, TypeError) as exc:
            return _control_error(400, str(exc))
        return _Response(201, app.public_dict())


# --------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------


def run_daraja(
    host: str = "127.0.0.1", port: int = 0, config: DarajaConfig | None = None
) -> tuple[SandboxServer, DarajaSimulator]:
    """Start a simulator on a background server thread. ``server.stop()`` stops both."""
    sim = DarajaSimulator(config)
    sim.start_background()
    server = SandboxServer(sim, host, port, on_stop=sim.stop)
    server.start()
    return server, sim


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m pesarail.sandbox.daraja --port 8089`` (standalone, foreground)."""
    parser = argparse.ArgumentParser(description="pesarail offline Daraja (M-Pesa Kenya) sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--auto-answer", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--control-token", default=None)
    parser.add_argument("--allow-external-callbacks", action="store_true")
    args = parser.parse_args(argv)
    changes: dict[str, Any] = {}
    if args.auto_answer is not None:
        changes["auto_answer_seconds"] = args.auto_answer
    if args.control_token:
        changes["control_token"] = args.control_token
    if args.allow_external_callbacks:
        changes["allow_external_callbacks"] = True
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sim = DarajaSimulator(DarajaConfig().with_changes(changes))
    sim.start_background()
    serve_forever(sim, args.host, args.port, on_stop=sim.stop)


if __name__ == "__main__":
    main()
