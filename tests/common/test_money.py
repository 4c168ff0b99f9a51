"""Tests for pesarail.common.money (pure Python, no Django)."""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pesarail.common import money as money_module
from pesarail.common.money import (
    CURRENCY_EXPONENTS,
    MAX_MINOR_UNITS,
    Money,
    MoneyError,
    MoneyTypeError,
    parse_currency,
)

CURRENCIES = sorted(CURRENCY_EXPONENTS)
DECIMAL_STRING_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?")

currencies = st.sampled_from(CURRENCIES)
minors = st.integers(min_value=-MAX_MINOR_UNITS, max_value=MAX_MINOR_UNITS)


@st.composite
def monies(draw: st.DrawFn, currency: str | None = None, bound: int = MAX_MINOR_UNITS) -> Money:
    code = currency if currency is not None else draw(currencies)
    return Money(draw(st.integers(min_value=-bound, max_value=bound)), code)


@st.composite
def two_currencies(draw: st.DrawFn) -> tuple[str, str]:
    first = draw(currencies)
    second = draw(currencies.filter(lambda code: code != first))
    return first, second


# --------------------------------------------------------------------------- table


def test_required_currency_exponents() -> None:
    required = {
        "KES": 2,
        "ETB": 2,
        "TZS": 2,
        "UGX": 0,
        "USD": 2,
        "NGN": 2,
        "GHS": 2,
        "ZAR": 2,
        "RWF": 0,
    }
    for code, exponent in required.items():
        assert CURRENCY_EXPONENTS[code] == exponent
    assert all(code == code.upper() and len(code) == 3 for code in CURRENCY_EXPONENTS)


# ------------------------------------------------------------------ parse_currency


@pytest.mark.parametrize(("code", "expected"), [("KES", "KES"), ("kes", "KES"), ("Ugx", "UGX")])
def test_parse_currency_accepts_and_upper_cases(code: str, expected: str) -> None:
    assert parse_currency(code) == expected


@pytest.mark.parametrize("code", ["XYZ", " KES", "KES ", "KE", "KESS", "", "K3S", "кес"])
def test_parse_currency_rejects_unknown_or_padded(code: str) -> None:
    with pytest.raises(MoneyError, match="unsupported currency"):
        parse_currency(code)


def test_parse_currency_message_names_the_code() -> None:
    with pytest.raises(MoneyError) as excinfo:
        parse_currency("XYZ")
    assert str(excinfo.value) == 'unsupported currency "XYZ"'


# ------------------------------------------------------------------ parse examples


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        ("100.00", "KES", 10000),
        ("100", "KES", 10000),
        ("100.5", "KES", 10050),
        ("0.01", "KES", 1),
        ("1500", "UGX", 1500),
        ("2500", "RWF", 2500),
        ("99.99", "USD", 9999),
        ("1", "ETB", 100),
        ("1000.50", "TZS", 100050),
        ("12.34", "NGN", 1234),
        ("7.5", "GHS", 750),
        ("19.99", "ZAR", 1999),
        ("500", "XOF", 500),
        ("007.00", "KES", 700),
        ("100.00", "kes", 10000),
    ],
)
def test_parse_valid_strings(value: str, currency: str, minor: int) -> None:
    parsed = Money.parse(value, currency)
    assert parsed == Money(minor, currency.upper())
    assert parsed.minor == minor
    assert parsed.currency == currency.upper()


