"""The words redaction knows: the kinds it finds and their placeholders, number words, words that say what a
nearby number is, and words that make a number an amount or an "at" part of a sentence."""

from __future__ import annotations

KINDS: tuple[str, ...] = ("email", "phone", "card", "id")
PLACEHOLDERS: dict[str, str] = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "id": "[ID]"}

ONES = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
ZEROS = frozenset({"zero", "oh", "o", "nought", "naught"})
TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
         "seventeen": 17, "eighteen": 18, "nineteen": 19}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
        "eighty": 80, "ninety": 90}
REPEAT = {"double": 2, "triple": 3}
NUMBER_VOCAB = frozenset({*ONES, *ZEROS, *TEENS, *TENS, *REPEAT, "hundred", "thousand", "and", "plus"})

# Context categories: "ssn", "id", "card", "phone"; "weak" ("number") only hints; near an "other" word a run is
# a phone or an id only by its own shape.
CTX_UNIGRAMS: dict[str, str] = {
    "ssn": "ssn",
    **dict.fromkeys(("passport", "id", "identification", "identity", "license", "licence", "nhs", "medicare",
                     "medicaid", "nino", "tin", "itin", "ein", "iban", "account", "routing", "aadhaar"), "id"),
    **dict.fromkeys(("card", "credit", "debit", "visa", "mastercard", "amex", "cvv", "cvc"), "card"),
    **dict.fromkeys(("phone", "telephone", "cell", "cellphone", "mobile", "call", "calling", "reach", "dial",
                     "fax", "text", "landline", "whatsapp", "extension", "contact", "ring"), "phone"),
    **dict.fromkeys(("number", "numbers", "digits"), "weak"),
    # numbers that are no one's personal data: near these a run is a phone or an id only by its own shape
    **dict.fromkeys(("order", "reference", "confirmation", "tracking", "invoice", "ticket", "booking", "flight",
                     "case", "serial", "model", "part", "zip", "postcode", "room", "page", "item", "version"),
                    "other"),
}
CTX_BIGRAMS: dict[tuple[str, str], str] = {
    ("social", "security"): "ssn",
    ("social", "insurance"): "id", ("national", "insurance"): "id", ("insurance", "number"): "id",
    ("id", "card"): "id", ("identity", "card"): "id", ("insurance", "card"): "id", ("health", "card"): "id",
    ("medicare", "card"): "id",
}
# Words after a run that make it an amount, not an identifier.
QUANTITY_AFTER = frozenset({
    "dollar", "dollars", "bucks", "cent", "cents", "euro", "euros", "pound", "pounds", "pence", "yen", "rupees",
    "percent", "per", "million", "millions", "billion", "billions", "trillion", "point",
})
QUANTITY_BEFORE = frozenset({"point", "$", "€", "£", "¥", "#"})
# A spoken "X at Y dot com" whose X is one of these is a sentence ("I work at example dot com"), not an email.
EMAIL_STOP = frozenset({
    "i", "me", "you", "he", "him", "she", "her", "it", "we", "us", "they", "them", "this", "that", "there", "here",
    "is", "are", "was", "were", "be", "been", "am", "work", "works", "worked", "working", "live", "lives", "lived",
    "look", "looking", "see", "visit", "stay", "staying", "meet", "available", "online", "find", "found", "shop",
    "buy", "bought", "sign", "signed", "log", "logged", "posted", "check", "read", "go", "went", "get", "got",
    "up", "out", "in", "on", "only", "just", "also", "still", "now", "then", "both", "all", "jobs", "job",
})
