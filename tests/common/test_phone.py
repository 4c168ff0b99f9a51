"""Tests for pesarail.common.phone (pure Python, no Django)."""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pesarail.common.phone import (
    SUPPORTED_REGIONS,
    PhoneError,
    mask_phone,
    national_format,
    normalize_phone,
    region_of,
    to_msisdn,
)

E164_RE = re.compile(r"\+[0-9]{8,15}")
hints = st.sampled_from([*SUPPORTED_REGIONS, None])


# ------------------------------------------------------------ metadata checks


@pytest.mark.parametrize(
    ("national", "region"),
    [("0110123456", "KE"), ("0708374149", "KE"), ("0711223344", "ET"), ("0911223344", "ET")],
)
def test_installed_phonenumbers_knows_these_mobile_ranges(national: str, region: str) -> None:
    """The ranges the brief relies on are mobile in the installed metadata."""
    numobj = phonenumbers.parse(national, region)
    assert phonenumbers.is_valid_number(numobj)
    assert phonenumbers.number_type(numobj) == phonenumbers.PhoneNumberType.MOBILE


# ------------------------------------------------------------ accepted forms


@pytest.mark.parametrize(
    ("raw", "hint", "expected"),
    [
        # Kenya
        ("0708374149", "KE", "+254708374149"),
        ("0110123456", "KE", "+254110123456"),
        ("+254708374149", "KE", "+254708374149"),
        ("254708374149", "KE", "+254708374149"),
        ("708374149", "KE", "+254708374149"),
        ("0708 374 149", "KE", "+254708374149"),
        ("0708-374-149", "KE", "+254708374149"),
        ("(0708) 374149", "KE", "+254708374149"),
        ("+254 (0)708 374149", "KE", "+254708374149"),
        ("+254-708-374-149", "KE", "+254708374149"),
        ("  0708374149  ", "KE", "+254708374149"),
        ("0708374149", "ke", "+254708374149"),
        ("254110123456", "KE", "+254110123456"),
        # Ethiopia
        ("0911223344", "ET", "+251911223344"),
        ("0711223344", "ET", "+251711223344"),
        ("+251911223344", "ET", "+251911223344"),
        ("251911223344", "ET", "+251911223344"),
        ("+251 711 223 344", "ET", "+251711223344"),
        # Tanzania
        ("0712345678", "TZ", "+255712345678"),
        ("+255712345678", "TZ", "+255712345678"),
        ("255712345678", "TZ", "+255712345678"),
        # Uganda
        ("0772123456", "UG", "+256772123456"),
        ("+256772123456", "UG", "+256772123456"),
        ("256 772 123456", "UG", "+256772123456"),
        # A "+" number from another country wins over the hint.
        ("+255712345678", "KE", "+255712345678"),
        ("+251911223344", "KE", "+251911223344"),
        ("+447400123456", "KE", "+447400123456"),
        # Without a hint the digits must carry a country code.
        ("254708374149", None, "+254708374149"),
        ("+256772123456", None, "+256772123456"),
    ],
)
def test_normalize_accepts(raw: str, hint: str | None, expected: str) -> None:
    assert normalize_phone(raw, hint) == expected


def test_default_hint_is_kenya() -> None:
    assert normalize_phone("0708374149") == "+254708374149"


# ------------------------------------------------------------ rejections


