"""Mobile phone numbers for pesarail.

Mobile-money providers identify payers by phone number, so every number that
enters pesarail is normalised to E.164 (``"+254708374149"``) by
:func:`normalize_phone` and only mobile numbers are accepted.

Validity is decided by Google's libphonenumber metadata (the ``phonenumbers``
package); this module does not keep its own number ranges.  If a real-world
range is missing from that metadata, upgrade ``phonenumbers`` rather than
adding exceptions here.  Checked against phonenumbers 9.0.x: Kenyan ``01xx``
numbers (e.g. 0110 123456) and Safaricom Ethiopia ``07xx`` numbers (e.g.
071 122 3344) are valid mobile numbers.

Input rules of :func:`normalize_phone`:

* Spaces, dashes, dots and parentheses are ignored; letters and any other
  characters are rejected (no vanity numbers, no extensions).
* A leading ``+`` means the digits start with a country code; any valid
  mobile number of any country is then accepted, whatever the hint.
* Without ``+`` the number is read in the hinted country: ``0708374149``,
  ``708374149`` and ``254708374149`` are all the same Kenyan number.  Digits
  without ``+`` are *not* reinterpreted as another country's number, so a
  typo cannot silently turn into a foreign number.
* Without ``+`` and with ``country_hint=None`` the digits must start with a
  country code.
* Numbers whose E.164 form has fewer than 8 digits (a few Pacific islands such
  as Tokelau) are rejected.
"""

from __future__ import annotations

import json
import re
from typing import Final

import phonenumbers
from phonenumbers import (
    NumberParseException,
    PhoneNumber,
    PhoneNumberFormat,
    PhoneNumberType,
)

__all__ = [
    "SUPPORTED_REGIONS",
    "PhoneError",
    "mask_phone",
    "national_format",
    "normalize_phone",
    "region_of",
    "to_msisdn",
]

#: Regions pesarail's mobile-money integrations target.  Any region known to
#: ``phonenumbers`` is accepted as a ``country_hint``.
SUPPORTED_REGIONS: Final[tuple[str, ...]] = ("KE", "ET", "TZ", "UG")

#: Shortest and longest E.164 number (digits after the "+") that is accepted.
MIN_E164_DIGITS: Final = 8
MAX_E164_DIGITS: Final = 15

_MOBILE_TYPES: Final = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_TYPE_NAMES: Final[dict[int, str]] = {
    PhoneNumberType.FIXED_LINE: "a fixed-line number",
    PhoneNumberType.TOLL_FREE: "a toll-free number",
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.VOIP: "a VoIP number",
    PhoneNumberType.PERSONAL_NUMBER: "a personal (forwarding) number",
    PhoneNumberType.PAGER: "a pager number",
    PhoneNumberType.UAN: "a universal access number",
    PhoneNumberType.VOICEMAIL: "a voicemail number",
}
_ADJECTIVES: Final[dict[str, str]] = {
    "KE": "Kenyan",
    "ET": "Ethiopian",
    "TZ": "Tanzanian",
    "UG": "Ugandan",
    "RW": "Rwandan",
    "BI": "Burundian",
    "SS": "South Sudanese",
    "SO": "Somali",
    "NG": "Nigerian",
    "GH": "Ghanaian",
    "ZA": "South African",
    "ZM": "Zambian",
    "MW": "Malawian",
    "EG": "Egyptian",
    "MA": "Moroccan",
}

# Longest raw input looked at; real numbers with generous spacing fit easily.
_MAX_RAW_LENGTH: Final = 40
_ALLOWED_RE: Final = re.compile(r"\+?[0-9 ().\-]+")
_SEPARATORS_RE: Final = re.compile(r"[ ().\-]")
_E164_RE: Final = re.compile(rf"\+[1-9][0-9]{{{MIN_E164_DIGITS - 1},{MAX_E164_DIGITS - 1}}}")
_MASK: Final = "***"


class PhoneError(ValueError):
    """A phone number is not an acceptable mobile number; the message says why."""


def _quote(value: str) -> str:
    if len(value) > _MAX_RAW_LENGTH:
        return json.dumps(value[:_MAX_RAW_LENGTH]) + "..."
    return json.dumps(value)


