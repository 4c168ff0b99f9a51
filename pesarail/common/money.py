"""Exact money values for pesarail.

Rules, in short:

* An amount is held as an integer number of *minor units* (cents, santim, ...)
  together with an ISO 4217 currency code.  The number of minor-unit digits per
  currency is the ISO 4217 exponent in :data:`CURRENCY_EXPONENTS` (KES 2,
  UGX 0, ...).
* Floats are never accepted, produced or used internally.  Input is a decimal
  string, an ``int`` (whole major units) or a finite :class:`decimal.Decimal`.
* Parsing is strict.  Strings must look like ``"100"``, ``"100.5"`` or
  ``"-100.50"``: no whitespace, signs other than a leading ``-``, thousands
  separators, exponents, ``".5"``/``"5."`` shapes or NaN/Infinity.  An amount
  with more decimal places than the currency allows is rejected, even when the
  extra digits are zeros (``"100.000"`` is not a KES amount).
* Zero and negative amounts are rejected by :meth:`Money.parse` unless the
  caller opts in; amounts are capped at ``10**15`` minor units either way.
* Arithmetic and ordering only work between amounts of the same currency.

Every rejection raises :class:`MoneyError` (a :class:`ValueError`) whose
message says exactly what is wrong, so it can be shown to API clients.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "CURRENCY_EXPONENTS",
    "MAX_MINOR_UNITS",
    "Money",
    "MoneyError",
    "MoneyTypeError",
    "parse_currency",
]

#: ISO 4217 minor-unit exponents of the currencies pesarail handles.
CURRENCY_EXPONENTS: dict[str, int] = {
    # East Africa
    "KES": 2,  # Kenyan shilling
    "ETB": 2,  # Ethiopian birr
    "TZS": 2,  # Tanzanian shilling
    "UGX": 0,  # Ugandan shilling
    "RWF": 0,  # Rwandan franc
    # Rest of Africa
    "NGN": 2,  # Nigerian naira
    "GHS": 2,  # Ghanaian cedi
    "ZAR": 2,  # South African rand
    "ZMW": 2,  # Zambian kwacha
    "MWK": 2,  # Malawian kwacha
    "EGP": 2,  # Egyptian pound
    "MAD": 2,  # Moroccan dirham
    "XOF": 0,  # West African CFA franc
    "XAF": 0,  # Central African CFA franc
    # Settlement / card currencies
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
}

#: Largest absolute amount, in minor units, that a :class:`Money` may hold.
MAX_MINOR_UNITS = 10**15

_AMOUNT_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_CURRENCY_RE = re.compile(r"[A-Za-z]{3}")
_SHAPE_HINT = 'amount must be a decimal string like "100.00"'
# Longest rendering of a user value echoed back in an error message.
_ECHO_LIMIT = 40


class MoneyError(ValueError):
    """A money amount or currency is invalid; the message says why."""


class MoneyTypeError(MoneyError, TypeError):
    """A value of an unacceptable type (float, bool, ...) was used as money.

    It is both a :class:`MoneyError` (hence a ``ValueError``) and a
    ``TypeError``, so either ``except`` clause catches it.
    """


def _pow10(exponent: int) -> int:
    """``10**exponent`` for ``exponent >= 0``, typed as ``int``."""
    if exponent < 0:
        raise ValueError("exponent must not be negative")
    result: int = 10**exponent
    return result


def _quote(value: str) -> str:
    """Render user input safely (quoted, escaped, truncated) for a message."""
    if len(value) > _ECHO_LIMIT:
        return json.dumps(value[:_ECHO_LIMIT]) + "..."
    return json.dumps(value)


def parse_currency(code: str) -> str:
    """Return the upper-case ISO 4217 code for ``code`` or raise MoneyError.

    Lower-case codes are accepted and upper-cased; nothing is stripped, so
    ``" KES"`` is rejected.
    """
    if not isinstance(code, str):
        raise MoneyTypeError(f"currency must be a string, got {type(code).__name__}")
    if _CURRENCY_RE.fullmatch(code) is not None:
        upper = code.upper()
        if upper in CURRENCY_EXPONENTS:
            return upper
    raise MoneyError(f"unsupported currency {_quote(code)}")


def _describe_bad_string(value: str) -> str:
    """Explain why ``value`` does not have the strict decimal-string shape."""
    if value == "":
        return "amount is empty"
    if value != value.strip() or any(ch.isspace() for ch in value):
        return "amount must not contain whitespace"
    lowered = value.lower().lstrip("+-")
    if lowered in {"nan", "snan", "inf", "infinity"}:
        return "amount must be a finite number"
    if value.startswith("+"):
        return 'amount must not start with "+"'
    if "," in value or "_" in value or "'" in value:
        return "amount must not contain thousands separators"
    if "e" in lowered:
        return "amount must not use exponent notation"
    if value.count(".") > 1:
        return "amount has more than one decimal point"
    body = value.removeprefix("-")
    if not any(ch.isdigit() for ch in body):
        return "amount has no digits"
    if body.startswith("."):
        return "amount needs a digit before the decimal point"
    if body.endswith("."):
        return "amount needs a digit after the decimal point"
    if any(ch.isdigit() and ch not in "0123456789" for ch in body):
        return "amount must use ASCII digits 0-9"
    return "amount contains characters other than digits, '.' and a leading '-'"


def _places_error(currency: str, exponent: int, places: int, extra: str) -> MoneyError:
    if exponent == 0:
        allowed = f"{currency} does not allow decimal places (whole units only)"
    else:
        allowed = f"{currency} allows at most {exponent} decimal places"
    message = f"{allowed}, got {places}"
    if extra and set(extra) == {"0"}:
        message += " (trailing zeros count too)"
    return MoneyError(message)


def _too_large(currency: str) -> MoneyError:
    limit = Money(MAX_MINOR_UNITS, currency).format()
    return MoneyError(f"amount too large: the maximum is {limit}")


def _minor_from_string(value: str, currency: str, exponent: int) -> int:
    if _AMOUNT_RE.fullmatch(value) is None:
        reason = _describe_bad_string(value)
        raise MoneyError(f"{reason}; {_SHAPE_HINT}, got {_quote(value)}")
    negative = value.startswith("-")
    whole, _, fraction = value.removeprefix("-").partition(".")
    if len(fraction) > exponent:
        raise _places_error(currency, exponent, len(fraction), fraction[exponent:])
    whole = whole.lstrip("0") or "0"
    # MAX_MINOR_UNITS has 16 digits; a longer whole part is over the cap
    # whatever the exponent, and int() of huge strings is best avoided.
    if len(whole) > 16:
        raise _too_large(currency)
    minor = int(whole) * _pow10(exponent) + int(fraction.ljust(exponent, "0") or "0")
    return -minor if negative else minor


def _minor_from_decimal(value: Decimal, currency: str, exponent: int) -> int:
    if not value.is_finite():
        raise MoneyError(f"amount must be a finite number, got Decimal({_quote(str(value))})")
    sign, digits, dec_exp = value.as_tuple()
    if not isinstance(dec_exp, int):  # pragma: no cover - finite Decimals have int exponents
        raise MoneyError("amount must be a finite number")
    if dec_exp < -exponent:
        excess = -dec_exp - exponent
        extra_digits = "".join(str(d) for d in digits[max(0, len(digits) - excess) :])
        raise _places_error(currency, exponent, -dec_exp, extra_digits)
    if value.is_zero():
        return 0
    # adjusted() is the power of ten of the leading digit; anything at 10**16
    # major units or more is over the cap for every exponent.
    if value.adjusted() >= 16:
        raise _too_large(currency)
    coefficient = int("".join(str(d) for d in digits))
    minor = coefficient * _pow10(dec_exp + exponent)
    return -minor if sign else minor


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: ``minor`` units (e.g. cents) of ``currency``."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise MoneyTypeError(f"minor units must be an int, got {type(self.minor).__name__}")
        currency = parse_currency(self.currency)
        if abs(self.minor) > MAX_MINOR_UNITS:
            raise _too_large(currency)
        # Normalise subclasses of int (IntEnum, ...) and lower-case codes.
        object.__setattr__(self, "minor", int(self.minor))
        object.__setattr__(self, "currency", currency)

    # ----------------------------------------------------------------- build

    @classmethod
    def parse(
        cls,
        value: str | int | Decimal,
        currency: str,
        *,
        allow_zero: bool = False,
        allow_negative: bool = False,
    ) -> Money:
        """Strictly parse a major-unit amount such as ``"100.50"``.

        ``value`` may be a decimal string, an ``int`` (whole major units) or a
        finite ``Decimal``.  Floats and bools are refused.  See the module
        docstring for the exact rules.
        """
        code = parse_currency(currency)
        exponent = CURRENCY_EXPONENTS[code]
        if isinstance(value, float):
            raise MoneyTypeError(
                'floats are not accepted for money; pass a string such as "100.00"'
            )
        if isinstance(value, bool):
            raise MoneyTypeError("booleans are not accepted for money")
        if isinstance(value, str):
            minor = _minor_from_string(value, code, exponent)
        elif isinstance(value, int):
            if abs(value) > MAX_MINOR_UNITS:
                raise _too_large(code)
            minor = value * _pow10(exponent)
        elif isinstance(value, Decimal):
            minor = _minor_from_decimal(value, code, exponent)
        else:
            raise MoneyTypeError(
                f"amount must be a str, int or Decimal, got {type(value).__name__}"
            )
        if minor == 0 and not allow_zero:
            raise MoneyError(
                "amount must be positive, got zero"
                if not allow_negative
                else "amount must not be zero"
            )
        if minor < 0 and not allow_negative:
            raise MoneyError(
                "amount must be positive, got a negative amount"
                if not allow_zero
                else "amount must not be negative"
            )
        return cls(minor, code)

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        """Build from an integer count of minor units (zero/negative allowed)."""
        return cls(minor, currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Zero in ``currency``."""
        return cls(0, currency)

    # ---------------------------------------------------------------- render

    @property
    def exponent(self) -> int:
        """ISO 4217 minor-unit exponent of this amount's currency."""
        return CURRENCY_EXPONENTS[self.currency]

    def _split(self) -> tuple[str, int, str]:
        """Return (sign, whole major units, zero-padded fraction digits)."""
        sign = "-" if self.minor < 0 else ""
        whole, fraction = divmod(abs(self.minor), _pow10(self.exponent))
        digits = str(fraction).rjust(self.exponent, "0") if self.exponent else ""
        return sign, whole, digits

    def to_decimal(self) -> Decimal:
        """Exact Decimal with exactly ``exponent`` decimal places."""
        digits = tuple(int(d) for d in str(abs(self.minor)))
        return Decimal((1 if self.minor < 0 else 0, digits, -self.exponent))

    def to_decimal_string(self) -> str:
        """Plain decimal string: ``"100.00"`` for KES, ``"1500"`` for UGX."""
        sign, whole, fraction = self._split()
        return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"

    def format(self) -> str:
        """Human display: ``"KES 1,500.00"``, ``"UGX 15,000"``, ``"-KES 5.00"``."""
        sign, whole, fraction = self._split()
        text = f"{sign}{self.currency} {whole:,}"
        return f"{text}.{fraction}" if fraction else text

    def __str__(self) -> str:
        return self.format()

    # ------------------------------------------------------------ whole units

    def is_whole_major(self) -> bool:
        """True when the amount has no fractional part (e.g. KES 150.00)."""
        return self.minor % _pow10(self.exponent) == 0

    def major_units_exact(self) -> int:
        """The amount in whole major units; MoneyError if it has a fraction."""
        if not self.is_whole_major():
            raise MoneyError(f"{self.format()} is not a whole number of {self.currency}")
        return self.minor // _pow10(self.exponent)

    # ------------------------------------------------------------ arithmetic

    def _check_same_currency(self, other: Money) -> None:
        if self.currency != other.currency:
            raise MoneyError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._check_same_currency(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._check_same_currency(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._check_same_currency(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._check_same_currency(other)
        return self.minor <= other.minor

    def __gt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._check_same_currency(other)
        return self.minor > other.minor

    def __ge__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._check_same_currency(other)
        return self.minor >= other.minor
