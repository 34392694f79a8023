"""Forms of the offer pages. They only shape what the owner typed into the data the
services take (the API's keys: offers.services.offer_create); the rules and their
messages live in the services, and `form_errors_from` puts a service's message next
to its field."""

from __future__ import annotations

import zoneinfo
from decimal import Decimal
from typing import Any

from django import forms
from django.utils import timezone

from core.exceptions import ApplicationError

KIND_CHOICES = [
    ("percent", "A percentage off"),
    ("amount", "An amount off"),
    ("free_shipping", "Free delivery"),
    ("product", "A free product"),
]
RECIPIENT_CHOICES = [("segments", "Segments"), ("audience", "A saved audience")]
CODE_CHOICES = [
    ("unique", "A unique code for each customer (cannot be passed on)"),
    ("shared", "One code for everyone (easy to print, but it can be passed on)"),
]

# the services' field names (as the API knows them) -> the form's fields
SERVICE_FIELD = {
    "name": "name",
    "kind": "kind",
    "value": "value",
    "segment_ids": "segments",
    "audience_id": "audience",
    "audience": "audience",
    "code_mode": "code_mode",
    "holdout_share": "holdout_percent",
    "max_redemptions_per_code": "max_redemptions_per_code",
    "max_redemptions_total": "max_redemptions_total",
    "min_basket": "min_basket",
    "categories": "categories",
    "starts_at": "starts_at",
    "ends_at": "ends_at",
}
# form fields -> the service keys they make (for sending only what was changed)
FORM_KEYS = {
    "name": ("name",),
    "kind": ("kind", "value"),
    "value": ("value",),
    "product": ("value",),
    "recipients": ("segment_ids", "audience_id"),
    "segments": ("segment_ids", "audience_id"),
    "audience": ("segment_ids", "audience_id"),
    "code_mode": ("code_mode",),
    "holdout_percent": ("holdout_share",),
    "max_redemptions_per_code": ("max_redemptions_per_code",),
    "max_redemptions_total": ("max_redemptions_total",),
    "min_basket": ("min_basket",),
    "categories": ("categories",),
    "starts_at": ("starts_at",),
    "ends_at": ("ends_at",),
}
DATETIME = {
    "required": False,
    "input_formats": ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    "widget": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
}


def _number_text(value: Decimal) -> str:
    """12.50 -> "12.5", 10.0000 -> "10": how the offer's value is stored."""
    text = format(value.normalize(), "f")
    return text


class OfferForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=200,
        strip=True,
        help_text="For you; customers see the offer through your campaign's words.",
    )
    kind = forms.ChoiceField(
        label="What they get", choices=KIND_CHOICES, widget=forms.RadioSelect, initial="percent"
    )
    value = forms.DecimalField(
        label="How much off",
        required=False,
        min_value=Decimal("0.01"),
        max_digits=12,
        decimal_places=2,
        help_text="A percentage (for example 10) or an amount in your currency.",
    )
    product = forms.CharField(
        label="Which product (its SKU)",
        required=False,
        max_length=64,
        strip=True,
        help_text="Start typing: your products are suggested by SKU and name.",
    )
    recipients = forms.ChoiceField(
        label="Who gets it", choices=RECIPIENT_CHOICES, widget=forms.RadioSelect,
        initial="segments",
    )  # fmt: skip
    segments = forms.MultipleChoiceField(
        label="Segments", required=False, widget=forms.CheckboxSelectMultiple
    )
    audience = forms.ChoiceField(label="Audience", required=False)
    code_mode = forms.ChoiceField(
        label="Codes", choices=CODE_CHOICES, widget=forms.RadioSelect, initial="unique"
    )
    holdout_percent = forms.IntegerField(
        label="Hold-out group (%)",
        min_value=0,
        max_value=50,
        initial=10,
        help_text="This share of the customers gets no code. Comparing them with those who "
        "got one shows what the offer really added, instead of paying a discount to "
        "people who would have bought anyway. 10% is a good start; 0 turns it off.",
    )
    max_redemptions_per_code = forms.IntegerField(
        label="Uses per code", min_value=1, max_value=10**6, initial=1,
        help_text="How many times each code can be used.",
    )  # fmt: skip
    max_redemptions_total = forms.IntegerField(
        label="Uses in total (budget)", min_value=1, max_value=10**9, required=False,
        help_text="Stop counting uses after this many. Leave empty for no limit.",
    )  # fmt: skip
    min_basket = forms.DecimalField(
        label="Minimum basket", required=False, min_value=0, max_digits=14, decimal_places=4,
        help_text="Only orders of at least this much qualify. Leave empty for any order.",
    )  # fmt: skip
    categories = forms.MultipleChoiceField(
        label="Only in these categories",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked for every category.",
    )
    starts_at = forms.DateTimeField(label="Starts", **DATETIME)
    ends_at = forms.DateTimeField(label="Ends", **DATETIME)

    def __init__(self, *args, segments=(), audiences=(), categories=(), time_zone="UTC", **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.zone = zoneinfo.ZoneInfo(time_zone or "UTC")
        self.fields["segments"].choices = [
            (str(s.pk), f"{s.name} ({s.size:,} customers)") for s in segments
        ]
        self.fields["audience"].choices = [("", "Choose an audience")] + [
            (str(a.pk), f"{a.name} ({a.size:,} customers)") for a in audiences
        ]
        category_choices = [(c, c) for c in categories]
        # a stored value no longer offered stays choosable (saving unchanged keeps it)
        wanted = self.data.getlist("categories") if self.is_bound else self.initial.get(
            "categories"
        ) or []  # fmt: skip
        for value in wanted:
            if value and value not in dict(category_choices):
                category_choices.append((value, value))
        self.fields["categories"].choices = category_choices
        for name in ("starts_at", "ends_at"):
            self.fields[name].help_text = f"In your organisation's time zone ({self.zone.key})."
        self.fields["ends_at"].help_text += " Leave empty for no end; results need an end."

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind in ("percent", "amount") and data.get("value") is None and "value" not in (
            self.errors
        ):  # fmt: skip
            self.add_error("value", "Say how much off.")
        if kind == "percent" and data.get("value") is not None and data["value"] > 100:
            self.add_error("value", "A percentage can be at most 100.")
        if kind == "product" and not data.get("product"):
            self.add_error("product", "Give the SKU of the product they get.")
        if data.get("recipients") == "segments" and not data.get("segments"):
            self.add_error("segments", "Tick at least one segment.")
        if data.get("recipients") == "audience" and not data.get("audience"):
            self.add_error("audience", "Choose the audience.")
        starts, ends = data.get("starts_at"), data.get("ends_at")
        if starts and ends and ends <= starts:
            self.add_error("ends_at", "The end must come after the start.")
        return data

    def _aware(self, value):
        if value is None:
            return None
        naive = value.replace(tzinfo=None) if timezone.is_aware(value) else value
        return naive.replace(tzinfo=self.zone).isoformat()

    def _changed(self) -> list[str]:
        """`changed_data`, with the times compared as the wall-clock times typed (Django
        compares the zone-less initial time with an aware one: always "changed")."""
        changed = [n for n in self.changed_data if n not in ("starts_at", "ends_at")]
        for name in ("starts_at", "ends_at"):
            typed = self.cleaned_data.get(name)
            typed = typed.replace(tzinfo=None) if typed is not None else None
            if typed != self.initial.get(name):
                changed.append(name)
        return changed

    def service_data(self, *, only_changed: bool = False) -> dict[str, Any]:
        """The API-shaped data; `only_changed` keeps only what the owner changed (an
        edit saved unchanged then changes nothing)."""
        d = self.cleaned_data
        kind = d["kind"]
        if kind == "product":
            value = d.get("product") or ""
        elif kind == "free_shipping":
            value = ""
        else:
            value = _number_text(d["value"]) if d.get("value") is not None else ""
        out: dict[str, Any] = {
            "name": d["name"],
            "kind": kind,
            "value": value,
            "code_mode": d["code_mode"],
            "holdout_share": (d.get("holdout_percent") or 0) / 100,
            "max_redemptions_per_code": d.get("max_redemptions_per_code") or 1,
            "max_redemptions_total": d.get("max_redemptions_total"),
            "min_basket": str(d["min_basket"]) if d.get("min_basket") is not None else None,
            "categories": list(d.get("categories") or []),
            "starts_at": self._aware(d.get("starts_at")),
            "ends_at": self._aware(d.get("ends_at")),
        }
        if d["recipients"] == "audience":
            out["audience_id"] = int(d["audience"]) if d.get("audience") else None
            out["segment_ids"] = []
        else:
            out["segment_ids"] = [int(i) for i in d.get("segments") or []]
            out["audience_id"] = None
        if only_changed:
            keys = {k for name in self._changed() for k in FORM_KEYS.get(name, ())}
            out = {k: v for k, v in out.items() if k in keys}
        return out


def offer_initial(offer, organization) -> dict[str, Any]:
    zone = zoneinfo.ZoneInfo(organization.time_zone or "UTC")

    def local(value):
        # to the minute, as the input shows it: an untouched time is then not "changed"
        # and keeps its stored seconds
        if not value:
            return None
        return value.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)

    number = offer.kind in ("percent", "amount")
    try:
        value = Decimal(offer.value) if number and offer.value else None
    except ArithmeticError:
        value = None
    return {
        "name": offer.name,
        "kind": offer.kind,
        "value": value,
        "product": offer.value if offer.kind == "product" else "",
        "recipients": "audience" if offer.audience_id else "segments",
        "segments": [str(i) for i in offer.segment_ids or []],
        "audience": str(offer.audience_id or ""),
        "code_mode": offer.code_mode,
        "holdout_percent": round(offer.holdout_share * 100),
        "max_redemptions_per_code": offer.max_redemptions_per_code,
        "max_redemptions_total": offer.max_redemptions_total,
        "min_basket": offer.min_basket,
        "categories": list(offer.categories or []),
        "starts_at": local(offer.starts_at),
        "ends_at": local(offer.ends_at),
    }