def _describe_region(region: str | None) -> str:
    """``"a Kenyan mobile number"`` / ``"a mobile number for region XX"``."""
    if region is None or region == phonenumbers.UNKNOWN_REGION:
        return "a mobile number"
    adjective = _ADJECTIVES.get(region)
    if adjective is not None:
        article = "an" if adjective[0] in "AEIOU" else "a"
        return f"{article} {adjective} mobile number"
    return f"a mobile number for region {region}"


def _mobile_lengths(numobj: PhoneNumber, region: str | None) -> tuple[int, ...]:
    """Possible national-number lengths of mobile numbers for ``numobj``'s country."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        numobj.country_code or 0, region or phonenumbers.UNKNOWN_REGION
    )
    if metadata is None:
        return ()
    for desc in (metadata.mobile, metadata.general_desc):
        if desc is not None and desc.possible_length:
            lengths = tuple(length for length in desc.possible_length if length > 0)
            if lengths:
                return lengths
    return ()


def _join_lengths(lengths: tuple[int, ...]) -> str:
    words = [str(length) for length in sorted(lengths)]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _normalize_hint(country_hint: str | None) -> str | None:
    if country_hint is None:
        return None
    if not isinstance(country_hint, str):
        raise PhoneError('country hint must be a two-letter region code such as "KE"')
    hint = country_hint.upper()
    if hint not in phonenumbers.SUPPORTED_REGIONS:
        raise PhoneError(f"unknown country hint {_quote(country_hint)}")
    return hint


_PARSE_ERRORS: Final[dict[int, str]] = {
    NumberParseException.INVALID_COUNTRY_CODE: "phone number has an unknown country code",
    NumberParseException.NOT_A_NUMBER: "phone number is not a number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "phone number is too short",
    NumberParseException.TOO_SHORT_NSN: "phone number is too short",
    NumberParseException.TOO_LONG: "phone number is too long",
}


def normalize_phone(raw: str, country_hint: str | None = "KE") -> str:
    """Return the E.164 form (``"+254708374149"``) of a mobile number.

    ``country_hint`` is the region used for numbers written without ``+``
    (``"0708374149"``); see the module docstring for the rules.  Raises
    :class:`PhoneError` with a specific message for anything else.
    """
    if not isinstance(raw, str):
        raise PhoneError(f"phone number must be a string, got {type(raw).__name__}")
    text = raw.strip()
    if not text:
        raise PhoneError("phone number is empty")
    if len(text) > _MAX_RAW_LENGTH:
        raise PhoneError(f"phone number is too long ({len(text)} characters)")
    if any(ch.isalpha() for ch in text):
        raise PhoneError(f"phone number must not contain letters, got {_quote(raw)}")
    if _ALLOWED_RE.fullmatch(text) is None:
        raise PhoneError(
            "phone number may only contain digits 0-9, spaces, dashes, dots, parentheses "
            f"and a leading '+', got {_quote(raw)}"
        )
    has_plus = text.startswith("+")
    digits = _SEPARATORS_RE.sub("", text).removeprefix("+")
    if not digits:
        raise PhoneError("phone number has no digits")
    hint = _normalize_hint(country_hint)

    if has_plus or hint is None:
        if has_plus and digits.startswith("0"):
            raise PhoneError(
                f"country codes never start with 0; remove the '+' or the 0 in {_quote(raw)}"
            )
        if digits.startswith("0"):
            raise PhoneError(
                "phone number starts with 0 but no country is known; "
                "write it as +<country code><number> or pass a country hint"
            )
        to_parse, parse_region = "+" + digits, None
    else:
        to_parse, parse_region = digits, hint

    try:
        numobj = phonenumbers.parse(to_parse, parse_region)
    except NumberParseException as exc:
        message = _PARSE_ERRORS.get(exc.error_type, "phone number could not be read")
        raise PhoneError(f"{message}: {_quote(raw)}") from None

    country_code = numobj.country_code or 0
    region = phonenumbers.region_code_for_country_code(country_code)
    if not phonenumbers.is_valid_number(numobj):
        national = phonenumbers.national_significant_number(numobj)
        if national.startswith("0") and not has_plus:
            # phonenumbers keeps the trunk 0 when the rest is not a possible
            # number; it is still not part of the number's length.
            national = national[1:]
        lengths = _mobile_lengths(numobj, region)
        what = _describe_region(region)
        if lengths and len(national) not in lengths:
            raise PhoneError(
                f"phone number has {len(national)} digits after the country code or leading 0; "
                f"{what} has {_join_lengths(lengths)}"
            )
        raise PhoneError(f"{_quote(raw)} is not {what} (unknown number range)")

    number_type = phonenumbers.number_type(numobj)
    if number_type not in _MOBILE_TYPES:
        kind = _TYPE_NAMES.get(number_type, "not a recognised kind of number")
        raise PhoneError(f"{_quote(raw)} is {kind}, not {_describe_region(region)}")

    e164 = phonenumbers.format_number(numobj, PhoneNumberFormat.E164)
    if _E164_RE.fullmatch(e164) is None:
        raise PhoneError(
            f"{e164} is outside the {MIN_E164_DIGITS}-{MAX_E164_DIGITS} digit range "
            "pesarail accepts"
        )
    return e164


def _parse_e164(e164: str) -> PhoneNumber:
    """Parse a canonical, valid E.164 string or raise PhoneError."""
    if not isinstance(e164, str) or _E164_RE.fullmatch(e164) is None:
        shown = _quote(e164) if isinstance(e164, str) else type(e164).__name__
        raise PhoneError(f'expected an E.164 number like "+254708374149", got {shown}')
    try:
        numobj = phonenumbers.parse(e164, None)
    except NumberParseException:
        raise PhoneError(f"{_quote(e164)} is not a valid phone number") from None
    if not phonenumbers.is_valid_number(numobj):
        raise PhoneError(f"{_quote(e164)} is not a valid phone number")
    if phonenumbers.format_number(numobj, PhoneNumberFormat.E164) != e164:
        raise PhoneError(f"{_quote(e164)} is not in canonical E.164 form")
    return numobj


def to_msisdn(e164: str) -> str:
    """``"+254708374149"`` -> ``"254708374149"`` (digits only, for providers)."""
    _parse_e164(e164)
    return e164[1:]


def national_format(e164: str) -> str:
    """National display form, e.g. ``"0708 374149"`` for ``"+254708374149"``."""
    return phonenumbers.format_number(_parse_e164(e164), PhoneNumberFormat.NATIONAL)


def region_of(e164: str) -> str | None:
    """Region code (``"KE"``) of a valid E.164 number.

    Returns ``None`` when the input is not a valid canonical E.164 number or
    the number belongs to no single region (e.g. +800 international numbers).
    """
    try:
        numobj = _parse_e164(e164)
    except PhoneError:
        return None
    region = phonenumbers.region_code_for_number(numobj)
    if region is None or region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        return None
    return region


def _split_country_code(digits: str, *, require_valid: bool) -> tuple[str, str] | None:
    """Split international digits into (country code, rest) if they parse as such.

    With ``require_valid`` the whole number must also be valid, which is how
    a bare ``"254708374149"`` is told apart from a national number that
    merely starts with digits that look like a country code.
    """
    try:
        numobj = phonenumbers.parse("+" + digits, None)
    except NumberParseException:
        return None
    if require_valid and not phonenumbers.is_valid_number(numobj):
        return None
    code = str(numobj.country_code or "")
    if not code or not digits.startswith(code):
        return None
    return code, digits[len(code) :]


def mask_phone(value: str) -> str:
    """Mask a phone number for logs: ``"+254708374149"`` -> ``"+254708***149"``.

    Keeps the ``+``/country code (or the leading trunk ``0``), at most the
    first three and last three digits of the national number, and always
    hides at least three digits.  Anything that does not look like a phone
    number becomes ``"***"``.  Never raises.
    """
    if not isinstance(value, str) or len(value) > _MAX_RAW_LENGTH:
        return _MASK
    compact = _SEPARATORS_RE.sub("", value.strip())
    if re.fullmatch(r"\+?[0-9]{7,16}", compact, flags=re.ASCII) is None:
        return _MASK
    digits = compact.removeprefix("+")
    if compact.startswith("+"):
        split = _split_country_code(digits, require_valid=False)
        if split is None:
            return _MASK
        prefix, national = "+" + split[0], split[1]
    elif digits.startswith("0"):
        prefix, national = "0", digits[1:]
    elif (split := _split_country_code(digits, require_valid=True)) is not None:
        # Bare international form such as "254708374149" (MSISDN).
        prefix, national = split
    else:
        prefix, national = "", digits
    keep = min(3, (len(national) - 3) // 2)
    if keep < 1:
        return _MASK
    return f"{prefix}{national[:keep]}{_MASK}{national[-keep:]}"