@pytest.mark.parametrize(
    ("value", "currency", "message"),
    [
        ("1.5", "UGX", "UGX does not allow decimal places"),
        ("100.001", "KES", "KES allows at most 2 decimal places, got 3"),
        ("100.000", "KES", "trailing zeros count too"),
        ("1.0", "RWF", "RWF does not allow decimal places"),
        ("1e5", "KES", "exponent notation"),
        ("1E5", "KES", "exponent notation"),
        (" 100", "KES", "whitespace"),
        ("100 ", "KES", "whitespace"),
        ("100\n", "KES", "whitespace"),
        ("1 000", "KES", "whitespace"),
        ("1,000", "KES", "thousands separators"),
        ("1_000", "KES", "thousands separators"),
        ("+5", "KES", 'must not start with "+"'),
        (".5", "KES", "digit before the decimal point"),
        ("-.5", "KES", "digit before the decimal point"),
        ("5.", "KES", "digit after the decimal point"),
        ("1.2.3", "KES", "more than one decimal point"),
        ("NaN", "KES", "finite"),
        ("nan", "KES", "finite"),
        ("Infinity", "KES", "finite"),
        ("-inf", "KES", "finite"),
        ("", "KES", "amount is empty"),
        ("-", "KES", "no digits"),
        ("abc", "KES", "no digits"),
        ("KES 100", "KES", "whitespace"),
        ("\u0661\u0660\u0660", "KES", "ASCII digits"),
        ("0x10", "KES", "characters other than digits"),
    ],
)
def test_parse_rejects_bad_strings_with_specific_messages(
    value: str, currency: str, message: str
) -> None:
    with pytest.raises(MoneyError) as excinfo:
        Money.parse(value, currency)
    assert message in str(excinfo.value)


@pytest.mark.parametrize("value", ["1e5", " 100", "1,000", "+5", ".5", "5.", "NaN", ""])
def test_shape_errors_explain_the_expected_format(value: str) -> None:
    with pytest.raises(
        MoneyError, match=re.escape('amount must be a decimal string like "100.00"')
    ):
        Money.parse(value, "KES")


def test_float_is_rejected_as_type_error() -> None:
    with pytest.raises(MoneyError, match="floats are not accepted for money"):
        Money.parse(1.5, "KES")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money.parse(100.0, "KES")  # type: ignore[arg-type]
    with pytest.raises(MoneyTypeError):
        Money.parse(float("nan"), "KES")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, False, None, [1], b"100"])
def test_other_types_are_rejected(value: object) -> None:
    with pytest.raises(MoneyTypeError):
        Money.parse(value, "KES")  # type: ignore[arg-type]


def test_unknown_currency_in_parse() -> None:
    with pytest.raises(MoneyError, match='unsupported currency "XYZ"'):
        Money.parse("100", "XYZ")


def test_ints_are_whole_major_units() -> None:
    assert Money.parse(5, "KES") == Money(500, "KES")
    assert Money.parse(5, "UGX") == Money(5, "UGX")
    assert Money.parse(-5, "KES", allow_negative=True) == Money(-500, "KES")


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        (Decimal("100.00"), "KES", 10000),
        (Decimal("100.5"), "KES", 10050),
        (Decimal(100), "KES", 10000),
        (Decimal("1E+2"), "UGX", 100),
        (Decimal("1.5E+3"), "KES", 150000),
        (Decimal("-2.25"), "USD", -225),
    ],
)
def test_parse_decimals(value: Decimal, currency: str, minor: int) -> None:
    assert Money.parse(value, currency, allow_negative=True) == Money(minor, currency)


@pytest.mark.parametrize(
    ("value", "currency", "message"),
    [
        (Decimal("100.001"), "KES", "KES allows at most 2 decimal places, got 3"),
        (Decimal("100.000"), "KES", "trailing zeros count too"),
        (Decimal("1.5"), "UGX", "UGX does not allow decimal places"),
        (Decimal("0.001"), "UGX", "UGX does not allow decimal places (whole units only), got 3"),
        (Decimal("NaN"), "KES", "finite"),
        (Decimal("sNaN"), "KES", "finite"),
        (Decimal("Infinity"), "KES", "finite"),
        (Decimal("-Infinity"), "KES", "finite"),
        (Decimal("1E+999999"), "KES", "amount too large"),
    ],
)
def test_parse_rejects_bad_decimals(value: Decimal, currency: str, message: str) -> None:
    with pytest.raises(MoneyError) as excinfo:
        Money.parse(value, currency, allow_negative=True)
    assert message in str(excinfo.value)


