"""Safaricom M-Pesa Kenya -- the Daraja API (STK push, STK query, STK callback).

Facts come from ``reference/providers.md`` section 1; behaviour is documented in
``docs/providers.md``. What this adapter does for its callers:

* amounts: ``Money`` in KES with no cents -> whole shillings (anything else is refused
  before a request is made);
* phones: E.164 -> MSISDN ``2547...``/``2541...``;
* timestamps: ``YYYYMMDDHHmmss`` in East Africa Time; ``Password`` =
  base64(shortcode + passkey + timestamp);
* tokens: one per credential set, shared by every worker (:mod:`.tokens`), refreshed
  once and the call retried once when Daraja says the token is invalid;
* the STK push is never retried; a timeout after sending is :class:`ProviderTimeout`
  (outcome unknown); STK query (a read) is tried at most twice;
* result codes -> :class:`PaymentStatus` + a human message + a retryable flag
  (:data:`RESULT_CODES`).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx

from pesarail.common.errors import ValidationFailed
from pesarail.common.logging import get_logger
from pesarail.common.money import Money, MoneyError
from pesarail.common.phone import PhoneError, mask_phone, normalize_phone, to_msisdn
from pesarail.providers.base import (
    ChargeRequest,
    ChargeStarted,
    CredentialCheck,
    FieldSpec,
    MalformedCallback,
    PaymentStatus,
    ProviderAuthError,
    ProviderError,
    ProviderEvent,
    ProviderException,
    ProviderTimeout,
    ProviderUnavailable,
)
from pesarail.providers.http import observe, shared_client
from pesarail.providers.tokens import IssuedToken, TokenCache, TokenStore, fingerprint

__all__ = [
    "AUTH_ERROR_CODES",
    "EAT",
    "RESULT_CODES",
    "DarajaProvider",
    "DarajaTimeouts",
    "ResultInfo",
    "daraja_timestamp",
    "stk_password",
]

log = get_logger("pesarail.providers.mpesa_ke")

#: Kenya keeps East Africa Time all year (UTC+3).
EAT = ZoneInfo("Africa/Nairobi")

TOKEN_PATH = "/oauth/v1/generate"
STK_PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
STK_QUERY_PATH = "/mpesa/stkpushquery/v1/query"

PAYBILL = "CustomerPayBillOnline"
BUY_GOODS = "CustomerBuyGoodsOnline"

ACCOUNT_REFERENCE_MAX = 12
TRANSACTION_DESC_MAX = 13

#: Daraja error codes meaning "this access token is not valid" (expired, revoked,
#: another environment's): refresh the token once and retry the call once.
AUTH_ERROR_CODES = frozenset({"404.001.03", "400.003.01", "401.002.01"})
#: Token endpoint refusals: the consumer key/secret (or the request) is wrong.
TOKEN_AUTH_CODES = frozenset({"400.008.01", "400.008.02", "401.003.01"})
#: Overload / rate limiting: nothing was processed.
BUSY_CODES = frozenset({"500.003.02", "500.003.03"})

_MSISDN_KE = re.compile(r"254[17][0-9]{8}")
_MSISDN_ANY = re.compile(r"[0-9]{9,15}")
_UNSAFE_TEXT = re.compile(r"[^A-Za-z0-9 .\-_/#]")


@dataclass(frozen=True, slots=True)
class ResultInfo:
    """What an STK result code means for us."""

    status: PaymentStatus
    message: str  # human, may be shown to the customer
    retryable: bool  # does "try again" make sense for the customer?


_S, _F, _C, _E, _P = (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELLED,
                      PaymentStatus.EXPIRED, PaymentStatus.PENDING)

#: STK result codes (callback ``ResultCode``, query ``ResultCode``), providers.md 1.5.
RESULT_CODES: dict[str, ResultInfo] = {
    "0": ResultInfo(_S, "Payment received.", False),
    "1": ResultInfo(_F, "Your M-Pesa balance is not enough for this payment. Top up and "
                        "try again.", True),
    "2": ResultInfo(_F, "The amount is below the M-Pesa minimum.", False),
    "3": ResultInfo(_F, "The amount is above the M-Pesa maximum for one payment.", False),
    "4": ResultInfo(_F, "This payment would go over your daily M-Pesa limit.", False),
    "8": ResultInfo(_F, "The merchant's M-Pesa account cannot receive more money right "
                        "now.", False),
    "17": ResultInfo(_F, "A payment of the same amount was just made from this phone. Wait "
                         "two minutes, then try again.", True),
    "26": ResultInfo(_F, "M-Pesa is busy right now. Try again in a moment.", True),
    "1001": ResultInfo(_F, "Another M-Pesa request is already waiting on this phone. Finish "
                           "or cancel it, then try again in a minute.", True),
    "1019": ResultInfo(_E, "The M-Pesa prompt expired before it was answered.", True),
    "1025": ResultInfo(_F, "M-Pesa could not send the prompt to your phone. Try again.", True),
    "1032": ResultInfo(_C, "You cancelled the M-Pesa prompt.", True),
    "1037": ResultInfo(_E, "Your phone could not be reached, or the M-Pesa prompt was not "
                           "answered in time. Check that your phone is on, then try again.",
                       True),
    "2001": ResultInfo(_F, "The M-Pesa PIN entered was wrong.", True),
    "2028": ResultInfo(_F, "The merchant's M-Pesa account is not set up for this kind of "
                           "payment.", False),
    "8006": ResultInfo(_F, "Your M-Pesa PIN is locked. Call Safaricom customer care to "
                           "unlock it.", False),
    "9999": ResultInfo(_F, "M-Pesa could not send the prompt to your phone. Try again.", True),
    "SFC_IC0003": ResultInfo(_F, "The merchant's M-Pesa account is not set up for this kind "
                                 "of payment.", False),
    # Not in providers.md ([3p]: reported by integrators for STK query while the customer
    # has not answered). Pending, because failing a payment that may still succeed is
    # the worse mistake.
    "4999": ResultInfo(_P, "Waiting for the customer to answer the M-Pesa prompt.", False),
}

_PENDING = ResultInfo(_P, "Waiting for the customer to answer the M-Pesa prompt.", False)


def _unknown_result(desc: str) -> ResultInfo:
    text = desc.strip() or "M-Pesa did not complete the payment."
    return ResultInfo(_F, f"M-Pesa did not complete the payment: {text}", False)


@dataclass(frozen=True, slots=True)
class DarajaTimeouts:
    """HTTP timeouts in seconds. ``push_read`` is how long we wait for Daraja to answer
    an STK push before declaring the outcome unknown."""

    connect: float = 5.0
    write: float = 10.0
    pool: float = 5.0
    token_read: float = 15.0
    push_read: float = 30.0
    query_read: float = 15.0

    def for_read(self, read: float) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=read, write=self.write, pool=self.pool)


def daraja_timestamp(when: datetime | None = None) -> str:
    """``YYYYMMDDHHmmss`` in East Africa Time."""
    moment = when if when is not None else datetime.now(EAT)
    return moment.astimezone(EAT).strftime("%Y%m%d%H%M%S")


def stk_password(shortcode: str, passkey: str, timestamp: str) -> str:
    """``base64(BusinessShortCode + Passkey + Timestamp)``."""
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode("ascii")


def _confirm_default(environment: str) -> bool:
    return environment != "sandbox"


def _no_ips(environment: str) -> list[str]:
    return []


def _clip(text: str, limit: int, fallback: str) -> str:
    """Printable ASCII only (Daraja shows it on a USSD screen), at most ``limit`` chars."""
    cleaned = _UNSAFE_TEXT.sub("", " ".join(str(text).split()))[:limit].strip()
    return cleaned or fallback[:limit]


_T = TypeVar("_T")


class DarajaProvider:
    """The Daraja adapter. Build it with ``registry.get_provider(account)``."""

    code: ClassVar[str] = "mpesa_ke"
    display_name: ClassVar[str] = "M-Pesa Kenya (Daraja)"
    currencies: ClassVar[tuple[str, ...]] = ("KES",)
    supports_stk_push: ClassVar[bool] = True
    supports_refund: ClassVar[bool] = False
    supports_payout: ClassVar[bool] = False
    signs_callbacks: ClassVar[bool] = False
    supports_status_query: ClassVar[bool] = True
    default_base_urls: ClassVar[Mapping[str, str]] = {
        "sandbox": "https://sandbox.safaricom.co.ke",
        "production": "https://api.safaricom.co.ke",
    }
    credential_fields: ClassVar[tuple[FieldSpec, ...]] = (
        FieldSpec("consumer_key", "Consumer key", hint=True,
                  help_text="From the Daraja app (developer portal)."),
        FieldSpec("consumer_secret", "Consumer secret", secret=True),
        FieldSpec("passkey", "Lipa Na M-Pesa Online passkey", secret=True),
        FieldSpec("initiator_name", "Initiator (API operator) name", required=False,
                  help_text="For B2C, reversals and transaction status (not used yet)."),
        FieldSpec("initiator_password", "Initiator password", required=False, secret=True),
    )
    config_fields: ClassVar[tuple[FieldSpec, ...]] = (
        FieldSpec("shortcode", "Business shortcode", kind="digits", max_length=10,
                  help_text="Paybill number, or the store/head-office number for a till."),
        FieldSpec("transaction_type", "Transaction type", kind="choice",
                  choices=(PAYBILL, BUY_GOODS), default=PAYBILL),
        FieldSpec("till_number", "Till number", kind="digits", required=False, max_length=10,
                  help_text="Required for CustomerBuyGoodsOnline (it is PartyB)."),
        FieldSpec("confirm_callbacks_with_query", "Confirm callbacks with STK query",
                  kind="bool", default=_confirm_default,
                  help_text="Daraja does not sign callbacks; ask the STK query API before "
                  "trusting one. Default: on, except in the sandbox."),
        FieldSpec("ip_allowlist", "Callback source IP allow-list", kind="ip_list",
                  required=False, default=_no_ips),
        FieldSpec("stk_timeout_seconds", "Prompt lifetime (seconds)", kind="int",
                  default=120, min_value=30, max_value=600,
                  help_text="How long the customer has to answer before we treat the "
                  "attempt as expired (the reconciler asks Daraja then)."),
    )

    def __init__(
        self,
        *,
        base_url: str,
        credentials: Mapping[str, Any],
        config: Mapping[str, Any],
        client: httpx.Client | None = None,
        timeouts: DarajaTimeouts | None = None,
        token_cache: TokenCache | None = None,
        status_attempts: int = 2,
        status_backoff_seconds: float = 0.25,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._host = urlsplit(self.base_url).hostname or self.base_url
        self._consumer_key = str(credentials.get("consumer_key") or "")
        self._consumer_secret = str(credentials.get("consumer_secret") or "")
        self._passkey = str(credentials.get("passkey") or "")
        self.shortcode = str(config.get("shortcode") or "")
        self.transaction_type = str(config.get("transaction_type") or PAYBILL)
        till = config.get("till_number")
        self.party_b = str(till) if self.transaction_type == BUY_GOODS and till else self.shortcode
        self.stk_timeout_seconds = int(config.get("stk_timeout_seconds") or 120)
        self._client = client
        self.timeouts = timeouts or DarajaTimeouts()
        self._status_attempts = max(1, status_attempts)
        self._status_backoff = status_backoff_seconds
        self.tokens = TokenStore(
            provider=self.code,
            key=fingerprint(self.code, self.base_url, self._consumer_key, self._consumer_secret),
            fetch=self._fetch_token,
            cache=token_cache,
        )

    def __repr__(self) -> str:  # never shows credentials
        return f"<DarajaProvider {self.base_url} shortcode={self.shortcode}>"

    # ----------------------------------------------------------------- settings

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        if config.get("transaction_type") == BUY_GOODS and not config.get("till_number"):
            errors["config.till_number"] = [
                "Required when transaction_type is CustomerBuyGoodsOnline."
            ]
        return errors

    # -------------------------------------------------------------------- HTTP

    @property
    def client(self) -> httpx.Client:
        return self._client if self._client is not None else shared_client()

    def _unavailable(self, what: str, exc: Exception) -> ProviderUnavailable:
        return ProviderUnavailable(
            f"Could not reach M-Pesa at {self._host} ({what}: {type(exc).__name__}); "
            "nothing was sent.",
            provider=self.code, code="network",
        )

    def _send(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        read_timeout: float,
        money_moving: bool,
        **kwargs: Any,
    ) -> httpx.Response:
        """One HTTP request; transport failures become provider exceptions.

        Failures before the request left us (connect, pool) are ProviderUnavailable.
        Failures after it may have left (read/write timeouts, dropped connections) are
        ProviderTimeout for a money-moving call and ProviderUnavailable for a read.
        """
        with observe(self.code, operation) as outcome:
            try:
                response = self.client.request(
                    method, self.base_url + path,
                    timeout=self.timeouts.for_read(read_timeout), **kwargs,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                    httpx.ProxyError, httpx.UnsupportedProtocol,
                    httpx.LocalProtocolError) as exc:
                outcome["value"] = "unavailable"
                raise self._unavailable(operation, exc) from exc
            except httpx.TransportError as exc:
                if not money_moving:
                    outcome["value"] = "unavailable"
                    raise self._unavailable(operation, exc) from exc
                outcome["value"] = "timeout"
                timed_out = isinstance(exc, httpx.TimeoutException)
                raise ProviderTimeout(
                    f"M-Pesa at {self._host} did not answer the {operation} request "
                    f"{'in time' if timed_out else '(connection dropped)'}; it may or may "
                    "not have been received. The outcome is unknown: check the status "
                    "later, do not resend.",
                    provider=self.code, code="timeout" if timed_out else "connection_lost",
                ) from exc
            outcome["value"] = str(response.status_code)
            return response

    @staticmethod
    def _body(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @classmethod
    def _error_code(cls, response: httpx.Response) -> tuple[str, str]:
        body = cls._body(response)
        return str(body.get("errorCode") or ""), str(body.get("errorMessage") or "")

    def _is_token_refused(self, response: httpx.Response) -> bool:
        if response.status_code not in (400, 401, 404):
            return False
        code, _ = self._error_code(response)
        return code in AUTH_ERROR_CODES or (response.status_code == 401 and not code)

    def _retrying(self, attempts: int, call: Callable[[], _T]) -> _T:
        """Run an idempotent read up to ``attempts`` times on ProviderUnavailable."""
        for attempt in range(1, attempts + 1):
            try:
                return call()
            except ProviderUnavailable:
                if attempt >= attempts:
                    raise
                time.sleep(self._status_backoff * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------- tokens

    def _fetch_token(self) -> IssuedToken:
        if not self._consumer_key or not self._consumer_secret:
            raise ProviderAuthError("The account has no consumer key/secret.",
                                    provider=self.code, code="missing_credentials")

        def once() -> IssuedToken:
            response = self._send(
                "token", "GET", TOKEN_PATH, read_timeout=self.timeouts.token_read,
                money_moving=False, params={"grant_type": "client_credentials"},
                auth=(self._consumer_key, self._consumer_secret),
            )
            return self._interpret_token(response)

        return self._retrying(2, once)

    def _interpret_token(self, response: httpx.Response) -> IssuedToken:
        body = self._body(response)
        if response.status_code == 200:
            token = body.get("access_token")
            if isinstance(token, str) and token:
                return IssuedToken(token, self._expires_in(body.get("expires_in")))
            raise ProviderUnavailable("M-Pesa answered the token request without a token.",
                                      provider=self.code, code="bad_token_response")
        code, message = self._error_code(response)
        if code in TOKEN_AUTH_CODES or response.status_code in (400, 401, 403):
            raise ProviderAuthError(
                "M-Pesa rejected the consumer key or secret"
                f"{f' ({code}: {message})' if code else f' (HTTP {response.status_code})'}. "
                "Check that they belong to a Daraja app of this environment.",
                provider=self.code, code=code or str(response.status_code), raw=body,
            )
        if response.status_code >= 500:
            raise ProviderUnavailable(
                f"M-Pesa could not issue a token (HTTP {response.status_code}"
                f"{f', {code}' if code else ''}). Try again shortly.",
                provider=self.code, code=code or str(response.status_code), raw=body,
            )
        raise ProviderError(
            f"M-Pesa refused the token request (HTTP {response.status_code}"
            f"{f', {code}: {message}' if code else ''}). Check the account's base URL.",
            provider=self.code, code=code or str(response.status_code), raw=body,
        )

    @staticmethod
    def _expires_in(value: Any) -> float:
        """Daraja sends ``"3599"`` (string) or ``3599`` (number)."""
        try:
            seconds = float(Decimal(str(value).strip()))
        except (InvalidOperation, ValueError):
            return 3599.0
        return seconds if seconds > 0 else 3599.0

    def _authorized_post(self, operation: str, path: str, body: dict[str, Any], *,
                         read_timeout: float, money_moving: bool) -> httpx.Response:
        """POST with the shared token; on "invalid access token" refresh it once and
        resend once (safe for a push: Daraja refused it, so nothing was started)."""
        token = self.tokens.get()
        response = self._send(operation, "POST", path, json=body, read_timeout=read_timeout,
                              money_moving=money_moving,
                              headers={"Authorization": f"Bearer {token}"})
        if not self._is_token_refused(response):
            return response
        log.info("daraja_token_refused", operation=operation,
                 error_code=self._error_code(response)[0])
        token = self.tokens.refresh(stale=token)
        response = self._send(operation, "POST", path, json=body, read_timeout=read_timeout,
                              money_moving=money_moving,
                              headers={"Authorization": f"Bearer {token}"})
        if self._is_token_refused(response):
            code, message = self._error_code(response)
            raise ProviderAuthError(
                f"M-Pesa refused a freshly issued access token ({code or response.status_code}"
                f"{f': {message}' if message else ''}). Check that the consumer key belongs "
                "to this environment.",
                provider=self.code, code=code or str(response.status_code),
            )
        return response

    # --------------------------------------------------------------- contract

    def check_credentials(self) -> CredentialCheck:
        try:
            self.tokens.force_refresh()
        except ProviderException as exc:
            return CredentialCheck(False, exc.message)
        return CredentialCheck(
            True,
            "M-Pesa accepted the consumer key and secret (an access token was issued). "
            "The shortcode and passkey are checked by the first STK push.",
        )

    def _stk_auth(self) -> dict[str, Any]:
        if not self.shortcode.isdigit() or not self._passkey:
            raise ProviderAuthError("The account has no valid shortcode and passkey.",
                                    provider=self.code, code="missing_config")
        timestamp = daraja_timestamp()
        return {
            "BusinessShortCode": int(self.shortcode),
            "Password": stk_password(self.shortcode, self._passkey, timestamp),
            "Timestamp": timestamp,
        }

    def validate_charge(self, money: Money, phone_e164: str) -> None:
        """Refuse, without any I/O, a charge M-Pesa cannot take (ValidationFailed)."""
        self._whole_shillings(money)
        self._msisdn(phone_e164)

    def _whole_shillings(self, money: Money) -> int:
        if money.currency not in self.currencies:
            raise ValidationFailed(
                f"M-Pesa Kenya takes KES only; got {money.currency}.",
                fields={"currency": ["Must be KES."]}, code="currency_not_supported",
            )
        if not money.is_whole_major():
            raise ValidationFailed(
                f"M-Pesa accepts whole shillings only; got {money.format()}.",
                fields={"amount": ["M-Pesa accepts whole shillings only."]},
                code="amount_not_whole",
            )
        shillings = money.major_units_exact()
        if shillings < 1:
            raise ValidationFailed(
                f"M-Pesa needs at least KES 1; got {money.format()}.",
                fields={"amount": ["At least KES 1."]}, code="amount_too_small",
            )
        return shillings

    def _msisdn(self, phone_e164: str) -> str:
        try:
            msisdn = to_msisdn(phone_e164)
        except PhoneError as exc:
            raise ValidationFailed(str(exc), fields={"phone_number": [str(exc)]},
                                   code="invalid_phone") from exc
        if not _MSISDN_KE.fullmatch(msisdn):
            message = (f"M-Pesa Kenya needs a Kenyan mobile number (+2547... or +2541...); "
                       f"got {mask_phone(phone_e164)}.")
            raise ValidationFailed(message, fields={"phone_number": [message]},
                                   code="invalid_phone")
        return msisdn

    def start_charge(self, request: ChargeRequest) -> ChargeStarted:
        amount = self._whole_shillings(request.money)
        msisdn = self._msisdn(request.phone_e164)
        body = {
            **self._stk_auth(),
            "TransactionType": self.transaction_type,
            "Amount": amount,
            "PartyA": int(msisdn),
            "PartyB": int(self.party_b),
            "PhoneNumber": int(msisdn),
            "CallBackURL": request.callback_url,
            "AccountReference": _clip(request.reference, ACCOUNT_REFERENCE_MAX,
                                      request.intent_id[-ACCOUNT_REFERENCE_MAX:]),
            "TransactionDesc": _clip(request.description or request.reference,
                                     TRANSACTION_DESC_MAX, "Payment"),
        }
        response = self._authorized_post("stk_push", STK_PUSH_PATH, body,
                                         read_timeout=self.timeouts.push_read,
                                         money_moving=True)
        data = self._body(response)
        if response.status_code == 200:
            checkout = data.get("CheckoutRequestID")
            response_code = str(data.get("ResponseCode", ""))
            if response_code == "0" and isinstance(checkout, str) and checkout:
                log.info("daraja_stk_push_accepted", attempt_id=request.attempt_id,
                         checkout_request_id=checkout, phone=mask_phone(request.phone_e164),
                         amount=amount)
                merchant_request = data.get("MerchantRequestID")
                return ChargeStarted(
                    provider_reference=checkout,
                    secondary_reference=str(merchant_request) if merchant_request else None,
                    next_action={
                        "type": "phone_prompt",
                        "phone": mask_phone(request.phone_e164),
                        "message": f"Check your phone and enter your M-Pesa PIN to pay "
                                   f"{request.money.format()}.",
                        "expires_in_seconds": self.stk_timeout_seconds,
                    },
                    raw=data,
                )
            if response_code and response_code != "0":
                description = str(data.get("ResponseDescription") or "request refused")
                raise ProviderError(f"M-Pesa refused the payment request: {description}",
                                    provider=self.code, code=response_code, raw=data)
            raise ProviderTimeout(
                "M-Pesa answered the STK push without a CheckoutRequestID; the outcome is "
                "unknown.", provider=self.code, code="bad_response", raw=data,
            )
        raise self._push_failure(response)

    def _push_failure(self, response: httpx.Response) -> ProviderException:
        code, message = self._error_code(response)
        status = response.status_code
        raw = self._body(response)
        lowered = message.lower()
        if code == "500.001.1001":
            if "lock subscriber" in lowered or "already in process" in lowered:
                return ProviderError(RESULT_CODES["1001"].message, provider=self.code,
                                     code=code, retryable=True, raw=raw)
            if "wrong credentials" in lowered:
                return ProviderAuthError(
                    "M-Pesa rejected the STK password: check the account's shortcode and "
                    "passkey.", provider=self.code, code=code, raw=raw)
            if "merchant does not exist" in lowered:
                return ProviderAuthError(
                    "M-Pesa does not know this shortcode: check the account's shortcode.",
                    provider=self.code, code=code, raw=raw)
            return ProviderError(f"M-Pesa refused the payment request: {message}",
                                 provider=self.code, code=code, raw=raw)
        if code in BUSY_CODES:
            return ProviderUnavailable(
                f"M-Pesa is busy ({code}: {message or 'System is busy'}); nothing was sent. "
                "Try again shortly.", provider=self.code, code=code, raw=raw)
        if code == "400.002.02":
            field = message.rsplit("Invalid", 1)[-1].strip() if "Invalid" in message else ""
            if field in {"PhoneNumber", "PartyA"}:
                return ProviderError("M-Pesa did not accept this phone number.",
                                     provider=self.code, code=code, raw=raw)
            if field == "Amount":
                return ProviderError("M-Pesa did not accept this amount.",
                                     provider=self.code, code=code, raw=raw)
            if field in {"BusinessShortCode", "PartyB", "TransactionType", "Password"}:
                return ProviderAuthError(
                    f"M-Pesa rejected the account's {field}: check the provider account's "
                    "configuration.", provider=self.code, code=code, raw=raw)
            return ProviderError(f"M-Pesa rejected the request: {message or code}",
                                 provider=self.code, code=code, raw=raw)
        if 400 <= status < 500:
            return ProviderError(
                f"M-Pesa rejected the request (HTTP {status}"
                f"{f', {code}: {message}' if code else ''}).",
                provider=self.code, code=code or str(status), raw=raw)
        if status in (502, 503) and not code:
            return ProviderUnavailable(
                f"M-Pesa is unavailable (HTTP {status}); nothing was sent.",
                provider=self.code, code=str(status), raw=raw)
        # Any other 5xx (including 504 and "500.003.1001 Internal Server Error"): Daraja
        # may have started the push before failing. Unknown, never "failed".
        return ProviderTimeout(
            f"M-Pesa failed while handling the STK push (HTTP {status}"
            f"{f', {code}: {message}' if code else ''}); the outcome is unknown.",
            provider=self.code, code=code or str(status), raw=raw)

    def fetch_status(self, provider_reference: str) -> ProviderEvent:
        if not provider_reference:
            raise ValueError("provider_reference (CheckoutRequestID) is required")

        def once() -> ProviderEvent:
            body = {**self._stk_auth(), "CheckoutRequestID": provider_reference}
            response = self._authorized_post("stk_query", STK_QUERY_PATH, body,
                                             read_timeout=self.timeouts.query_read,
                                             money_moving=False)
            return self._interpret_query(provider_reference, response)

        return self._retrying(self._status_attempts, once)

    def _interpret_query(self, reference: str, response: httpx.Response) -> ProviderEvent:
        data = self._body(response)
        if response.status_code == 200 and "ResultCode" in data:
            result_code = str(data.get("ResultCode")).strip()
            desc = str(data.get("ResultDesc") or "")
            info = RESULT_CODES.get(result_code) or _unknown_result(desc)
            merchant_request = data.get("MerchantRequestID")
            return ProviderEvent(
                kind="payment_result", provider_reference=reference, status=info.status,
                result_code=result_code, message=info.message, retryable=info.retryable,
                raw=data, source="status_query",
                secondary_reference=str(merchant_request) if merchant_request else None,
                provider_message=desc,
                dedupe_key=f"{self.code}:stk_query:{reference}:{result_code}",
            )
        code, message = self._error_code(response)
        if code == "500.001.1001" and "being processed" in message.lower():
            return ProviderEvent(
                kind="payment_result", provider_reference=reference, status=_P,
                result_code=code, message=_PENDING.message, retryable=False, raw=data,
                source="status_query", provider_message=message,
                dedupe_key=f"{self.code}:stk_query:{reference}:pending",
            )
        if code == "500.001.1001" and "wrong credentials" in message.lower():
            raise ProviderAuthError(
                "M-Pesa rejected the STK password: check the account's shortcode and passkey.",
                provider=self.code, code=code, raw=data)
        if code == "400.002.02" and "CheckoutRequestID" in message:
            raise ProviderError(
                "M-Pesa does not know this CheckoutRequestID (or it belongs to another "
                "shortcode).", provider=self.code, code=code, raw=data)
        if response.status_code >= 500 or response.status_code == 200:
            raise ProviderUnavailable(
                f"M-Pesa could not answer the status query (HTTP {response.status_code}"
                f"{f', {code}: {message}' if code else ''}).",
                provider=self.code, code=code or str(response.status_code), raw=data)
        raise ProviderError(
            f"M-Pesa rejected the status query (HTTP {response.status_code}"
            f"{f', {code}: {message}' if code else ''}).",
            provider=self.code, code=code or str(response.status_code), raw=data)

    # ---------------------------------------------------------------- callbacks

    def parse_callback(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        """Parse ``{"Body": {"stkCallback": {...}}}``. Metadata items are looked up by
        ``Name``; ``Balance`` may have no ``Value``; ``Amount`` may be ``1``, ``1.0`` or
        ``"1.00"``. Raises MalformedCallback (a ValueError)."""
        try:
            typed = json.loads(body, parse_float=Decimal)
            raw = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise MalformedCallback("callback body is not JSON") from None
        callback = (typed.get("Body") or {}).get("stkCallback") if isinstance(typed, dict) \
            else None
        if not isinstance(callback, dict):
            raise MalformedCallback("callback has no Body.stkCallback object")
        checkout = callback.get("CheckoutRequestID")
        if not isinstance(checkout, str) or not checkout.strip():
            raise MalformedCallback("stkCallback.CheckoutRequestID is missing")
        result_code = self._result_code(callback.get("ResultCode"))
        desc = str(callback.get("ResultDesc") or "")
        info = RESULT_CODES.get(result_code) or _unknown_result(desc)
        if info.status is PaymentStatus.PENDING:  # a callback is always final
            info = _unknown_result(desc)
        items = self._items(callback.get("CallbackMetadata"))
        merchant_request = callback.get("MerchantRequestID")
        return ProviderEvent(
            kind="payment_result",
            provider_reference=checkout.strip(),
            status=info.status,
            result_code=result_code,
            message=info.message,
            retryable=info.retryable,
            receipt=self._text(items.get("MpesaReceiptNumber")),
            amount=self._amount(items.get("Amount")) if "Amount" in items else None,
            phone_e164=self._phone(items.get("PhoneNumber")),
            paid_at=self._date(items.get("TransactionDate")),
            raw=raw,
            source="callback",
            secondary_reference=str(merchant_request) if merchant_request else None,
            provider_message=desc,
            dedupe_key=f"{self.code}:stk_callback:{checkout.strip()}",
        )

    @staticmethod
    def _result_code(value: Any) -> str:
        if isinstance(value, bool) or value is None:
            raise MalformedCallback("stkCallback.ResultCode is missing")
        if isinstance(value, int):
            return str(value)
        if isinstance(value, Decimal) and value == value.to_integral_value():
            return str(int(value))
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise MalformedCallback("stkCallback.ResultCode is not a code")

    @staticmethod
    def _items(metadata: Any) -> dict[str, Any]:
        if metadata is None:
            return {}
        items = metadata.get("Item") if isinstance(metadata, dict) else None
        if isinstance(items, dict):  # a single item sent as an object
            items = [items]
        if not isinstance(items, list):
            raise MalformedCallback("CallbackMetadata.Item is not a list")
        found: dict[str, Any] = {}
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("Name"), str):
                found[item["Name"]] = item.get("Value")
        return found

    @staticmethod
    def _text(value: Any) -> str | None:
        if value is None:
            return None
        text = str(value).strip()
        return text or None

    @staticmethod
    def _amount(value: Any) -> Money | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
            raise MalformedCallback("Amount is not a number")
        try:
            exact = Decimal(str(value).strip())
            cents = exact.quantize(Decimal("0.01"))
        except InvalidOperation:
            raise MalformedCallback("Amount is not a number") from None
        if cents != exact:
            raise MalformedCallback("Amount has fractions of a cent")
        try:
            return Money.parse(cents, "KES")
        except MoneyError as exc:
            raise MalformedCallback(f"Amount is not a valid KES amount: {exc}") from None

    @staticmethod
    def _phone(value: Any) -> str | None:
        if value is None or isinstance(value, bool):
            return None
        digits = str(int(value)) if isinstance(value, Decimal) else str(value).strip()
        if not _MSISDN_ANY.fullmatch(digits):
            return None  # e.g. a masked or hashed number
        try:
            return normalize_phone("+" + digits, None)
        except PhoneError:
            return None

    @staticmethod
    def _date(value: Any) -> datetime | None:
        if value is None or isinstance(value, bool):
            return None
        text = str(int(value)) if isinstance(value, Decimal) else str(value).strip()
        try:
            return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=EAT)
        except ValueError:
            raise MalformedCallback("TransactionDate is not YYYYMMDDHHmmss") from None

    def callback_ack(self, accepted: bool) -> tuple[int, dict[str, Any]]:
        """Daraja does not specify the STK ack; this is what its clients send. Daraja
        does not retry STK callbacks, so a refusal is still HTTP 200."""
        if accepted:
            return 200, {"ResultCode": 0, "ResultDesc": "Accepted"}
        return 200, {"ResultCode": 1, "ResultDesc": "Rejected"}
