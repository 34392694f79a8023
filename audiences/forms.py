"""The audience builder's form: plain-words fields in, an audience definition out.

The form only checks what a browser can get wrong (a number that is not one, a
choice that is not offered); whether the definition makes sense is the job of
`definitions.definition_clean`, whose `ApplicationError` names a definition field.
`FIELD_FOR` maps those names back onto the form's fields so the message shows next
to the right input. The "rules" kind reuses the rule segment builder's rows
(segmentation/views_segments.py), whose fields live beside these in the same form.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

from django import forms

from .definitions import GOAL_LABELS, SCORED_KINDS

# The builder's words for each kind (the definitions' KIND_LABELS are the list's).
KIND_CHOICES = [
    ("segments", "Combine segments"),
    ("rules", "Customers matching rules"),
    ("goal", "Likely to do something soon"),
    ("response", "Like a past campaign's responders"),
    ("lookalike", "Like a group you choose"),
    ("location", "Near a store or in a place"),
]
KIND_HELP = {
    "segments": "Add segments together, or keep only the customers in all of them, "
    "then leave some out.",
    "rules": "Pick customers by their details and orders, like a rule segment.",
    "goal": "Ranked by our predictions: who will order soon, valuable customers "
    "at risk, or who will buy from a category.",
    "response": "Learns who answered a past message and finds the customers most "
    "like them among those not contacted yet.",
    "lookalike": "Finds the customers who look most like a segment or a list you paste.",
    "location": "Customers near one of your stores, or in countries, regions or "
    "postcodes you name.",
}

GOAL_CHOICES = [
    ("order_soon", "Will order soon"),
    ("high_value_at_risk", GOAL_LABELS["high_value_at_risk"]),
    ("buy_category", GOAL_LABELS["buy_category"]),
]
MATCH_CHOICES = [("any", "in any of them"), ("all", "in all of them")]

# definition field (as definition_clean names it) -> form field
FIELD_FOR = {
    "kind": "kind",
    "include": "include",
    "exclude": "exclude",
    "match": "match",
    "goal": "goal",
    "days": "days",
    "category": "category",
    "event": "response_event",
    "exposure_event": "exposure_event",
    "within_days": "within_days",
    "seed_segment_id": "seed_segment",
    "seed_customer_ids": "seed_customer_ids",
    "store": "store",
    "km": "km",
    "near": "store",
    "countries": "countries",
    "regions": "regions",
    "postal_prefixes": "postal_prefixes",
    "size": "top_n",
    "min_score": "min_score",
    "reason": "reason",
    "use_sensitive": "use_sensitive",
    "name": "name",
}


def _segment_label(segment) -> str:
    kind = {"rule": " · rule", "rfm": " · RFM group"}.get(segment.kind, "")
    return f"{segment.name} · {segment.size:,} customers{kind}"


def _text_list(raw: str) -> list[str]:
    return [part.strip() for part in raw.replace("\n", ",").split(",") if part.strip()]


class AudienceForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200, required=False)
    kind = forms.ChoiceField(
        label="What kind of audience?", choices=KIND_CHOICES, widget=forms.RadioSelect
    )
    # segments
    include = forms.MultipleChoiceField(
        label="Customers in these segments", required=False, widget=forms.CheckboxSelectMultiple
    )
    match = forms.ChoiceField(
        label="Keep customers who are",
        choices=MATCH_CHOICES,
        widget=forms.RadioSelect,
        required=False,
        initial="any",
    )
    exclude = forms.MultipleChoiceField(
        label="But leave out customers in", required=False, widget=forms.CheckboxSelectMultiple
    )
    # goal
    goal = forms.ChoiceField(
        label="Customers who are", choices=GOAL_CHOICES, widget=forms.RadioSelect, required=False
    )
    days = forms.IntegerField(
        label="Within how many days", min_value=1, max_value=365, required=False, initial=30
    )
    category = forms.ChoiceField(label="Category", required=False)
    # response
    exposure_event = forms.ChoiceField(
        label="The message they received",
        required=False,
        help_text="The event recorded when someone got the campaign, such as message_sent.",
    )
    response_event = forms.ChoiceField(
        label="What counts as responding",
        required=False,
        help_text="The event that shows they acted, such as an order or a click.",
    )
    within_days = forms.IntegerField(
        label="Responding within how many days", min_value=1, max_value=365, required=False,
        initial=30,
    )  # fmt: skip
    # lookalike
    seed_segment = forms.ChoiceField(label="A segment", required=False)
    seed_customer_ids = forms.CharField(
        label="Or paste customer ids",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Your own customer ids, separated by commas or one per line.",
    )
    # location
    store = forms.ChoiceField(label="Near this store", required=False)
    km = forms.FloatField(label="Within (km)", min_value=0.01, max_value=20000, required=False)
    countries = forms.CharField(
        label="Or in these countries",
        required=False,
        help_text="Country codes or names, separated by commas (GB, FR).",
    )
    regions = forms.CharField(label="Or regions", required=False, help_text="Separated by commas.")
    postal_prefixes = forms.CharField(
        label="Or postcodes beginning with",
        required=False,
        help_text="Separated by commas, like SW1, 75.",
    )
    # scored kinds
    top_n = forms.IntegerField(
        label="Only the top",
        min_value=1,
        max_value=10**8,
        required=False,
        help_text="Keep only this many customers, best first. Leave empty for everyone.",
    )
    min_score = forms.FloatField(
        label="Only customers scoring at least",
        required=False,
        help_text="For chances, a share: 0.3 keeps those at 30% or more.",
    )
    use_sensitive = forms.BooleanField(
        label="Use sensitive attributes (age, gender, …)", required=False
    )
    reason = forms.CharField(
        label="Why you need them",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required. Your reason is recorded in the audit log with your name.",
    )

    def __init__(self, *args, segments=(), event_types=(), categories=(), stores=(), **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        segment_choices = [(str(s.pk), _segment_label(s)) for s in segments]
        self.segments = {str(s.pk): s for s in segments}
        self.fields["include"].choices = segment_choices
        self.fields["exclude"].choices = segment_choices
        self.fields["seed_segment"].choices = [("", "— none —"), *segment_choices]
        events = [("", "Choose…"), *[(t, t) for t in event_types]]
        self.fields["exposure_event"].choices = events
        self.fields["response_event"].choices = events
        self.fields["category"].choices = [("", "Choose…"), *[(c, c) for c in categories]]
        self.fields["store"].choices = [("", "— none —"), *[(str(s.pk), s.name) for s in stores]]
        # a saved definition may name a value no longer offered: keep it choosable
        for name in ("exposure_event", "response_event", "category"):
            value = (self.data.get(name) if self.is_bound else self.initial.get(name)) or ""
            if value and value not in dict(self.fields[name].choices):
                self.fields[name].choices.append((value, value))

    def definition(self) -> dict[str, Any]:
        """The definition the fields describe (call after `is_valid()`); the rule of
        the "rules" kind is added by the view from the rule builder's rows."""
        d = self.cleaned_data
        kind = d["kind"]
        out: dict[str, Any] = {"kind": kind}
        if kind == "segments":
            out["include"] = [int(x) for x in d["include"]]
            out["exclude"] = [int(x) for x in d["exclude"]]
            out["match"] = d["match"] or "any"
        elif kind == "goal":
            out["goal"] = d["goal"]
            if d["goal"] in ("order_soon", "buy_category"):
                out["days"] = d["days"] or 30
            if d["goal"] == "buy_category":
                out["category"] = d["category"]
        elif kind == "response":
            out["exposure_event"] = d["exposure_event"]
            out["event"] = d["response_event"]
            out["within_days"] = d["within_days"] or 30
        elif kind == "lookalike":
            if d["seed_segment"]:
                out["seed_segment_id"] = int(d["seed_segment"])
            ids = _text_list(d["seed_customer_ids"])
            if ids:
                out["seed_customer_ids"] = ids
        elif kind == "location":
            if d["store"]:
                out["store"] = int(d["store"])
                out["km"] = d["km"]
            for name in ("countries", "regions", "postal_prefixes"):
                values = _text_list(d[name])
                if values:
                    out[name] = values
        if kind in SCORED_KINDS:
            if d["top_n"] is not None:
                out["size"] = d["top_n"]
            if d["min_score"] is not None:
                out["min_score"] = d["min_score"]
        if d["use_sensitive"]:
            out["use_sensitive"] = True
            out["reason"] = d["reason"]
        return out

    def add_definition_error(self, fields: dict[str, str], message: str) -> None:
        """An ApplicationError's `fields` onto the form's fields (the rule's under
        `rule`, which the view shows beside the rule builder)."""
        placed = False
        for key, text in (fields or {}).items():
            name = FIELD_FOR.get(str(key).split(".")[0])
            if name and name in self.fields:
                self.add_error(name, text)
                placed = True
        if not placed and "rule" not in (fields or {}):
            self.add_error(None, message)


