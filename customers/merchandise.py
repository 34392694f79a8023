"""Which catalogue lines are goods a customer chooses, and which are not.

Order files carry lines that are not products at all: postage and carriage,
packing and bank charges, marketplace fees, manual adjustments, discounts,
bad-debt write-offs, samples, gift vouchers. Left in, they top every
"favourite products" list (everyone pays postage) and distort demand. This
module recognises them from the sku, the name and the category; it is plain
Python (no ORM) so it can be tested on real stock codes alone.

Detection only proposes: an owner's explicit `merchandise` value (file, API or
product page) wins and is never overwritten by detection later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Stock codes of non-merchandise lines in the UCI Online Retail data set (and the
# shops exporting from the same kind of till), matched whole and case-blind. They
# are distinctive enough to decide on their own.
NON_MERCHANDISE_SKUS = {
    "POST": "postage",
    "DOT": "postage (dotcom)",
    "C2": "carriage",
    "C3": "carriage",
    "BANK CHARGES": "bank charges",
    "AMAZONFEE": "marketplace fee",
    "CRUK": "charity commission",
    "PADS": "a zero-price filler line",
    "ADJUST": "manual adjustment",
    "ADJUST2": "manual adjustment",
}
# One-letter codes (D Discount, M Manual, S SAMPLES, B Adjust bad debt) could be a
# real shop's size or variant code: they decide only when the name is blank; a
# name such as "Discount" or "Manual" is recognised by the name rules below.
SHORT_SKUS = {"D": "discount", "M": "manual adjustment", "S": "samples", "B": "bad-debt adjustment"}
# Online Retail's gift vouchers: gift_0001_10, gift_0001_20, ...
_GIFT_SKU = re.compile(r"^gift_\d", re.IGNORECASE)

# A name made only of these words describes a charge, not a product
# ("POSTAGE", "Next Day Carriage", "PACKING CHARGE", "Shipping & handling").
_CHARGE_WORDS = {
    "postage",
    "carriage",
    "shipping",
    "delivery",
    "freight",
    "courier",
    "handling",
    "packing",
    "packaging",
    "p&p",
    "charge",
    "charges",
    "surcharge",
    "fee",
    "fees",
    "cost",
    "costs",
}
# ...possibly qualified by these ("next day", "UK", "dotcom", "express"...).
_QUALIFIERS = {
    "next",
    "same",
    "day",
    "express",
    "standard",
    "free",
    "priority",
    "overnight",
    "international",
    "national",
    "uk",
    "eu",
    "us",
    "local",
    "first",
    "second",
    "1st",
    "2nd",
    "class",
    "dotcom",
    "online",
    "order",
    "and",
    "&",
    "+",
    "-",
    "/",
}
# Whole words (or phrases) that mark a line as not merchandise wherever they
# appear in the name: a fee or an adjustment is never something a customer picks.
_NAME_PHRASES = [
    (re.compile(r"\bbank charges?\b"), "bank charges"),
    (re.compile(r"\b(?:fee|fees|surcharge)\b"), "a fee"),
    (re.compile(r"\b(?:adjust|adjustment|adjustments)\b"), "a manual adjustment"),
    (re.compile(r"\bbad debt\b"), "a bad-debt adjustment"),
    (re.compile(r"\bdiscounts?\b"), "a discount"),
    (re.compile(r"\b(?:gift ?cards?|gift ?vouchers?|gift certificates?|e-?gift)\b"), "a gift card"),
    (re.compile(r"\bvouchers?\b"), "a voucher"),
    (re.compile(r"\b(?:delivery|shipping|postage|packing|handling) charges?\b"), "a charge"),
    (re.compile(r"\bdotcom postage\b"), "postage"),
    (re.compile(r"\bcommission\b"), "a commission"),
]
# Names that are only one of these words: "Manual", "SAMPLES", "Discount".
_WHOLE_NAMES = {
    "manual": "a manual adjustment",
    "manual adjustment": "a manual adjustment",
    "sample": "samples",
    "samples": "samples",
    "discount": "a discount",
    "refund": "a refund",
    "tip": "a tip",
    "tips": "a tip",
    "deposit": "a deposit",
}
# Categories that hold no merchandise.
# ("Gift" alone is a category of gifts, merchandise; "Gift cards" is not.)
_CATEGORY_WORDS = _CHARGE_WORDS | {
    "adjustment",
    "adjustments",
    "discount",
    "discounts",
    "voucher",
    "vouchers",
    "non-merchandise",
    "nonmerchandise",
}
_GIFT_CARDS = re.compile(r"\b(?:gift ?cards?|gift ?vouchers?|gift certificates?|e-?gift)\b")

_SPLIT = re.compile(r"[^\w&+/-]+")


@dataclass(frozen=True)
class Detection:
    merchandise: bool
    reason: str  # why it is not merchandise; "" when it is


def _normal(text: str | None) -> str:
    return " ".join(str(text or "").lower().replace("_", " ").split())


def _words(text: str) -> list[str]:
    return [w for w in _SPLIT.split(text) if w]


def _only_charge_words(words: list[str], vocabulary: set[str]) -> bool:
    core = [w for w in words if w not in _QUALIFIERS]
    return bool(core) and all(w in vocabulary for w in core)


def detect_merchandise(*, sku: str, name: str = "", category: str = "") -> Detection:
    """Whether a product is merchandise, with the reason when it is not."""
    code = " ".join(str(sku or "").upper().split())
    text, cat = _normal(name), _normal(category)
    if code in NON_MERCHANDISE_SKUS:
        return Detection(False, f"its code {code} is {NON_MERCHANDISE_SKUS[code]}")
    if code in SHORT_SKUS and not text:
        return Detection(False, f"its code {code} is {SHORT_SKUS[code]}")
    if _GIFT_SKU.match(code):
        return Detection(False, "its code is a gift voucher")
    if text:
        if text in _WHOLE_NAMES:
            return Detection(False, f"its name says it is {_WHOLE_NAMES[text]}")
        if _only_charge_words(_words(text), _CHARGE_WORDS):
            return Detection(False, "its name says it is a delivery or handling charge")
        for pattern, what in _NAME_PHRASES:
            if pattern.search(text):
                return Detection(False, f"its name says it is {what}")
    if cat and (_only_charge_words(_words(cat), _CATEGORY_WORDS) or _GIFT_CARDS.search(cat)):
        return Detection(False, f"its category ({category.strip()}) holds no merchandise")
    return Detection(True, "")


def is_merchandise(*, sku: str, name: str = "", category: str = "") -> bool:
    return detect_merchandise(sku=sku, name=name, category=category).merchandise