@pytest.mark.parametrize(
    ("raw", "hint", "message"),
    [
        ("", "KE", "phone number is empty"),
        ("   ", "KE", "phone number is empty"),
        ("abc", "KE", "must not contain letters"),
        ("07O8374149", "KE", "must not contain letters"),
        ("0708374149 ext 12", "KE", "must not contain letters"),
        ("07#08374149", "KE", "may only contain digits"),
        ("0708/374149", "KE", "may only contain digits"),
        ("0708+374149", "KE", "may only contain digits"),
        ("\u0660\u0667\u0660\u0668\u0663\u0667\u0664\u0661\u0664\u0669", "KE", "digits 0-9"),
        ("---", "KE", "has no digits"),
        (
            "07083741",
            "KE",
            (
                "phone number has 7 digits after the country code or leading 0; "
                "a Kenyan mobile number has 9"
            ),
        ),
        ("070837414999", "KE", "has 11 digits"),
        ("12", "KE", "a Kenyan mobile number has 9"),
        ("091122334", "ET", "an Ethiopian mobile number has 9"),
        ("+2547083741", "KE", "a Kenyan mobile number has 9"),
        ("0201234567", "KE", "is a fixed-line number, not a Kenyan mobile number"),
        ("0800720000", "KE", "is a toll-free number"),
        ("0908374149", "KE", "is not a Kenyan mobile number (unknown number range)"),
        ("0708374149", None, "no country is known"),
        ("+0708374149", "KE", "country codes never start with 0"),
        ("+999123456789", "KE", "unknown country code"),
        ("254708374149", "ET", "an Ethiopian mobile number has 9"),
        ("0708374149", "XX", 'unknown country hint "XX"'),
        ("+6907290", None, "8-15 digit range"),
        ("0" * 50, "KE", "too long"),
    ],
)
def test_normalize_rejects(raw: str, hint: str | None, message: str) -> None:
    with pytest.raises(PhoneError) as excinfo:
        normalize_phone(raw, hint)
    assert message in str(excinfo.value)


def test_phone_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        normalize_phone("nope")


def test_non_string_input_is_phone_error() -> None:
    with pytest.raises(PhoneError):
        normalize_phone(708374149)  # type: ignore[arg-type]


# ------------------------------------------------------------ helpers


def test_to_msisdn() -> None:
    assert to_msisdn("+254708374149") == "254708374149"
    assert to_msisdn("+251911223344") == "251911223344"


@pytest.mark.parametrize(
    "value", ["254708374149", "0708374149", "+254 708374149", "+2540708374149", "+25470837", ""]
)
def test_to_msisdn_requires_canonical_e164(value: str) -> None:
    with pytest.raises(PhoneError):
        to_msisdn(value)


def test_national_format() -> None:
    assert national_format("+254708374149") == "0708 374149"
    assert national_format("+254110123456") == "0110 123456"
    assert national_format("+251911223344") == "091 122 3344"
    assert national_format("+256772123456") == "0772 123456"
    with pytest.raises(PhoneError):
        national_format("0708374149")


def test_region_of() -> None:
    assert region_of("+254708374149") == "KE"
    assert region_of("+251911223344") == "ET"
    assert region_of("+255712345678") == "TZ"
    assert region_of("+256772123456") == "UG"
    assert region_of("+447400123456") == "GB"
    assert region_of("0708374149") is None
    assert region_of("+999123456789") is None
    assert region_of("") is None


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("+254708374149", "+254708***149"),
        ("254708374149", "254708***149"),
        ("0708374149", "0708***149"),
        ("708374149", "708***149"),
        ("+251911223344", "+251911***344"),
        ("+254 708 374 149", "+254708***149"),
        ("+16502530000", "+1650***000"),
        ("", "***"),
        ("12345", "***"),
        ("hello", "***"),
        ("+999123456789", "***"),
        ("+254708374149" * 5, "***"),
    ],
)
def test_mask_phone_examples(value: str, masked: str) -> None:
    assert mask_phone(value) == masked


def test_mask_phone_never_raises_on_non_strings() -> None:
    assert mask_phone(None) == "***"  # type: ignore[arg-type]
    assert mask_phone(254708374149) == "***"  # type: ignore[arg-type]


# ------------------------------------------------------------ properties


@st.composite
def local_mobile_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """(national number with trunk 0, region) for the supported regions."""
    region, prefix = draw(
        st.sampled_from(
            [("KE", "07"), ("KE", "011"), ("ET", "09"), ("ET", "07"), ("TZ", "07"), ("UG", "07")]
        )
    )
    rest = draw(st.from_regex(rf"[0-9]{{{10 - len(prefix)}}}", fullmatch=True))
    return prefix + rest, region