def suggestion_initial(params) -> dict[str, Any]:
    """The new-offer form prefilled from a suggestion's link (GET parameters)."""
    initial: dict[str, Any] = {}
    if params.get("name"):
        initial["name"] = params["name"][:200]
    kind = params.get("kind")
    if kind in dict(KIND_CHOICES):
        initial["kind"] = kind
        raw = params.get("value") or ""
        if kind == "product":
            initial["product"] = raw[:64]
        elif kind in ("percent", "amount"):
            try:
                initial["value"] = Decimal(raw)
            except ArithmeticError:
                pass
    segments = [s for s in params.getlist("segment") if s.isdigit()]
    if segments:
        initial["segments"] = segments
        initial["recipients"] = "segments"
    audience = params.get("audience", "")
    if audience.isdigit():
        initial["audience"] = audience
        initial["recipients"] = "audience"
    return initial


def _friendly(text: str, form: forms.Form) -> str:
    """A service's message in the form's words: "holdout_share must be between 0 and
    0.5" -> "“Hold-out group (%)” must be between 0 and 0.5"."""
    import re

    for key in sorted(SERVICE_FIELD, key=len, reverse=True):
        name = SERVICE_FIELD[key]
        if "_" not in key or name not in form.fields:
            continue  # plain words ("name", "value") are left as they are
        text = re.sub(rf"(?<![\w“]){re.escape(key)}(?![\w”])", f"“{form.fields[name].label}”", text)
    return text[:1].upper() + text[1:]


def form_errors_from(form: forms.Form, error: ApplicationError) -> bool:
    """Put a service's messages next to their fields; False when none matched."""
    named = dict((error.extra or {}).get("fields") or {})
    placed = False
    kind = form.cleaned_data.get("kind") if hasattr(form, "cleaned_data") else None
    for key, message in named.items():
        target = SERVICE_FIELD.get(key.split(".")[0], key)
        if target == "value" and kind == "product":
            target = "product"
        if target in form.fields:
            text = " ".join(str(m) for m in message) if isinstance(message, list) else message
            form.add_error(target, _friendly(str(text), form))
            placed = True
    return placed
