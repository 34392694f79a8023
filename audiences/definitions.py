"""Audience definitions: checked before anything is evaluated or stored.

`definition_clean(raw)` returns the canonical definition or raises an
`ApplicationError` whose `fields` name what is wrong (CONTRACT.md lists the kinds
and their fields). Kinds: `segments`, `rules`, `goal`, `response`, `lookalike`,
`location`. Scored kinds (`goal`, `response`, `lookalike`) may narrow the list
with `size` (top N) or `min_score`; any kind may say `"use_sensitive": true` with
a `"reason"` (recorded in the audit log when the audience is saved).
"""

from __future__ import annotations

import math
from typing import Any

from core.exceptions import ApplicationError

KINDS = ("segments", "rules", "goal", "response", "lookalike", "location")
SCORED_KINDS = frozenset({"goal", "response", "lookalike"})
GOALS = ("order_soon", "high_value_at_risk", "buy_category")
KIND_LABELS = {
    "segments": "Segments combined",
    "rules": "Customers matching rules",
    "goal": "Likely to do something soon",
    "response": "Likely to respond, from a past campaign",
    "lookalike": "Customers like a group you choose",
    "location": "Customers near a store or in a place",
}
GOAL_LABELS = {
    "order_soon": "Likely to order soon",
    "high_value_at_risk": "Valuable customers at risk of leaving",
    "buy_category": "Likely to buy from a category",
}
MAX_IDS = 10_000
MAX_KM = 20_000.0


def _fail(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, {"fields": {field: message}}, code="invalid_definition")


def _ids(raw: Any, field: str, *, required: bool) -> list[int]:
    if raw in (None, ""):
        raw = []
    if not isinstance(raw, list):
        raise _fail(field, f"{field} must be a list of segment ids.")
    if len(raw) > MAX_IDS:
        raise _fail(field, f"{field} may name at most {MAX_IDS:,} items.")
    out: list[int] = []
    for item in raw:
        if isinstance(item, bool):
            raise _fail(field, f"{field} holds {item!r}, which is not a segment id.")
        try:
            value = int(str(item).strip())
        except (TypeError, ValueError):
            raise _fail(
                field, f"{field} holds {str(item)[:40]!r}, which is not a segment id."
            ) from None
        if value <= 0 or value > 2**62:
            raise _fail(field, f"{field} holds {value}, which is not a segment id.")
        if value not in out:
            out.append(value)
    if required and not out:
        raise _fail(field, f"Choose at least one segment in {field}.")
    return out


def _strings(raw: Any, field: str, *, limit: int = 500, max_len: int = 255) -> list[str]:
    if raw in (None, ""):
        return []
    if isinstance(raw, str):
        raw = [part for part in raw.replace("\n", ",").split(",")]
    if not isinstance(raw, list):
        raise _fail(field, f"{field} must be a list of text values.")
    out: list[str] = []
    for item in raw:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise _fail(field, f"{field} holds {str(item)[:40]!r}, which is not text.")
        value = str(item).strip()
        if len(value) > max_len:
            raise _fail(field, f"{field} holds a value longer than {max_len} characters.")
        if value and value not in out:
            out.append(value)
    if len(out) > limit:
        raise _fail(field, f"{field} may hold at most {limit:,} values.")
    return out


def _number(raw: Any, field: str, *, low: float, high: float, integer: bool = False) -> float | int:
    if isinstance(raw, bool) or raw is None or raw == "":
        raise _fail(field, f"{field} must be a number.")
    try:
        value = float(str(raw).strip())
    except (TypeError, ValueError):
        raise _fail(field, f"{field} must be a number, not {str(raw)[:40]!r}.") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise _fail(field, f"{field} must be between {low:g} and {high:g}.")
    if integer:
        if value != int(value):
            raise _fail(field, f"{field} must be a whole number.")
        return int(value)
    return value


def _text(raw: Any, field: str, *, max_len: int = 100, required: bool = True) -> str:
    value = "" if raw is None else str(raw).strip()
    if required and not value:
        raise _fail(field, f"{field} is required.")
    if len(value) > max_len:
        raise _fail(field, f"{field} must be at most {max_len} characters.")
    return value


