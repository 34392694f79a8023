"""Starter words for a persona: a draft subject and body written from the persona's
fields by templates in the product (no network, no language model).

The angle follows the persona: win-back for customers at high risk, thanks and
early access for valuable loyal ones, a welcome for newcomers, good value for
deal seekers, news otherwise; the favourite categories, motivations, preferred
time shape the words; the campaign's goal is named in the draft note, for the
owner (it is not written to customers). The body starts with a template
comment saying it is a draft (it renders as nothing); the caller stores the
variant with `is_draft=True` until the owner edits it.
"""

from __future__ import annotations

import re

__all__ = ["draft_for_persona"]


def _plain(value) -> str:
    """Persona text goes into a template: no template syntax, no markup, one line."""
    text = re.sub(r"[{}%#<>]", "", str(value or ""))
    return " ".join(text.split())


def _list(values, limit: int) -> list[str]:
    return [v for v in (_plain(x) for x in (values or [])) if v][:limit]


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# A persona's motivation reads "Price: small baskets suggest they look for deals" —
# written about the group, for the owner. The draft speaks to the customer, so it
# keeps only the label and says it in the customer's terms.
_MOTIVE_WORDS = (
    (("price", "deal", "value", "discount"), "good value"),
    (("habit", "convenience", "reorder"), "getting your favourites again without fuss"),
    (("range", "quality"), "a good range and quality"),
    (("discover", "new", "novel"), "finding something new"),
    (("gift", "occasion", "season"), "the right gift at the right time"),
    (("reason to come back", "offer"), "a good reason to visit again"),
)


def _motive(text: str) -> str:
    label = text.split(":", 1)[0].strip().lower()
    for words, phrase in _MOTIVE_WORDS:
        if any(w in label for w in words):
            return phrase
    return label


def _angle(persona) -> str:
    risk = (getattr(persona, "risk_level", "") or "").lower()
    value = (getattr(persona, "value_level", "") or "").lower()
    motives = " ".join(getattr(persona, "motivations", None) or []).lower()
    if risk == "high":
        return "winback"
    if value == "high" and risk in ("low", ""):
        return "vip"
    if "discovery" in motives or "new" in (getattr(persona, "name", "") or "").lower():
        return "welcome"
    if "price" in motives or "deal" in motives:
        return "value"
    return "news"


_SUBJECTS = {
    "winback": "{first}, we have missed you{cat_for}",
    "vip": "Early access for you, {first}{cat_for}",
    "welcome": "{first}, there is more to discover{cat_at}",
    "value": "Good value picked for you, {first}{cat_in}",
    "news": "New{cat_in_news} for you, {first}",
}
_OPENINGS = {
    "winback": "It has been a while since your last visit, and a lot has changed{cat_in_sentence}.",
    "vip": "You are one of our most loyal customers, so you get to see what is new before anyone else.",
    "welcome": "Thanks for shopping with us. Here are a few things we think you will like next.",
    "value": "We have picked a few things that give you more for your money{cat_in_sentence}.",
    "news": "Here is what is new at {{ shop_name }} this week{cat_in_sentence}.",
}
_CLOSINGS = {
    "winback": "Come back and have a look - we kept something for you.",
    "vip": "Thank you for being with us.",
    "welcome": "Any questions? Just reply to this email.",
    "value": "Happy shopping.",
    "news": "See you soon.",
}
_SMS = {
    "winback": "{first}, we miss you at {shop}! {offer_line}",
    "vip": "{first}, early access for you at {shop}{cat_colon}",
    "welcome": "{first}, thanks for shopping at {shop}. More to discover{cat_colon}",
    "value": "{first}, good value at {shop} this week{cat_colon}",
    "news": "{first}, new at {shop}{cat_colon}",
}


def draft_for_persona(persona, *, channel: str, goal: str = "") -> tuple[str, str]:
    """(subject, body) templates for `persona` on `channel` ("email" or "sms");
    the subject is empty for SMS."""
    angle = _angle(persona)
    name = _plain(getattr(persona, "name", "")) or "this group"
    categories = _list(getattr(persona, "favourite_categories", None), 2)
    motivations = _list(getattr(persona, "motivations", None), 2)
    when = _plain(getattr(persona, "preferred_time", ""))
    goal = _plain(goal)
    cats = _join([c.lower() for c in categories])
    first = "{{ first_name or 'there' }}"
    fill = {
        "first": first,
        "shop": "{{ shop_name }}",
        "cat_for": f" - new {cats}" if cats else "",
        "cat_at": f" in {cats}" if cats else "",
        "cat_in": f" in {cats}" if cats else "",
        "cat_in_news": f" in {cats}" if cats else "",
        "cat_in_sentence": f", especially in {cats}" if cats else "",
        "cat_colon": f": {cats}" if cats else "",
        "offer_line": "{% offer %}" if angle == "winback" else "",
    }
    draft_note = (
        f'{{# Draft written by Segmenta for the persona "{name}"'
        + (f" (goal: {goal})" if goal else "")
        + (f"; they read messages best {when}" if when else "")
        + ". Edit it before sending. #}"
    )
    if channel == "sms":
        text = _SMS[angle].format(**fill).strip()
        if angle != "winback":
            text += " {% recommendations 1 %}"
        return "", f"{draft_note}\n{text}"
    if channel != "email":
        raise ValueError("channel must be email or sms")

    subject = _SUBJECTS[angle].format(**fill)
    lines = [
        f"Hi {first},",
        "",
        _OPENINGS[angle].replace("{cat_in_sentence}", fill["cat_in_sentence"]),
    ]
    motives = list(dict.fromkeys(_motive(m) for m in motivations if _motive(m)))
    if motives:
        # the goal stays in the draft note for the owner: it is not words for customers
        lines += ["", f"We know you care about {_join(motives)}."]
    lines += ["", "Picked for you:", "", "{% recommendations 3 %}"]
    if angle in ("winback", "value"):
        lines += ["", "{% offer %}"]
    lines += ["", _CLOSINGS[angle], "", "The {{ shop_name }} team"]
    return subject, draft_note + "\n" + "\n".join(lines)
