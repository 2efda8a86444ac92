"""Which kind of personal data a candidate (units ``i..j`` of a run) is, if any: card, id or phone.

- card: 13-19 digits passing the Luhn check, grouped like a card (one group, fours, 4-6-5 or 4-6-4);
- id: a valid US SSN grouped 3-2-4, or 9 digits after "social security"/"SSN", or 6+ digits after an id word
  ("passport", "ID", "national insurance", "licence", "account", ...), its ends at commas or pauses;
- phone: 7-15 digits that ``phonenumbers`` considers a possible number, international with ``+``/"plus"/``00``,
  else in the default region grouped like a phone (one group, 3-3-4, 1-3-3-4, 3-4; outside North America two
  to four groups of 3+ digits), or any grouping after a phone word ("call", "phone", "number", ...), then also
  national numbers of a few common regions. Number words said digit by digit must dominate a spoken candidate
  unless a phone word is near, so "twenty twenty four" or counting aloud is never a phone; after "order",
  "reference", "room", ... only a number formatted like a phone is one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from processors.post.redact.breaks import Window
from processors.post.redact.numbers import Unit
from processors.post.redact.validators import (
    Shape,
    card_shape,
    intl_valid,
    luhn_valid,
    nanp_region,
    phone_possible,
    phone_shape,
    ssn_valid,
)

# Regions tried for a number without a country code when a phone word is near ("call me on 020 7946 0958").
CONTEXT_REGIONS: tuple[str, ...] = ("US", "GB", "IE", "CA", "AU", "NZ", "IN", "DE", "FR", "ES", "IT", "NL")


@dataclass(frozen=True, slots=True)
class Clues:
    """What the words around a run say (``context.run_category``) and the default phone region."""

    category: str | None  # "ssn", "id", "card", "phone", "other" or None
    weak: bool  # a "number"/"digits" word is near
    region: str

    @property
    def id_context(self) -> bool:
        return self.category in ("id", "ssn")


def classify(window: Window, i: int, j: int, clues: Clues, intl_at: int | None) -> str | None:
    """"card", "id", "phone" or None for units i..j; ``intl_at`` is set when a "+"/"plus" dials them."""
    digits = window.digits(i, j)
    n = len(digits)
    shapes, soft_aligned = window.shapes(i, j)
    card = 13 <= n <= 19 and luhn_valid(digits) and any(card_shape(s) for s in shapes)
    if card and not clues.id_context:
        return "card"
    if n == 9 and ssn_valid(digits) and ((3, 2, 4) in shapes or (clues.category == "ssn" and soft_aligned)):
        return "id"
    if clues.id_context and soft_aligned:
        return "id"
    if card:
        return "card"
    if clues.category == "other":  # "order number 1234567890": only a number formatted as a phone is one
        shapes = {s for s in shapes if len(s) > 1}
    phone_ctx = clues.category == "phone" or (clues.weak and clues.category is None)
    if is_phone(window.units[i:j + 1], digits, shapes, soft_aligned, phone_ctx, intl_at, clues.region):
        return "phone"
    return None


def is_phone(cand: Sequence[Unit], digits: str, shapes: set[Shape], soft_aligned: bool, phone_ctx: bool,
             intl_at: int | None, region: str) -> bool:
    if intl_at is not None or (digits.startswith("00") and len(digits) > 9):
        national = digits[2:] if intl_at is None else digits
        return 7 <= len(national) <= 15 and phone_possible(national, None)
    if not 7 <= len(digits) <= 15:
        return False
    if phone_ctx:
        return soft_aligned and (phone_possible(digits, region) or intl_valid(digits)
                                 or any(phone_possible(digits, r) for r in CONTEXT_REGIONS))
    return _said_like_a_phone(cand, digits) and _grouped_like_a_phone(digits, shapes, soft_aligned, region)


def _said_like_a_phone(cand: Sequence[Unit], digits: str) -> bool:
    """Written digits; or spoken mostly one word per digit, and not counting aloud."""
    if not any(u.spoken for u in cand):
        return True
    said_singly = sum(u.single if u.spoken else len(u.digits) for u in cand)
    if said_singly < 0.6 * len(digits):
        return False
    values = [u.value for u in cand]
    counting = len(values) >= 5 and all(u.spoken for u in cand) and (
        all(b - a == 1 for a, b in pairwise(values)) or all(a - b == 1 for a, b in pairwise(values)))
    return not counting


def _grouped_like_a_phone(digits: str, shapes: set[Shape], soft_aligned: bool, region: str) -> bool:
    if len(digits) == 7 and (3, 4) not in shapes:
        return False
    if len(digits) < 10 and not soft_aligned:  # "555 1234" out of "020 7946 0958" would leave a part
        return False
    if digits.endswith("000000") and not any(len(s) > 1 for s in shapes):  # 2500000000 is an amount
        return False
    nanp = nanp_region(region)
    return any(phone_shape(s, nanp) for s in shapes) and phone_possible(digits, region)
