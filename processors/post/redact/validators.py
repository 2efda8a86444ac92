"""Checks of a candidate's digits and of how they are grouped: Luhn, US SSN rules, ``phonenumbers``' length and
validity checks, and the digit groupings of cards and phone numbers."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

Shape = tuple[int, ...]  # digits per group, e.g. (3, 3, 4)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def ssn_valid(digits: str) -> bool:
    """Nine digits that the US Social Security Administration could have issued (area, group and serial)."""
    return (len(digits) == 9 and digits.isdigit() and digits[:3] not in ("000", "666") and digits[0] != "9"
            and digits[3:5] != "00" and digits[5:] != "0000")


@lru_cache(maxsize=8192)
def phone_possible(digits: str, region: str | None) -> bool:
    """``phonenumbers``' length check for ``digits`` dialled in ``region`` (None: international, no ``+``)."""
    try:
        num = phonenumbers.parse(digits if region else "+" + digits, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_possible_number(num))


@lru_cache(maxsize=8192)
def intl_valid(digits: str) -> bool:
    """Are ``digits`` a valid number with its country code in front (``+`` not said)?"""
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse("+" + digits, None)))
    except phonenumbers.NumberParseException:
        return False


def nanp_region(region: str) -> bool:
    """Does ``region`` dial with the North American Numbering Plan (country code 1)?"""
    return bool(phonenumbers.country_code_for_region(region) == 1)


def card_shape(groups: Shape) -> bool:
    """Digit groups as card numbers are written: one group, fours (the last may be shorter), 4-6-5 or 4-6-4."""
    if len(groups) == 1 or groups in ((4, 6, 5), (4, 6, 4)):
        return True
    return all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4


def phone_shape(groups: Shape, nanp: bool) -> bool:
    """Digit groups as phone numbers are written or said: North American 3-3-4 (after an optional 1) and 3-4;
    elsewhere two to four groups of at least three digits ("020 7946 0958", "07700 900123")."""
    if len(groups) == 1:
        return True
    if not nanp and 2 <= len(groups) <= 4 and min(groups) >= 3:
        return True
    if groups[0] == 1:
        groups = groups[1:]
    return groups in ((3, 3, 4), (3, 7), (3, 4), (10,))
