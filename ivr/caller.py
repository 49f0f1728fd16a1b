"""Caller country and language from the caller number, safe for any caller id Asterisk sends."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from ivr.known import KnownNames

#: Longest caller id looked at; E.164 numbers have at most 15 digits, the rest is noise.
MAX_CALLER_CHARS = 32


@dataclass(slots=True)
class CallerInfo:
    """What the number tells us: its E.164 form (if valid), country and default language."""

    number: str | None
    country: str
    language: str


def normalize_number(raw: str, national_region: str = "RU") -> tuple[str | None, str | None]:
    """Return (E.164 number, ISO country) for a caller id, or (None, None) if it is not valid.

    Accepts ``+7916...``, ``007916...``, ``7916...`` (international digits without ``+``) and
    national formats of ``national_region``. Anything else, including hostile strings, gives
    (None, None) and never raises.
    """
    if not isinstance(raw, str):
        return None, None
    return _normalize_cached(raw[:MAX_CALLER_CHARS * 4], national_region)


@lru_cache(maxsize=65536)
def _normalize_cached(raw: str, national_region: str) -> tuple[str | None, str | None]:
    text = raw.strip()
    plus = text.startswith("+")
    # Keep digits only: quotes, newlines, letters and separators never reach the parser.
    digits = "".join(ch for ch in text if "0" <= ch <= "9")
    if not digits or len(digits) > 15 + 2:
        return None, None
    if plus:
        candidates = ["+" + digits]
    elif digits.startswith("00"):
        candidates = ["+" + digits[2:]]
    else:
        candidates = ["+" + digits, digits]
    for candidate in candidates:
        region = None if candidate.startswith("+") else national_region
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            country = phonenumbers.region_code_for_number(parsed)
            e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            return e164, country
    return None, None


def resolve_caller(raw: str, known: KnownNames) -> CallerInfo:
    """Country and language for a caller id; unknown numbers get the center defaults."""
    number, country = normalize_number(raw, known.national_region)
    if country is None or country not in known.countries:
        return CallerInfo(number, known.default_country, known.default_language)
    return CallerInfo(number, country, known.countries[country])


def is_e164(number: str) -> bool:
    """True if ``number`` is written as ``+`` and digits and is a valid phone number."""
    if not isinstance(number, str) or not number.startswith("+") or not number[1:].isdigit():
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False