def test_zero_and_negative_need_opt_in() -> None:
    with pytest.raises(MoneyError, match="amount must be positive"):
        Money.parse("0", "KES")
    with pytest.raises(MoneyError, match="amount must be positive"):
        Money.parse("0.00", "KES")
    with pytest.raises(MoneyError, match="amount must be positive"):
        Money.parse("-5", "KES")
    with pytest.raises(MoneyError, match="amount must be positive"):
        Money.parse(-5, "KES")
    with pytest.raises(MoneyError, match="amount must not be negative"):
        Money.parse("-5", "KES", allow_zero=True)
    with pytest.raises(MoneyError, match="amount must not be zero"):
        Money.parse("0", "KES", allow_negative=True)
    assert Money.parse("0", "KES", allow_zero=True) == Money.zero("KES")
    assert Money.parse("-0.00", "KES", allow_zero=True) == Money.zero("KES")
    assert Money.parse("-5", "KES", allow_negative=True) == Money(-500, "KES")


def test_magnitude_cap() -> None:
    assert Money.parse("10000000000000.00", "KES").minor == MAX_MINOR_UNITS
    assert Money.parse("1000000000000000", "UGX").minor == MAX_MINOR_UNITS
    for value in ("10000000000000.01", "99999999999999", "1" * 200, "0" * 5000 + "1" * 30):
        with pytest.raises(MoneyError, match="amount too large"):
            Money.parse(value, "KES")
    with pytest.raises(MoneyError, match="amount too large"):
        Money.parse("-10000000000000.01", "KES", allow_negative=True)
    with pytest.raises(MoneyError, match="amount too large"):
        Money.parse(10**20, "KES")
    with pytest.raises(MoneyError, match="amount too large"):
        Money.from_minor(MAX_MINOR_UNITS + 1, "KES")
    with pytest.raises(MoneyError, match="amount too large"):
        Money.from_minor(-MAX_MINOR_UNITS - 1, "UGX")


def test_leading_zeros_are_fine_but_do_not_bypass_the_cap() -> None:
    assert Money.parse("0" * 5000 + "1", "KES") == Money(100, "KES")


# -------------------------------------------------------------- construction


def test_money_validates_fields() -> None:
    with pytest.raises(MoneyTypeError):
        Money(True, "KES")
    with pytest.raises(MoneyTypeError):
        Money(1.0, "KES")  # type: ignore[arg-type]
    with pytest.raises(MoneyTypeError):
        Money(Decimal(1), "KES")  # type: ignore[arg-type]
    with pytest.raises(MoneyError, match='unsupported currency "XYZ"'):
        Money(1, "XYZ")
    assert Money(1, "kes").currency == "KES"
    assert Money(1, "kes") == Money(1, "KES")


def test_money_is_frozen_and_hashable() -> None:
    value = Money(100, "KES")
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.minor = 5  # type: ignore[misc]
    assert {Money(100, "KES"), Money(100, "KES"), Money(100, "UGX")} == {
        Money(100, "KES"),
        Money(100, "UGX"),
    }


def test_from_minor_and_zero() -> None:
    assert Money.from_minor(150, "KES") == Money(150, "KES")
    assert Money.from_minor(-150, "KES").minor == -150
    assert Money.zero("UGX") == Money(0, "UGX")
    assert Money.zero("kes").currency == "KES"


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize(
    ("value", "text", "decimal_string"),
    [
        (Money(150000, "KES"), "KES 1,500.00", "1500.00"),
        (Money(15000, "UGX"), "UGX 15,000", "15000"),
        (Money(-500, "KES"), "-KES 5.00", "-5.00"),
        (Money(5, "KES"), "KES 0.05", "0.05"),
        (Money(-5, "KES"), "-KES 0.05", "-0.05"),
        (Money(0, "ETB"), "ETB 0.00", "0.00"),
        (Money(0, "RWF"), "RWF 0", "0"),
        (Money(123456789, "USD"), "USD 1,234,567.89", "1234567.89"),
        (Money(MAX_MINOR_UNITS, "KES"), "KES 10,000,000,000,000.00", "10000000000000.00"),
    ],
)
def test_formatting(value: Money, text: str, decimal_string: str) -> None:
    assert value.format() == text
    assert str(value) == text
    assert value.to_decimal_string() == decimal_string


def test_to_decimal_is_exact_and_quantized() -> None:
    amount = Money.parse("1.5", "KES").to_decimal()
    assert amount == Decimal("1.50")
    assert amount.as_tuple().exponent == -2
    assert str(amount) == "1.50"
    assert str(Money(1500, "UGX").to_decimal()) == "1500"
    assert str(Money(0, "KES").to_decimal()) == "0.00"
    assert str(Money(-1, "KES").to_decimal()) == "-0.01"
    assert Money(MAX_MINOR_UNITS, "KES").to_decimal() == Decimal("10000000000000.00")


