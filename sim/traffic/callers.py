"""Realistic E.164 caller numbers per country, and the country of a caller number.

Numbers keep the leading digits of ``phonenumbers``' example mobile and fixed-line numbers
(an operator or area code) and draw the trailing digits from the seeded Generator, so that
``phonenumbers`` validates them and maps them back to the country.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import numpy as np
import phonenumbers
from phonenumbers import PhoneNumberType

#: Share of callers on a mobile line; the rest call from a fixed line (an assumption).
MOBILE_SHARE = 0.75
#: Trailing digits tried for randomisation, most first.
_RANDOM_DIGITS = (7, 6, 5, 4)


@dataclass(frozen=True, slots=True)
class NumberTemplate:
    """``+<country code><prefix>`` followed by ``digits`` random digits."""

    head: str
    digits: int


def country_of_number(number: str) -> str | None:
    """ISO country of a valid E.164 number (``+...``), or None if it is not a valid number."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.region_code_for_number(parsed)


def _template_for(country: str, kind: int) -> NumberTemplate | None:
    example = phonenumbers.example_number_for_type(country, kind)
    if example is None:
        return None
    nsn = phonenumbers.national_significant_number(example)
    # A fixed private Random only *chooses the template*; call numbers use the caller's rng.
    probe = random.Random(f"{country}/{kind}")
    for digits in _RANDOM_DIGITS:
        if digits >= len(nsn) - 1:
            continue
        template = NumberTemplate(f"+{example.country_code}{nsn[:-digits]}", digits)
        tails = [0, 10**digits - 1, *(probe.randrange(10**digits) for _ in range(48))]
        if all(country_of_number(f"{template.head}{tail:0{digits}d}") == country
               for tail in tails):
            return template
    return None


@functools.cache
def templates(country: str) -> tuple[tuple[NumberTemplate, float], ...]:
    """Number templates with weights for ``country``; empty if phonenumbers knows none."""
    found = []
    for kind, weight in ((PhoneNumberType.MOBILE, MOBILE_SHARE),
                         (PhoneNumberType.FIXED_LINE, 1 - MOBILE_SHARE)):
        template = _template_for(country, kind)
        if template is not None:
            found.append((template, weight))
    total = sum(w for _, w in found)
    return tuple((t, w / total) for t, w in found)


def caller_numbers(country: str, rng: np.random.Generator, n: int) -> list[str | None]:
    """``n`` caller numbers from ``country`` (None each if the country has no known plan)."""
    plan = templates(country)
    if not plan:
        return [None] * n
    which = rng.choice(len(plan), size=n, p=[w for _, w in plan]) if len(plan) > 1 \
        else np.zeros(n, dtype=np.int64)
    # Whole numbers as integers (E.164 has at most 15 digits, within int64): head * 10^d + tail.
    heads = np.array([int(t.head[1:]) * 10**t.digits for t, _ in plan], dtype=np.int64)
    spans = np.array([10**t.digits for t, _ in plan], dtype=np.int64)
    tails = (rng.random(n) * spans[which]).astype(np.int64)
    return [f"+{x}" for x in (heads[which] + tails).tolist()]
