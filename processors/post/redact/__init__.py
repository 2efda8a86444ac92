"""Redact personal data (emails, phone numbers, payment cards, national ids) from transcript segments.

Speech recognisers write numbers in many ways: ``" 4111-1111-1111-1111"``, ``" 555,"`` ``" 123,"`` ``" 4567."``,
or word by word (``" four" " one" " one" " one" ...``, ``" double" " four"``, ``" oh"``, ``" forty" " two"``,
``" eight" " hundred"``), and emails as ``" john" " dot" " smith" " at" " example" " dot" " com"``. This package is
a deterministic, framework-free step (regular expressions, a small number-word parser and ``phonenumbers`` for
the plausibility of phone numbers) that finds such spans and replaces them with one placeholder word each.

The way through it, one module per step:

- ``tokens``: the segment's words joined into one text and cut into tokens; written emails, UK national
  insurance numbers and amounts become opaque tokens, as do placeholders of an earlier pass (so redaction is
  idempotent);
- ``numbers``: digit tokens and number words joined only by spaces and ``- . , ( )`` form a *run*; the run says
  *units* (``"4111"``, ``"42"`` from "forty two", ``"800"`` from "eight hundred", ``"44"`` from "double four");
- ``breaks``: what separates two units (punctuation, a comma or sentence end, a pause in the word timings) and
  the digit groupings a candidate has under each choice of breaks;
- ``context``: the words around a run ("social security", "passport", "call", "order"), amounts ("$",
  "... dollars", "... million"), a "+" or "plus" in front;
- ``classify``: whether a candidate is a card, an id or a phone (checks in ``validators``, words in
  ``vocabulary``);
- ``detector``: the search over a run's candidates, longest first, then the rest of the run;
- ``apply``: the segment's words with each span replaced; ``segments``: the public functions, and the context
  and numbers carried from one segment to the next of the same speaker.

Amounts, decimals, dates and times, and short numbers stay untouched. Known limits: names and postal addresses
are out of scope; number words and context words are English only.
"""

from processors.post.redact.context import context_words
from processors.post.redact.segments import find_pii, redact_segment, redact_segments, redact_text
from processors.post.redact.validators import luhn_valid, phone_possible, ssn_valid
from processors.post.redact.vocabulary import KINDS

__all__ = [
    "KINDS",
    "context_words",
    "find_pii",
    "luhn_valid",
    "phone_possible",
    "redact_segment",
    "redact_segments",
    "redact_text",
    "ssn_valid",
]