def definition_clean(raw: Any) -> dict[str, Any]:
    """The canonical definition, or ApplicationError naming the faulty field."""
    if not isinstance(raw, dict):
        raise _fail("definition", "The definition must be an object with a 'kind'.")
    kind = str(raw.get("kind") or "").strip()
    if kind not in KINDS:
        raise _fail("kind", f"kind must be one of {', '.join(KINDS)} (got {kind[:40]!r}).")
    out: dict[str, Any] = {"kind": kind}
    if kind == "segments":
        out["include"] = _ids(raw.get("include"), "include", required=True)
        out["exclude"] = _ids(raw.get("exclude"), "exclude", required=False)
        match = str(raw.get("match") or "any").strip()
        if match not in ("any", "all"):
            raise _fail("match", "match must be 'any' or 'all'.")
        out["match"] = match
    elif kind == "rules":
        from segmentation.services.rules import rule_clean

        rule = raw.get("rule", {k: v for k, v in raw.items() if k not in _COMMON})
        try:
            out["rule"] = rule_clean(rule)
        except ApplicationError as exc:
            raise _fail("rule", exc.message) from exc
    elif kind == "goal":
        goal = str(raw.get("goal") or "").strip()
        if goal not in GOALS:
            raise _fail("goal", f"goal must be one of {', '.join(GOALS)}.")
        out["goal"] = goal
        if goal == "order_soon":
            out["days"] = _number(raw.get("days", 30), "days", low=1, high=365, integer=True)
        if goal == "buy_category":
            out["category"] = _text(raw.get("category"), "category", max_len=255)
            out["days"] = _number(raw.get("days", 30), "days", low=1, high=365, integer=True)
    elif kind == "response":
        out["event"] = _text(raw.get("event"), "event")
        out["exposure_event"] = _text(raw.get("exposure_event"), "exposure_event")
        out["within_days"] = _number(
            raw.get("within_days", 30), "within_days", low=1, high=365, integer=True
        )
    elif kind == "lookalike":
        seed_segment = raw.get("seed_segment_id")
        seed_customers = _strings(raw.get("seed_customer_ids"), "seed_customer_ids", limit=MAX_IDS)
        if seed_segment in (None, "") and not seed_customers:
            raise _fail(
                "seed_segment_id",
                "Name a seed: seed_segment_id or seed_customer_ids (external ids).",
            )
        if seed_segment not in (None, ""):
            out["seed_segment_id"] = _ids([seed_segment], "seed_segment_id", required=True)[0]
        if seed_customers:
            out["seed_customer_ids"] = seed_customers
    elif kind == "location":
        _location(raw, out)
    if kind in SCORED_KINDS:
        if raw.get("size") not in (None, ""):
            out["size"] = _number(raw.get("size"), "size", low=1, high=10**8, integer=True)
        if raw.get("min_score") not in (None, ""):
            out["min_score"] = _number(raw.get("min_score"), "min_score", low=-1e9, high=1e9)
    if raw.get("use_sensitive") is True:
        out["use_sensitive"] = True
        out["reason"] = _text(raw.get("reason"), "reason", max_len=500)
    elif raw.get("use_sensitive") not in (None, False):
        raise _fail("use_sensitive", "use_sensitive must be true or false.")
    return out


_COMMON = frozenset({"kind", "size", "min_score", "use_sensitive", "reason"})


def _location(raw: dict[str, Any], out: dict[str, Any]) -> None:
    near = raw.get("near")
    store = raw.get("store")
    if near not in (None, "", {}):
        if not isinstance(near, dict):
            raise _fail("near", "near must be an object with latitude, longitude and km.")
        out["near"] = {
            "latitude": _number(near.get("latitude"), "near.latitude", low=-90, high=90),
            "longitude": _number(near.get("longitude"), "near.longitude", low=-180, high=180),
            "km": _number(near.get("km"), "near.km", low=0.01, high=MAX_KM),
        }
    if store not in (None, ""):
        out["store"] = _ids([store], "store", required=True)[0]
        out["km"] = _number(raw.get("km"), "km", low=0.01, high=MAX_KM)
    for name in ("countries", "regions", "postal_prefixes"):
        values = _strings(raw.get(name), name)
        if values:
            out[name] = values
    if not any(k in out for k in ("near", "store", "countries", "regions", "postal_prefixes")):
        raise _fail(
            "near",
            "Say where: near {latitude, longitude, km}, a store with km, or countries, "
            "regions or postal_prefixes.",
        )
    if "near" in out and "store" in out:
        raise _fail("store", "Use either near or store, not both.")