def initial_from_definition(definition: dict[str, Any], name: str = "") -> dict[str, Any]:
    """The form's initial values for a saved audience."""
    d = definition or {}
    initial: dict[str, Any] = {"name": name, "kind": d.get("kind") or "segments"}
    initial["include"] = [str(x) for x in d.get("include", [])]
    initial["exclude"] = [str(x) for x in d.get("exclude", [])]
    initial["match"] = d.get("match", "any")
    initial["goal"] = d.get("goal", "order_soon")
    initial["days"] = d.get("days", 30)
    initial["category"] = d.get("category", "")
    initial["exposure_event"] = d.get("exposure_event", "")
    initial["response_event"] = d.get("event", "")
    initial["within_days"] = d.get("within_days", 30)
    initial["seed_segment"] = str(d.get("seed_segment_id") or "")
    initial["seed_customer_ids"] = "\n".join(d.get("seed_customer_ids", []))
    initial["store"] = str(d.get("store") or "")
    initial["km"] = d.get("km")
    for field in ("countries", "regions", "postal_prefixes"):
        initial[field] = ", ".join(d.get(field, []))
    initial["top_n"] = d.get("size")
    initial["min_score"] = d.get("min_score")
    initial["use_sensitive"] = bool(d.get("use_sensitive"))
    initial["reason"] = d.get("reason", "")
    return initial


def rule_state_from_definition(definition: dict[str, Any]) -> dict[str, Any]:
    """The rule builder's rows for a saved "rules" audience (or one empty row)."""
    from segmentation.views_segments import _rule_to_state

    rule = (definition or {}).get("rule")
    if not rule:
        return {
            "name": "",
            "description": "",
            "op": "and",
            "groups": [{"op": "and", "conditions": [{"field": "", "operator": "", "value": ""}]}],
        }
    holder = SimpleNamespace(rule=copy.deepcopy(rule), name="", description="")
    return _rule_to_state(holder)