def test_whole_major_units() -> None:
    assert Money.parse("150", "KES").is_whole_major()
    assert Money.parse("150.00", "KES").major_units_exact() == 150
    assert not Money.parse("150.50", "KES").is_whole_major()
    with pytest.raises(MoneyError, match=re.escape("KES 150.50 is not a whole number of KES")):
        Money.parse("150.50", "KES").major_units_exact()
    assert Money(-500, "KES").major_units_exact() == -5
    assert Money(7, "UGX").is_whole_major()
    assert Money(7, "UGX").major_units_exact() == 7


# --------------------------------------------------------------- arithmetic


def test_arithmetic_examples() -> None:
    a = Money.parse("10.50", "KES")
    b = Money.parse("0.75", "KES")
    assert a + b == Money(1125, "KES")
    assert a - b == Money(975, "KES")
    assert b - a == Money(-975, "KES")
    assert -a == Money(-1050, "KES")
    assert b < a
    assert b <= a
    same = Money(a.minor, a.currency)
    assert a <= same
    assert a > b
    assert a >= b
    assert a >= same
    assert not a < same


def test_currency_mismatch() -> None:
    kes = Money(100, "KES")
    etb = Money(100, "ETB")
    with pytest.raises(MoneyError) as excinfo:
        kes + etb
    assert str(excinfo.value) == "currency mismatch: KES vs ETB"
    with pytest.raises(MoneyError, match="currency mismatch: ETB vs KES"):
        etb - kes
    with pytest.raises(MoneyError, match="currency mismatch"):
        kes < etb  # noqa: B015
    assert kes != etb


def test_no_mixing_with_numbers() -> None:
    kes = Money(100, "KES")
    with pytest.raises(TypeError):
        kes + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        kes * 2  # type: ignore[operator]
    with pytest.raises(TypeError):
        kes * 1.5  # type: ignore[operator]
    with pytest.raises(TypeError):
        kes < 5  # type: ignore[operator]  # noqa: B015
    plain_number: object = 100
    assert kes != plain_number


def test_overflowing_arithmetic_is_rejected() -> None:
    big = Money(MAX_MINOR_UNITS, "KES")
    with pytest.raises(MoneyError, match="amount too large"):
        big + Money(1, "KES")
    with pytest.raises(MoneyError, match="amount too large"):
        -big - Money(1, "KES")


def test_module_uses_no_floats() -> None:
    source = Path(money_module.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source)
    for node in ast.walk(tree):
        assert not (isinstance(node, ast.Constant) and isinstance(node.value, float))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "float"
    assert "django" not in source.lower()


# ----------------------------------------------------------------- properties


@given(currency=currencies, minor=minors)
def test_round_trip_through_decimal_string(currency: str, minor: int) -> None:
    value = Money.from_minor(minor, currency)
    text = value.to_decimal_string()
    assert DECIMAL_STRING_RE.fullmatch(text)
    exponent = CURRENCY_EXPONENTS[currency]
    assert len(text.partition(".")[2]) == exponent
    assert Money.parse(text, currency, allow_zero=True, allow_negative=True) == value
    assert Money.parse(value.to_decimal(), currency, allow_zero=True, allow_negative=True) == value


@given(currency=currencies, minor=minors)
def test_format_is_plain_digits(currency: str, minor: int) -> None:
    value = Money.from_minor(minor, currency)
    text = value.format()
    match = re.fullmatch(r"(-?)([A-Z]{3}) ([0-9]{1,3}(?:,[0-9]{3})*(?:\.[0-9]+)?)", text)
    assert match is not None, text
    sign, code, number = match.groups()
    assert code == currency
    assert "e" not in text
    assert "e" not in value.to_decimal_string().lower()
    assert sign + number.replace(",", "") == value.to_decimal_string()
    assert str(value) == text


