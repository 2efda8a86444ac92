"""PII redaction of transcript segments: each kind written and spoken, what must stay, and the segment's shape."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from processors.post.redact import (
    KINDS,
    context_words,
    find_pii,
    luhn_valid,
    phone_possible,
    redact_segment,
    redact_segments,
    redact_text,
    ssn_valid,
)

WordSpec = str | tuple[str, float, float]


def _seg(text: str | list[WordSpec], *, pauses: tuple[int, ...] = (), seg_id: str = "job:0:000000001.0",
         speaker: str | None = "agent", channel: int | None = 0, step: float = 0.35,
         dur: float = 0.3) -> dict[str, Any]:
    """A Whisper-style segment: one word per space-separated token (" four", " five,"), 0.35 s apart, with an
    extra 0.6 s of silence before each word index in ``pauses``. Explicit (word, start, end) tuples are kept."""
    specs: list[WordSpec] = list(text.split(" ")) if isinstance(text, str) else list(text)
    words: list[dict[str, Any]] = []
    t = 10.0
    for i, spec in enumerate(specs):
        if isinstance(spec, tuple):
            w, a, b = spec
        else:
            if i in pauses:
                t += 0.6
            w, a, b = " " + spec, round(t, 3), round(t + dur, 3)
            t += step
        words.append({"start": a, "end": b, "word": w, "probability": round(0.95 - 0.01 * i, 4)})
    return {"id": seg_id, "start": words[0]["start"], "end": words[-1]["end"],
            "text": "".join(w["word"] for w in words).strip(), "speaker": speaker, "channel": channel,
            "confidence": 0.9, "words": words}


def _red(text: str | list[WordSpec], **kw: Any) -> tuple[str, list[str]]:
    out, findings = redact_segment(_seg(text), **kw)
    return out["text"], [f["type"] for f in findings]


# ---------------------------------------------------------------- helpers


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("378282246310005")
    assert luhn_valid("5555555555554444")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("378282246310006")


def test_ssn_rules() -> None:
    assert ssn_valid("123456789")
    assert not ssn_valid("000123456")  # area 000
    assert not ssn_valid("666123456")  # area 666
    assert not ssn_valid("912345678")  # area 9xx
    assert not ssn_valid("123006789")  # group 00
    assert not ssn_valid("123450000")  # serial 0000
    assert not ssn_valid("12345678")


def test_phone_possible_uses_phonenumbers() -> None:
    assert phone_possible("5551234567", "US")
    assert phone_possible("15551234567", "US")
    assert phone_possible("5551234", "US")  # local only
    assert not phone_possible("05551234567", "US")
    assert not phone_possible("12252024", "US")
    assert phone_possible("442079460958", None)
    assert phone_possible("02079460958", "GB")


# ---------------------------------------------------------------- cards


@pytest.mark.parametrize(("text", "expected"), [
    ("My card is 4111 1111 1111 1111, thanks.", "My card is [CARD], thanks."),
    ("card 4111-1111-1111-1111.", "card [CARD]."),
    ("the number is 4111111111111111", "the number is [CARD]"),
    ("card 5555 5555 5555 4444 expires soon", "card [CARD] expires soon"),
    ("amex 3782 822463 10005 ok", "amex [CARD] ok"),
    ("my card number is four one one one, one one one one, one one one one, one one one one.",
     "my card number is [CARD]."),
    ("my card number is four one one one one one one one one one one one one one one one",
     "my card number is [CARD]"),
    ("my card is forty one eleven eleven eleven eleven eleven eleven eleven", "my card is [CARD]"),
    ("it's five five double five, five five five five, five five five five, four four four four",
     "it's [CARD]"),
    ("card 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", "card [CARD]"),
    ("I have two cards, four one one one one one one one one one one one one one one one",
     "I have two cards, [CARD]"),
    ("the 2 4111 1111 1111 1111 please", "the 2 [CARD] please"),
])
def test_card_numbers_passing_luhn_are_redacted(text: str, expected: str) -> None:
    assert _red(text) == (expected, ["card"])


@pytest.mark.parametrize("text", [
    "My card is 4111 1111 1111 1112, thanks.",
    "the number is 4111111111111112",
    "amex 3782 822463 10006 ok",
    "my card is four one one one one one one one one one one one one one one two",
    "my card number is four one one one, one one one one, one one one one, one one one two.",
])
def test_card_numbers_failing_luhn_stay(text: str) -> None:
    assert _red(text) == (text, [])


# ---------------------------------------------------------------- phones


@pytest.mark.parametrize(("text", "expected"), [
    ("call me at 555-123-4567 tomorrow", "call me at [PHONE] tomorrow"),
    ("call me at (555) 123-4567.", "call me at [PHONE]."),
    ("Text me at 555.123.4567", "Text me at [PHONE]"),
    ("it is 5551234567 okay", "it is [PHONE] okay"),
    ("call +1 (555) 123-4567 now", "call [PHONE] now"),
    ("reach me on +44 20 7946 0958 please", "reach me on [PHONE] please"),
    ("call 00 44 20 7946 0958 now", "call [PHONE] now"),
    ("call me on 020 7946 0958", "call me on [PHONE]"),  # UK national format, said after a phone word
    ("my number is 555 1234", "my number is [PHONE]"),
    ("it's 555-1234 at home", "it's [PHONE] at home"),
    ("room 12 555-123-4567", "room 12 [PHONE]"),
    ("call me at 555 100 0000", "call me at [PHONE]"),
    ("5551234567 is my cell", "[PHONE] is my cell"),
])
def test_written_phone_numbers(text: str, expected: str) -> None:
    assert _red(text) == (expected, ["phone"])


@pytest.mark.parametrize(("text", "expected"), [
    ("my number is five five five, one two three, four five six seven.", "my number is [PHONE]."),
    ("it's five five five one two three forty five sixty seven", "it's [PHONE]"),
    ("Oh, five five five, one two three, four five six seven.", "Oh, [PHONE]."),
    ("call one eight hundred five five five one two one two", "call [PHONE]"),
    ("call me on double five five, one two three, four five six seven", "call me on [PHONE]"),
    ("my phone is five five five, one two three, four thousand", "my phone is [PHONE]"),
    ("reach me on plus four four two zero seven nine four six zero nine five eight please",
     "reach me on [PHONE] please"),
    ("call me on oh seven seven double oh nine double oh one two three", "call me on [PHONE]"),
    ("five five five, one two three four", "[PHONE]"),
    ("call 5 5 5 1 2 3 4 5 6 7", "call [PHONE]"),
    ("it's five-five-five, one-two-three, four-five-six-seven.", "it's [PHONE]."),
])
def test_spoken_phone_numbers(text: str, expected: str) -> None:
    assert _red(text) == (expected, ["phone"])


def test_two_phone_numbers_in_one_run_and_in_one_word() -> None:
    assert _red("numbers 555-123-4567, 555-987-6543 both work") == (
        "numbers [PHONE], [PHONE] both work", ["phone", "phone"])
    out, findings = redact_segment(_seg("see 555-123-4567/555-987-6543 both"))
    assert out["text"] == "see [PHONE]/[PHONE] both"
    assert [w["word"] for w in out["words"]] == [" see", " [PHONE]/[PHONE]", " both"]
    assert len(findings) == 2
    assert all(f["start"] == out["words"][1]["start"] and f["end"] == out["words"][1]["end"] for f in findings)


def test_phone_then_extension_keeps_the_extension() -> None:
    assert _red("555-123-4567 extension 12") == ("[PHONE] extension 12", ["phone"])


def test_region_setting_changes_which_national_numbers_are_phones() -> None:
    text = "it's 020 7946 0958 okay"
    assert _red(text) == (text, [])
    assert _red(text, region="GB") == ("it's [PHONE] okay", ["phone"])
    assert _red("it's 07700 900123 okay", region="GB") == ("it's [PHONE] okay", ["phone"])
    assert _red("it's 10 15 20 25 30 minutes", region="GB") == ("it's 10 15 20 25 30 minutes", [])


# ---------------------------------------------------------------- emails


@pytest.mark.parametrize(("text", "expected"), [
    ("email john.smith@example.com.", "email [EMAIL]."),
    ("my email is John.Smith@Example.COM", "my email is [EMAIL]"),
    ("write to jane_doe99@mail.co.uk today", "write to [EMAIL] today"),
    ("email me at john dot smith at example dot com please", "email me at [EMAIL] please"),
    ("it's john at gmail dot com", "it's [EMAIL]"),
    ("it's j dot smith at example dot com.", "it's [EMAIL]."),
    ("john underscore smith at example dot co dot uk", "[EMAIL]"),
    ("send it to john.smith at example.com, okay", "send it to [EMAIL], okay"),
    ("mail john5551234567@gmail.com now", "mail [EMAIL] now"),
])
def test_emails(text: str, expected: str) -> None:
    assert _red(text) == (expected, ["email"])


@pytest.mark.parametrize("text", [
    "we met at the park at five",
    "I'll be at home at nine",
    "I work at google dot com",
    "visit us at example dot com",
    "look at this dot com bubble",
    "I'm at the office, dot dot dot",
    "they arrived at noon",
])
def test_at_in_ordinary_sentences_is_no_email(text: str) -> None:
    assert _red(text) == (text, [])


# ---------------------------------------------------------------- national ids


@pytest.mark.parametrize(("text", "expected"), [
    ("SSN 123-45-6789.", "SSN [ID]."),
    ("it's 123-45-6789", "it's [ID]"),
    ("it's 123 45 6789", "it's [ID]"),
    ("one two three, four five, six seven eight nine", "[ID]"),
    ("my social security number is one two three four five six seven eight nine",
     "my social security number is [ID]"),
    ("my social security number is 123456789.", "my social security number is [ID]."),
    ("my social is 078-05-1120", "my social is [ID]"),
    ("my passport number is A12345678", "my passport number is [ID]"),
    ("my passport is 987654321", "my passport is [ID]"),
    ("my ID number is 7 3 4 9 2 8 1 5", "my ID number is [ID]"),
    ("my ID number is seven three four nine two eight one five, right", "my ID number is [ID], right"),
    ("my national insurance number is QQ 12 34 56 C", "my national insurance number is [ID]"),
    ("my national insurance number is Q Q one two three four five six C thanks",
     "my national insurance number is [ID] thanks"),
    ("NI AB123456C on file", "NI [ID] on file"),
    ("account number 12345678", "account number [ID]"),
    ("my driver's license is D1234567", "my driver's license is [ID]"),
])
def test_national_ids(text: str, expected: str) -> None:
    assert _red(text) == (expected, ["id"])


def test_ssn_grouped_by_pauses_when_spoken_without_punctuation() -> None:
    words = "it is one two three four five six seven eight nine okay"
    # "one two three | four five | six seven eight nine"
    out, findings = redact_segment(_seg(words, pauses=(5, 7)))
    assert out["text"] == "it is [ID] okay"
    assert [f["type"] for f in findings] == ["id"]
    # the same digits in one breath and without a context word are no id
    assert _red(words) == (words, [])


@pytest.mark.parametrize("text", [
    "it's 666-12-3456",
    "it's 900-12-3456",
    "it's 123-00-4567",
    "my ID is 734",  # too short for an id
])
def test_impossible_or_short_ids_stay(text: str) -> None:
    assert _red(text) == (text, [])


def test_context_from_the_previous_segment_of_the_same_speaker() -> None:
    a = _seg("my social security number is", seg_id="a")
    b = _seg("one two three four five six seven eight nine.", seg_id="b")
    out, findings = redact_segments([a, b])
    assert [s["text"] for s in out] == ["my social security number is", "[ID]."]
    assert findings == [{"type": "id", "start": b["words"][0]["start"], "end": b["words"][-1]["end"],
                         "segment_id": "b"}]
    other = _seg("one two three four five six seven eight nine.", seg_id="b", speaker="customer")
    out, findings = redact_segments([a, other])
    assert out[1]["text"] == "one two three four five six seven eight nine." and findings == []
    assert context_words(a["words"]) == ["my", "social", "security", "number", "is"]


def _whisper(tokens: list[str]) -> list[WordSpec]:
    return [(w, round(0.3 * i, 3), round(0.3 * i + 0.25, 3)) for i, w in enumerate(tokens)]


@pytest.mark.parametrize(("tokens", "expected", "kind"), [
    # word lists as faster-whisper tiny.en wrote them for synthesised speech of dictated digits
    ([" Hi,", " my", " phone", " number", " is", " 5", "-5", "-5", "-1", "-2", "-3", "-4", "-5", "-6", "-7."],
     "Hi, my phone number is [PHONE].", "phone"),
    ([" It's", " 5", "-5", "-5", "-1", "-2", "-3", "-4", "-5", "-6", "-7", " okay"], "It's [PHONE] okay", "phone"),
    ([" Please", " call", " 1", "-800", "-555", "-1212"], "Please call [PHONE]", "phone"),
    ([" My", " social", " security", " number", " is", " 1", "-2", "-3", "-4", "-5", "-6", "-7", "-8", "-9."],
     "My social security number is [ID].", "id"),
    ([" The", " card", " is", " 5", "-5", "-5", "-5", "-5", "-5", "-5", "-5", "-5", "-5", "-5", "-5", "-4", "-4",
      "-4", "-4."], "The card is [CARD].", "card"),
    ([" My", " passport", " number", " is", " at", " 1", " 2", " 3", " 4", " 5", " 6", " 7", " 8."],
     "My passport number is at [ID].", "id"),
])
def test_recogniser_style_word_lists(tokens: list[str], expected: str, kind: str) -> None:
    out, findings = redact_segment(_seg(_whisper(tokens)))
    assert out["text"] == expected
    assert [f["type"] for f in findings] == [kind]


@pytest.mark.parametrize("tokens", [
    [" The", " meeting", " is", " at", " 10", ".30", " on", " March", " 12,", " 2024."],
    [" In", " 1990,", " I", " bought", " three", " books", " for", " $14."],
    [" My", " credit", " card", " number", " is", " for", " 1", "-1", "-1", "-1"],  # cut short: not a card
    [" The", " card", " is", " 5", "-5", "-5", "-5", "-5", "-5", "-5", "-5", "-5", "-5", "-5", "-5", "-5", "-4",
     "-4", "-4", "-4."],  # a digit too many: fails Luhn
])
def test_recogniser_style_non_pii(tokens: list[str]) -> None:
    seg = _seg(_whisper(tokens))
    assert redact_segment(seg) == (seg, [])


def test_number_cut_between_two_segments_of_one_speaker() -> None:
    a = _seg("my card number is four one one one, one one one one,", seg_id="a")
    b = _seg("one one one one, one one one one. Thanks.", seg_id="b")
    for k, w in enumerate(b["words"]):  # b starts 0.4 s after a ends
        w["start"], w["end"] = round(a["end"] + 0.4 + 0.35 * k, 3), round(a["end"] + 0.7 + 0.35 * k, 3)
    b["start"], b["end"] = b["words"][0]["start"], b["words"][-1]["end"]
    out, findings = redact_segments([a, b])
    assert [s["text"] for s in out] == ["my card number is [CARD]", "[CARD]. Thanks."]
    assert [w["word"] for w in out[1]["words"]] == [" [CARD].", " Thanks."]
    assert findings == [
        {"type": "card", "start": a["words"][4]["start"], "end": a["words"][-1]["end"], "segment_id": "a"},
        {"type": "card", "start": b["words"][0]["start"], "end": b["words"][7]["end"], "segment_id": "b"}]
    assert redact_segments(out) == (out, [])
    # each half alone is no card; nor are halves said by two people or far apart in time
    assert redact_segment(a)[1] == [] and redact_segment(b)[1] == []
    assert redact_segments([a, {**b, "speaker": "customer"}])[1] == []
    late = copy.deepcopy(b)
    for w in late["words"]:
        w["start"] += 5.0
        w["end"] += 5.0
    late["start"] += 5.0
    late["end"] += 5.0
    assert redact_segments([a, late])[1] == []


# ---------------------------------------------------------------- what is not personal data


@pytest.mark.parametrize("text", [
    "In 1999 I bought three books for forty dollars.",
    "in twenty twenty four we sold one million two hundred thousand units",
    "She was born nineteen eighty five, in May.",
    "twenty twenty, twenty twenty one, twenty twenty two",
    "it was 1,234,567 dollars",
    "I paid $5,551,234,567 for that",
    "revenue was 2500000000 last year",
    "growth was 12.5% in 2023",
    "pi is 3.14159265358",
    "pi is three point one four one five nine two six five",
    "pi is three point one four one five nine two six five three five",
    "we raised 5551234567 dollars",
    "that is five five five one two three four five six seven percent",
    "it went twenty thirty forty fifty sixty",
    "Oh oh oh oh oh oh oh oh oh oh!",
    "one two three four five six seven eight nine ten",
    "the meeting is at ten thirty on the twelfth",
    "the meeting is at 10:30 to 11:45 on 12/25/2024",
    "it was on 2024-12-25 at 9",
    "we were 10, 20, 30, 40, 50 people",
    "it's 10 15 20 25 30 minutes",
    "The year 2024 and 2025",
    "we have 3 kids, 2 dogs and 1 cat",
    "it costs nine ninety nine",
    "my zip code is 90210",
    "order number one two three four five six seven eight nine zero",
    "my order number is 5551234567",
    "it costs five hundred fifty five thousand five hundred fifty five dollars",
    "Oh, I see. Oh well.",
    "double check the forty two items",
    "it's 1234567 of them",
])
def test_ordinary_numbers_stay(text: str) -> None:
    assert _red(text) == (text, [])


# ---------------------------------------------------------------- segment shape, words, timings


def test_placeholder_word_spans_the_redacted_words() -> None:
    seg = _seg("my number is five five five, one two three, four five six seven. Thanks")
    before = copy.deepcopy(seg)
    out, findings = redact_segment(seg)
    assert seg == before  # input untouched
    words = out["words"]
    assert [w["word"] for w in words] == [" my", " number", " is", " [PHONE].", " Thanks"]
    ph = words[3]
    assert ph["start"] == seg["words"][3]["start"] and ph["end"] == seg["words"][12]["end"]
    assert ph["probability"] == min(w["probability"] for w in seg["words"][3:13])
    assert words[4] == seg["words"][13]  # later words keep their timings
    assert out["text"] == "my number is [PHONE]. Thanks"
    for key in ("id", "start", "end", "speaker", "channel", "confidence"):
        assert out[key] == seg[key]
    assert findings == [{"type": "phone", "start": ph["start"], "end": ph["end"], "segment_id": seg["id"]}]


def test_punctuation_of_neighbouring_words_is_kept() -> None:
    out, _ = redact_segment(_seg("Sure, it's (555) 123-4567; call me.", ))
    assert out["text"] == "Sure, it's [PHONE]; call me."
    assert [w["word"] for w in out["words"]] == [" Sure,", " it's", " [PHONE];", " call", " me."]
    out, _ = redact_segment(_seg("Card: 4111-1111-1111-1111! Done."))
    assert out["text"] == "Card: [CARD]! Done."


def test_digit_runs_split_across_tokens_and_punctuation() -> None:
    words: list[WordSpec] = [(" My", 0.0, 0.2), (" card", 0.2, 0.4), (" is", 0.4, 0.5), (" 41", 0.5, 0.7),
                             ("11", 0.7, 0.8), ("-1111", 0.8, 1.0), (" 11", 1.0, 1.1), ("11,", 1.1, 1.2),
                             (" 1111.", 1.3, 1.6), (" Bye", 2.0, 2.2)]
    out, findings = redact_segment(_seg(words))
    assert [w["word"] for w in out["words"]] == [" My", " card", " is", " [CARD].", " Bye"]
    assert out["words"][3]["start"] == 0.5 and out["words"][3]["end"] == 1.6
    assert findings == [{"type": "card", "start": 0.5, "end": 1.6, "segment_id": "job:0:000000001.0"}]


def test_pii_inside_a_word_keeps_the_rest_of_the_word() -> None:
    out, _ = redact_segment(_seg([(" number:5551234567,", 0.0, 1.0), (" ok", 1.0, 1.2)]))
    assert [w["word"] for w in out["words"]] == [" number:[PHONE],", " ok"]


def test_findings_hold_no_values_and_are_in_order() -> None:
    seg = _seg("mail john@example.com or call 555-123-4567 with card 4111 1111 1111 1111 and SSN 123-45-6789")
    out, findings = redact_segment(seg)
    assert out["text"] == "mail [EMAIL] or call [PHONE] with card [CARD] and SSN [ID]"
    assert [f["type"] for f in findings] == ["email", "phone", "card", "id"]
    assert all(set(f) == {"type", "start", "end", "segment_id"} for f in findings)
    assert [f["start"] for f in findings] == sorted(f["start"] for f in findings)
    flat = repr(findings)
    for secret in ("john", "example", "555", "4567", "4111", "6789"):
        assert secret not in flat


def test_kinds_selects_detectors() -> None:
    text = "mail john@example.com or call 555-123-4567 with card 4111 1111 1111 1111 and SSN 123-45-6789"
    assert _red(text, kinds={"phone"}) == (
        "mail john@example.com or call [PHONE] with card 4111 1111 1111 1111 and SSN 123-45-6789", ["phone"])
    assert _red(text, kinds=["email", "id"]) == (
        "mail [EMAIL] or call 555-123-4567 with card 4111 1111 1111 1111 and SSN [ID]", ["email", "id"])
    assert _red(text, kinds="card") == (
        "mail john@example.com or call 555-123-4567 with card [CARD] and SSN 123-45-6789", ["card"])
    assert _red(text, kinds=set()) == (text, [])
    assert set(KINDS) == {"email", "phone", "card", "id"}
    with pytest.raises(ValueError, match="unknown PII kinds"):
        redact_segment(_seg(text), kinds={"phone", "name"})


def test_a_card_is_not_redacted_as_a_phone_when_cards_are_off() -> None:
    text = "my card number is four one one one one one one one one one one one one one one one"
    assert _red(text, kinds={"phone", "id"}) == (text, [])


def test_segment_without_words_is_redacted_on_its_text() -> None:
    seg = {"id": "s:0", "start": 1.0, "end": 4.5, "text": " Call 555-123-4567 or mail a.b@example.org. ",
           "speaker": None, "channel": None, "confidence": None, "words": []}
    out, findings = redact_segment(seg)
    assert out["text"] == "Call [PHONE] or mail [EMAIL]."
    assert out["words"] == []
    assert findings == [{"type": "phone", "start": 1.0, "end": 4.5, "segment_id": "s:0"},
                        {"type": "email", "start": 1.0, "end": 4.5, "segment_id": "s:0"}]
    assert redact_segment(out) == (out, [])
    plain = {**seg, "text": "Nothing to see in 1999."}
    assert redact_segment(plain) == (plain, [])


def test_segment_without_pii_is_an_equal_copy() -> None:
    seg = _seg("Hello there, it was forty two dollars.")
    out, findings = redact_segment(seg)
    assert out == seg and out is not seg and out["words"] is not seg["words"] and findings == []


def test_text_helpers() -> None:
    assert redact_text("my card: 4111111111111111; phone (555) 123-4567") == "my card: [CARD]; phone [PHONE]"
    text = "write to a@b.io"
    ((a, b, kind),) = find_pii(text)
    assert (text[a:b], kind) == ("a@b.io", "email")
    assert find_pii(text, kinds={"phone"}) == []


def test_redact_segments_collects_findings_of_all_segments() -> None:
    segs = [_seg("call 555-123-4567", seg_id="x"), _seg("nothing here", seg_id="y"),
            _seg("mail a@b.io", seg_id="z")]
    out, findings = redact_segments(segs)
    assert [s["text"] for s in out] == ["call [PHONE]", "nothing here", "mail [EMAIL]"]
    assert [(f["segment_id"], f["type"]) for f in findings] == [("x", "phone"), ("z", "email")]
    assert redact_segments([]) == ([], [])


# ---------------------------------------------------------------- idempotence

IDEMPOTENCE = [
    "My card is 4111 1111 1111 1111, thanks.",
    "my card number is four one one one, one one one one, one one one one, one one one one.",
    "I have two cards, four one one one one one one one one one one one one one one one",
    "Oh, five five five, one two three, four five six seven.",
    "call +1 (555) 123-4567 now",
    "reach me on plus four four two zero seven nine four six zero nine five eight please",
    "numbers 555-123-4567, 555-987-6543 both work",
    "email me at john dot smith at example dot com please",
    "my national insurance number is Q Q one two three four five six C thanks",
    "my passport number is A12345678",
    "the code is 4111 1111 1111 1111 1111 9999",
    "mail john@example.com or call 555-123-4567 with card 4111 1111 1111 1111 and SSN 123-45-6789",
    "the 2 4111 1111 1111 1111 please and 555-123-4567 or 1999",
]


@pytest.mark.parametrize("text", IDEMPOTENCE)
@pytest.mark.parametrize("kinds", [None, {"phone"}, {"card", "email"}])
def test_redacting_twice_changes_nothing(text: str, kinds: set[str] | None) -> None:
    once, _ = redact_segment(_seg(text), kinds)
    twice, findings = redact_segment(once, kinds)
    assert twice == once
    assert findings == []


def test_idempotent_across_segments() -> None:
    segs = [_seg("my social security number is", seg_id="a"),
            _seg("one two three four five six seven eight nine, and call 555-123-4567", seg_id="b")]
    once, found = redact_segments(segs)
    assert once[1]["text"] == "[ID], and call [PHONE]" and len(found) == 2
    assert redact_segments(once) == (once, [])


@pytest.mark.timeout(120)  # bounds a hang only: catastrophic backtracking never ends; no time is asserted
def test_long_and_adversarial_input_is_redacted_without_backtracking_forever() -> None:
    # a recogniser stuck on a digit ("1-1-1-1-..."), long dotted and hyphenated tokens, many spoken numbers
    text = " ".join(["-".join(["1"] * 40), ".".join(["a"] * 40) + "@", " dot ".join(["x"] * 40) + " at",
                     "five five five, one two three, four five six seven"] * 5)
    seg = _seg(text)
    out, findings = redact_segment(seg)
    assert [f["type"] for f in findings] == ["phone"] * 5
    assert out["text"].count("[PHONE]") == 5 and "[EMAIL]" not in out["text"]