phone_like_text = st.one_of(
    st.text(),
    st.text(alphabet="0123456789+-() ", max_size=25),
    st.from_regex(r"\+?[0-9]{6,16}", fullmatch=True),
)


@given(raw=phone_like_text, hint=hints)
def test_any_text_is_phone_error_or_e164(raw: str, hint: str | None) -> None:
    try:
        result = normalize_phone(raw, hint)
    except PhoneError as exc:
        assert str(exc)
        return
    assert E164_RE.fullmatch(result), result
    assert normalize_phone(result, hint) == result


@given(raw=phone_like_text, hint=hints, second_hint=hints)
def test_normalize_is_idempotent(raw: str, hint: str | None, second_hint: str | None) -> None:
    try:
        once = normalize_phone(raw, hint)
    except PhoneError:
        return
    assert normalize_phone(once, hint) == once
    assert normalize_phone(once, second_hint) == once


@given(number=local_mobile_numbers(), second_hint=hints)
def test_valid_local_numbers_normalize_idempotently(
    number: tuple[str, str], second_hint: str | None
) -> None:
    national, region = number
    numobj = phonenumbers.parse(national, region)
    assume(phonenumbers.is_valid_number(numobj))
    result = normalize_phone(national, region)
    assert result == phonenumbers.format_number(numobj, phonenumbers.PhoneNumberFormat.E164)
    assert normalize_phone(result, second_hint) == result
    assert region_of(result) == region
    assert to_msisdn(result) == result[1:]
    assert normalize_phone(national_format(result), region) == result


@given(subscriber=st.from_regex(r"7[0-9]{8}", fullmatch=True))
def test_kenyan_forms_agree(subscriber: str) -> None:
    assume(phonenumbers.is_valid_number(phonenumbers.parse("0" + subscriber, "KE")))
    expected = "+254" + subscriber
    forms = [
        "0" + subscriber,
        subscriber,
        "254" + subscriber,
        "+254" + subscriber,
        f"+254 {subscriber[:3]} {subscriber[3:6]} {subscriber[6:]}",
        f"0{subscriber[:3]}-{subscriber[3:]}",
    ]
    for form in forms:
        assert normalize_phone(form, "KE") == expected
    assert normalize_phone("254" + subscriber, None) == expected
    assert normalize_phone("+254" + subscriber, "UG") == expected


@given(number=local_mobile_numbers())
def test_mask_hides_the_middle_of_real_numbers(number: tuple[str, str]) -> None:
    national, region = number
    try:
        e164 = normalize_phone(national, region)
    except PhoneError:
        assume(False)
        raise
    country_code = str(phonenumbers.country_code_for_region(region))
    subscriber = e164[1 + len(country_code) :]
    for form, prefix in ((e164, "+" + country_code), (e164[1:], country_code), (national, "0")):
        masked = mask_phone(form)
        assert masked == f"{prefix}{subscriber[:3]}***{subscriber[-3:]}"
        assert subscriber not in masked
        assert form not in masked
        assert len(masked) == len(form)
        shown_subscriber_digits = sum(ch.isdigit() for ch in masked[len(prefix) :])
        assert shown_subscriber_digits <= 6


@given(value=st.one_of(st.text(), phone_like_text))
def test_mask_never_raises_and_never_reveals_everything(value: str) -> None:
    masked = mask_phone(value)
    assert isinstance(masked, str)
    if masked == "***":
        return
    assert "***" in masked
    input_digits = [ch for ch in value if ch.isdigit()]
    output_digits = [ch for ch in masked if ch.isdigit()]
    # At least three digits are always hidden, and at most 3 + 3 digits of the
    # number after the country code (at most 3 digits) are shown.
    assert len(output_digits) <= len(input_digits) - 3
    assert len(output_digits) <= 9
    head, _, tail = masked.partition("***")
    assert len(tail) <= 3
    assert "".join(ch for ch in value if ch not in " ()-.").startswith(head)