@given(currency=currencies, minor=minors)
def test_to_decimal_matches_minor(currency: str, minor: int) -> None:
    value = Money.from_minor(minor, currency)
    amount = value.to_decimal()
    assert amount.as_tuple().exponent == -CURRENCY_EXPONENTS[currency]
    assert amount.scaleb(CURRENCY_EXPONENTS[currency]) == minor


@given(data=st.data())
def test_addition_is_associative_and_commutative(data: st.DataObject) -> None:
    currency = data.draw(currencies)
    bound = MAX_MINOR_UNITS // 3
    a, b, c = (data.draw(monies(currency, bound)) for _ in range(3))
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a
    assert (a + b) - b == a
    assert a - a == Money.zero(currency)
    negated = -a
    assert -negated == a
    assert a + Money.zero(currency) == a
    assert (a < b) == (a.minor < b.minor)
    assert (a >= b) == (a.minor >= b.minor)


@given(pair=two_currencies(), x=minors, y=minors)
def test_mixed_currencies_raise(pair: tuple[str, str], x: int, y: int) -> None:
    a = Money(x, pair[0])
    b = Money(y, pair[1])
    operations: list[Callable[[], object]] = [
        lambda: a + b,
        lambda: a - b,
        lambda: a < b,
        lambda: a <= b,
        lambda: a > b,
        lambda: a >= b,
    ]
    for operation in operations:
        with pytest.raises(MoneyError, match=f"currency mismatch: {pair[0]} vs {pair[1]}"):
            operation()
    assert a != b


@given(
    currency=currencies,
    negative=st.booleans(),
    whole=st.from_regex(r"[0-9]{1,14}", fullmatch=True),
    extra=st.integers(min_value=1, max_value=8),
    data=st.data(),
)
def test_parse_never_accepts_too_many_decimals(
    currency: str, negative: bool, whole: str, extra: int, data: st.DataObject
) -> None:
    places = CURRENCY_EXPONENTS[currency] + extra
    fraction = data.draw(st.from_regex(rf"[0-9]{{{places}}}", fullmatch=True))
    text = f"{'-' if negative else ''}{whole}.{fraction}"
    with pytest.raises(MoneyError, match="decimal places"):
        Money.parse(text, currency, allow_zero=True, allow_negative=True)
    with pytest.raises(MoneyError, match="decimal places"):
        Money.parse(Decimal(text), currency, allow_zero=True, allow_negative=True)


amount_like_text = st.one_of(
    st.text(),
    st.text(alphabet="0123456789.-+eE, _"),
    st.from_regex(r"-?[0-9]{1,18}(\.[0-9]{1,4})?", fullmatch=True),
)


@given(
    text=amount_like_text,
    currency=currencies,
    allow_zero=st.booleans(),
    allow_negative=st.booleans(),
)
def test_arbitrary_text_is_money_error_or_stable(
    text: str, currency: str, allow_zero: bool, allow_negative: bool
) -> None:
    flags = {"allow_zero": allow_zero, "allow_negative": allow_negative}
    try:
        value = Money.parse(text, currency, **flags)
    except MoneyError as exc:
        assert str(exc)
        return
    assert DECIMAL_STRING_RE.fullmatch(text)
    assert Money.parse(value.to_decimal_string(), currency, **flags) == value
    assert value.to_decimal() == Decimal(text)
    assert allow_zero or value.minor != 0
    assert allow_negative or value.minor >= 0


@given(
    value=st.decimals(allow_nan=True, allow_infinity=True),
    currency=currencies,
)
def test_arbitrary_decimals_are_money_error_or_exact(value: Decimal, currency: str) -> None:
    try:
        parsed = Money.parse(value, currency, allow_zero=True, allow_negative=True)
    except MoneyError:
        exponent = value.as_tuple().exponent
        assert (
            not value.is_finite()
            or (isinstance(exponent, int) and exponent < -CURRENCY_EXPONENTS[currency])
            or value.adjusted() + CURRENCY_EXPONENTS[currency] >= 15
        )
        return
    assert parsed.to_decimal() == value


@given(whole=st.integers(min_value=-(10**13), max_value=10**13), currency=currencies)
def test_int_and_string_agree(whole: int, currency: str) -> None:
    assume(whole != 0)
    assert Money.parse(whole, currency, allow_negative=True) == Money.parse(
        str(whole), currency, allow_negative=True
    )
