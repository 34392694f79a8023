"""Personas written from segment profiles.

The default writer is deterministic and data-driven: every word comes from the
profile's numbers through fixed rules, so the same profile always gives the
same persona and nothing leaves the machine. Another writer (for example one
backed by a language model, behind a setting) can be plugged in through the
:class:`TextGenerator` protocol; the service layer stores what it returns, and
human edits are kept by the service, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from segmentation.ml.profiles import ProfileSet, SegmentProfile

HIGH, MEDIUM, LOW = "high", "medium", "low"


@dataclass
class Persona:
    segment_key: str
    name: str
    portrait: str
    key_traits: list[str]
    motivations: list[str]
    preferred_channel: str | None
    preferred_time: str | None
    favourite_categories: list[str]
    favourite_products: list[str]
    value: str  # e.g. "High: 38% of revenue from 12% of customers"
    value_level: str  # high | medium | low
    risk: str  # e.g. "Low: most ordered in the last month"
    risk_level: str  # high | medium | low
    suggested_actions: list[str]
    generator: str = "deterministic"
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "segment_key": self.segment_key,
            "name": self.name,
            "portrait": self.portrait,
            "key_traits": list(self.key_traits),
            "motivations": list(self.motivations),
            "preferred_channel": self.preferred_channel,
            "preferred_time": self.preferred_time,
            "favourite_categories": list(self.favourite_categories),
            "favourite_products": list(self.favourite_products),
            "value": self.value,
            "value_level": self.value_level,
            "risk": self.risk,
            "risk_level": self.risk_level,
            "suggested_actions": list(self.suggested_actions),
            "generator": self.generator,
            "facts": dict(self.facts),
        }


@runtime_checkable
class TextGenerator(Protocol):
    """Writes one persona from a profile.

    ``taken_names`` holds the names already given to other segments of the
    same run; a generator should return a name not among them (the caller
    enforces it anyway).
    """

    name: str

    def write(
        self, *, profile: SegmentProfile, base: SegmentProfile, taken_names: set[str]
    ) -> Persona: ...


def write_personas(
    *, profiles: ProfileSet, generator: TextGenerator | None = None
) -> list[Persona]:
    """One persona per segment, in profile order, with unique names.

    Segments are written in decreasing order of revenue so the most valuable
    segment gets first pick of its natural name; the result keeps profile order.
    """
    generator = generator or DeterministicTextGenerator()
    taken: set[str] = set()
    written: dict[str, Persona] = {}
    by_value = sorted(profiles.profiles, key=lambda p: (-p.revenue, p.key))
    for profile in by_value:
        persona = generator.write(profile=profile, base=profiles.base, taken_names=set(taken))
        if persona.name in taken:
            persona.name = _unique(persona.name, taken)
        taken.add(persona.name)
        written[profile.key] = persona
    return [written[p.key] for p in profiles.profiles]


def _unique(name: str, taken: set[str]) -> str:
    i = 2
    while f"{name} {i}" in taken:
        i += 1
    return f"{name} {i}"


def _ratio(profile: SegmentProfile, feature: str) -> float | None:
    comp = profile.feature(feature)
    return None if comp is None else comp.ratio


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _hour_phrase(hour: int) -> str:
    if 5 <= hour < 9:
        band = "early in the morning"
    elif 9 <= hour < 12:
        band = "in the morning"
    elif 12 <= hour < 14:
        band = "at lunchtime"
    elif 14 <= hour < 17:
        band = "in the afternoon"
    elif 17 <= hour < 22:
        band = "in the evening"
    else:
        band = "late at night"
    return f"{band} (around {hour:02d}:00)"


def _return_share(p: SegmentProfile) -> float:
    comp = p.feature("return_share")
    return 0.0 if comp is None else comp.segment_mean


def _title(text: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in str(text).replace("_", " ").split())


class DeterministicTextGenerator:
    """Rule-based persona writer (the default)."""

    name = "deterministic"

    def write(
        self, *, profile: SegmentProfile, base: SegmentProfile, taken_names: set[str]
    ) -> Persona:
        t = _Traits.read(profile)
        value_level, value = self._value(profile)
        risk_level, risk = self._risk(profile, t)
        name = self._name(profile, t, taken_names)
        channel = self._channel(profile)
        when = self._time(profile)
        categories = [c["name"] for c in profile.top_categories[:3]]
        # only what they buy clearly more than the average customer (lift with
        # minimum support, see profiles.FAVOURITE_MIN_LIFT): what everyone buys
        # says nothing about this group, so it is no favourite
        products = [item["name"] for item in profile.distinctive_products[:5]]
        traits = [s[:1].upper() + s[1:] for s in profile.sentences]
        return Persona(
            segment_key=profile.key,
            name=name,
            portrait=self._portrait(profile, name, t, channel, when, risk_level),
            key_traits=traits,
            motivations=self._motivations(profile, t),
            preferred_channel=channel,
            preferred_time=when,
            favourite_categories=categories,
            favourite_products=products,
            value=value,
            value_level=value_level,
            risk=risk,
            risk_level=risk_level,
            suggested_actions=self._actions(profile, t, value_level, risk_level, channel),
            generator=self.name,
            facts=t.as_dict(),
        )

    # --- value and risk ------------------------------------------------
    @staticmethod
    def _value(p: SegmentProfile) -> tuple[str, str]:
        idx = p.value_index or 0.0
        level = HIGH if idx >= 1.5 else MEDIUM if idx >= 0.75 else LOW
        text = (
            f"{_pct(p.share_of_revenue)} of revenue from {_pct(p.share_of_customers)} of customers"
        )
        return level, f"{level.capitalize()}: {text}"

    @staticmethod
    def _risk(p: SegmentProfile, t: _Traits) -> tuple[str, str]:
        if p.ordered_last_30_days >= 0.5:
            return LOW, f"Low: most ordered in the last month ({_pct(p.ordered_last_30_days)})"
        if p.silent_over_180_days >= 0.5:
            return HIGH, (
                f"High: {_pct(p.silent_over_180_days)} have not ordered for more than six months"
            )
        if t.repeat_share >= 0.3 and p.overdue_share >= 0.5:
            return HIGH, (
                f"High: {_pct(p.overdue_share)} of repeat buyers are well past their usual "
                "time to reorder"
            )
        if p.ordered_last_90_days >= 0.5:
            return (
                LOW,
                f"Low: most ordered in the last three months ({_pct(p.ordered_last_90_days)})",
            )
        return MEDIUM, f"Medium: {_pct(p.ordered_last_90_days)} ordered in the last three months"

    # --- naming --------------------------------------------------------
    @staticmethod
    def _name(p: SegmentProfile, t: _Traits, taken: set[str]) -> str:
        if t.is_new:
            status, noun = "", "Newcomers"
        elif t.is_regular and t.is_lapsing:
            status, noun = "Drifting", "Regulars"
        elif t.is_regular:
            status, noun = "Loyal", "Regulars"
        elif t.mostly_one_order and t.is_lapsed:
            status, noun = "Lapsed", "One-Timers"
        elif t.mostly_one_order:
            status, noun = "", "One-Time Buyers"
        elif t.is_lapsed:
            status, noun = "Lapsed", "Shoppers"
        elif t.is_lapsing:
            status, noun = "Fading", "Shoppers"
        else:
            status, noun = "Occasional", "Shoppers"
        # descriptive words, most telling first: a big spender is the headline,
        # then what they buy, then a small basket, then how they order
        words = []
        if t.basket_value >= 1.4 or t.basket_size >= 1.4:
            words.append("Big-Basket")
        elif t.monetary >= 2.0:
            words.append("High-Spending")
        if t.category:
            words.append(t.category)
        if t.basket_value <= 0.7:
            words.append("Small-Basket")
        if t.high_returns:
            words.append("High-Return")
        if t.channel_word:
            words.append(t.channel_word)
        # the plainest name first, one more word each time it is taken
        for used in range(1, max(len(words), 1) + 1):
            name = " ".join(w for w in (status, *words[:used], noun) if w)
            if name not in taken:
                return name
        return _unique(" ".join(w for w in (status, *words, noun) if w), taken)

    # --- text ----------------------------------------------------------
    @staticmethod
    def _channel(p: SegmentProfile) -> str | None:
        if not p.channels:
            return None
        top = p.channels[0]
        return f"{top['name']} ({_pct(top['share_of_orders'] or 0.0)} of orders)"

    @staticmethod
    def _time(p: SegmentProfile) -> str | None:
        # only a real preference is worth stating: the favourite day must take
        # clearly more than its 1-in-7 share, the favourite hour more than
        # twice its 1-in-24 share
        day = p.favourite_weekday if (p.favourite_weekday_share or 0) >= 0.2 else None
        hour = p.favourite_hour if (p.favourite_hour_share or 0) >= 2 / 24 else None
        if day and hour is not None:
            return f"{day}s, {_hour_phrase(hour)}"
        if day:
            return f"{day}s"
        if hour is not None:
            return _hour_phrase(hour)
        return None

    @staticmethod
    def _portrait(
        p: SegmentProfile,
        name: str,
        t: _Traits,
        channel: str | None,
        when: str | None,
        risk_level: str,
    ) -> str:
        parts = [
            f"{name} are {_pct(p.share_of_customers)} of customers ({p.size:,}) and bring in "
            f"{_pct(p.share_of_revenue)} of revenue."
        ]
        verbs = [
            c.sentence
            for c in p.features
            if c.feature
            in {
                "frequency",
                "monetary",
                "recency_days",
                "avg_basket_value",
                "avg_basket_size",
                "tenure_days",
            }
        ][:3]
        if verbs:
            joined = verbs[0] if len(verbs) == 1 else ", ".join(verbs[:-1]) + " and " + verbs[-1]
            parts.append(f"A typical member {joined}.")
        if t.mostly_one_order:
            parts.append(f"{_pct(p.one_order_share)} have ordered only once.")
        if p.top_categories:
            cats = [c["name"] for c in p.top_categories[:2]]
            share = sum(c["share_of_spend"] or 0.0 for c in p.top_categories[:2])
            parts.append(f"{_pct(share)} of their spend goes on {' and '.join(cats)}.")
        how = []
        if channel:
            how.append(f"mostly order via {channel}")
        if when:
            on = "on " if p.favourite_weekday and when.startswith(p.favourite_weekday) else ""
            how.append(f"order most often {on}{when}")
        if how:
            parts.append(f"They {' and '.join(how)}.")
        if risk_level == HIGH:
            parts.append("Many have gone quiet, so they need a reason to come back.")
        elif risk_level == LOW and p.ordered_last_30_days >= 0.5:
            parts.append("Most of them bought within the last month.")
        return " ".join(parts)

    @staticmethod
    def _motivations(p: SegmentProfile, t: _Traits) -> list[str]:
        out = []
        if t.is_regular:
            out.append("Habit and convenience: they reorder on a steady rhythm")
        if t.basket_value >= 1.4 or t.basket_size >= 1.4:
            out.append("Range and quality: they buy several things at once")
        if t.category:
            out.append(f"A clear interest in {t.category.lower()}")
        if t.basket_value <= 0.7:
            out.append("Price: small baskets suggest they look for deals")
        if t.is_new:
            out.append("Discovery: still finding out what the shop offers")
        if t.returns >= 1.5:
            out.append(
                "Certainty: they return more than most, so fit and quality information matter"
            )
        if t.engagement >= 1.5:
            out.append("Staying in touch: they engage with messages more than most")
        if t.is_lapsed or t.is_lapsing:
            out.append("A reason to come back: a relevant offer or something new")
        if not out:
            out.append("Everyday needs, met at a fair price")
        return out[:4]

    @staticmethod
    def _actions(
        p: SegmentProfile,
        t: _Traits,
        value_level: str,
        risk_level: str,
        channel: str | None,
    ) -> list[str]:
        out = []
        if value_level == HIGH and risk_level == LOW:
            out.append("Reward with early access to new arrivals and a loyalty perk")
            out.append("Ask for reviews and referrals")
        elif value_level in {HIGH, MEDIUM} and risk_level != LOW:
            out.append(
                f"Win back with a personal offer before they lapse (they bring in "
                f"{_pct(p.share_of_revenue)} of revenue)"
            )
        elif risk_level == HIGH:
            out.append("Send a low-cost reactivation email; stop paid spend if nobody responds")
        elif risk_level == MEDIUM:
            out.append("Nudge with news and a small incentive before they lapse")
        if t.high_returns:
            out.append(
                "Look into what they send back; improve size and quality information "
                "before sending offers"
            )
        if (t.basket_value >= 1.4 or t.basket_size >= 1.4) and value_level != HIGH:
            out.append("Offer volume pricing or bundles to keep their large orders coming")
        if t.is_new or (t.mostly_one_order and risk_level == LOW):
            out.append("Welcome series that leads to a second order within 30 days")
        if t.basket_value <= 0.7 and risk_level != HIGH:
            out.append("Raise basket size with bundles or a free-delivery threshold")
        if t.category:
            out.append(f"Feature new {t.category.lower()} products in their messages")
        if channel and p.channels and (p.channels[0]["share_of_orders"] or 0) >= 0.6:
            out.append(f"Reach them through their usual channel: {p.channels[0]['name']}")
        when = DeterministicTextGenerator._time(p)
        if when and risk_level != HIGH:
            out.append(f"Time messages for {when}")
        return out[:5] or ["Keep in touch with the regular newsletter"]


@dataclass
class _Traits:
    """Ratios against the base and flags that the rules above read."""

    frequency: float
    monetary: float
    basket_value: float
    basket_size: float
    recency: float
    tenure: float
    returns: float
    engagement: float
    repeat_share: float
    mostly_one_order: bool
    is_new: bool
    is_regular: bool
    is_lapsing: bool
    is_lapsed: bool
    category: str
    channel_word: str
    high_returns: bool

    @classmethod
    def read(cls, p: SegmentProfile) -> _Traits:
        def r(feature: str) -> float:
            value = _ratio(p, feature)
            return 1.0 if value is None else value

        frequency, recency, tenure = r("frequency"), r("recency_days"), r("tenure_days")
        engagement = max(
            (c.ratio or 0.0 for c in p.features if c.kind == "events" and c.ratio is not None),
            default=1.0,
        )
        category = ""
        if p.top_categories:
            top = p.top_categories[0]
            if (top["share_of_spend"] or 0) >= 0.4 and (top["index"] or 0) >= 150:
                category = _title(top["name"])
        channel_word = ""
        if p.channels:
            top = p.channels[0]
            if (top["share_of_orders"] or 0) >= 0.7 and (top["base_share_of_orders"] or 1) < 0.6:
                channel_word = f"{_title(top['name'])}-First"
        return cls(
            frequency=frequency,
            monetary=r("monetary"),
            basket_value=r("avg_basket_value"),
            basket_size=r("avg_basket_size"),
            recency=recency,
            tenure=tenure,
            returns=r("return_share"),
            engagement=engagement,
            repeat_share=1.0 - p.one_order_share,
            mostly_one_order=p.one_order_share >= 0.6,
            is_new=tenure <= 0.5 and p.ordered_last_90_days >= 0.6 and frequency <= 1.0,
            is_regular=frequency >= 1.5,
            is_lapsing=recency >= 1.3 and p.silent_over_180_days < 0.5,
            is_lapsed=p.silent_over_180_days >= 0.5,
            category=category,
            channel_word=channel_word,
            high_returns=r("return_share") >= 3.0 and _return_share(p) >= 0.2,
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


# What sets a group apart from the rest of its segment, in words: feature →
# (words when the group is above its segment's average, words when below).
# Category, channel and attribute shares speak only upwards ("mostly Garden",
# "in DE"): what a group has less of says little about it.
_SUB_PHRASES: dict[str, tuple[str, str]] = {
    "frequency": ("more frequent", "less frequent"),
    "recency_days": ("gone quieter", "ordered recently"),
    "monetary": ("bigger spenders", "smaller spenders"),
    "avg_basket_value": ("bigger baskets", "smaller baskets"),
    "avg_basket_size": ("more items per order", "fewer items per order"),
    "mean_days_between_orders": ("longer gaps between orders", "shorter gaps between orders"),
    "tenure_days": ("long-standing", "newer"),
    "return_share": ("more returns", "fewer returns"),
}
SUB_MIN_DIFFERENCE = 0.3  # in standard deviations of the segment's own members


def sub_segment_names(
    *,
    parent_name: str,
    matrix: pd.DataFrame,
    labels: np.ndarray,
    info: dict[str, Any],
    taken: set[str] | None = None,
) -> list[str]:
    """Names for the groups found within one segment, from what sets each apart
    from its siblings, not from the whole base (against the whole base every
    group of "Loyal Regulars" is loyal and regular, and they came out "Loyal
    Regulars 2", "Loyal Regulars 3").

    The same reading as top-level names, relative to the parent: each group's
    centre in the model's feature space is compared with the centre of the
    parent's members, in standard deviations of those members; the features
    that stand out most (at least ``SUB_MIN_DIFFERENCE``) become words, e.g.
    "Loyal Regulars: bigger baskets". One word per group, more only where two
    siblings would otherwise share a name; a number only when nothing tells
    two groups apart. ``matrix`` holds the parent's members (model columns),
    ``labels`` their group (0..k-1), ``info`` the feature descriptions
    (``FeatureSet.info``). Returns one name per group, in label order.
    """
    taken = set(taken or ())
    x = matrix.to_numpy(dtype=np.float64)
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if labels.size else 0
    centre, spread = x.mean(axis=0), x.std(axis=0)
    phrases: list[list[str]] = []
    for j in range(k):
        diff = np.divide(
            x[labels == j].mean(axis=0) - centre,
            spread,
            out=np.zeros_like(centre),
            where=spread > 1e-12,
        )
        ranked = []
        for col, d in zip(matrix.columns, diff, strict=True):
            if abs(d) < SUB_MIN_DIFFERENCE:
                continue
            meta = info.get(col)
            name = getattr(meta, "name", col)
            block = getattr(meta, "block", "")
            label = getattr(meta, "label", "")
            if name in _SUB_PHRASES:
                words = _SUB_PHRASES[name][0 if d > 0 else 1]
            elif not label or label == "other" or d <= 0:
                continue
            elif block == "category":
                words = f"mostly {_title(label)}"
            elif block == "channel":
                words = f"mostly via {_title(label)}"
            elif block == "attribute":
                source = str(getattr(meta, "source", "")).lower()
                place = source in {"country", "city", "region", "state", "province"}
                words = f"in {label}" if place else f"{source.replace('_', ' ')} {label}"
            else:
                continue
            ranked.append((abs(float(d)), words))
        ranked.sort(key=lambda item: -item[0])
        seen: list[str] = []
        for _, words in ranked:
            if words not in seen:
                seen.append(words)
        phrases.append(seen)

    def named(j: int, n: int) -> str:
        words = phrases[j][:n]
        return f"{parent_name}: {', '.join(words)}" if words else parent_name

    used = [1] * k
    for _ in range(4):
        names = [named(j, used[j]) for j in range(k)]
        clash = [j for j in range(k) if names.count(names[j]) > 1 or names[j] in taken]
        grow = [j for j in clash if used[j] < len(phrases[j])]
        if not grow:
            break
        for j in grow:
            used[j] += 1
    out = []
    for name in (named(j, used[j]) for j in range(k)):
        if name in taken or name == parent_name:
            name = _unique(name, taken | {parent_name})
        taken.add(name)
        out.append(name)
    return out
