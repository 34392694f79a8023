"""The programme editor's forms: the programme's settings and its tiers as a
formset of name + threshold rows (blank rows to add a tier, a "Remove" box on
each row), turned into the dict `loyalty.services.program_save` takes; the
service's field keys ("tiers[1].threshold", "period_days") are put back next to
the fields they name."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from core.exceptions import ApplicationError

from .models import LoyaltyMetric

BLANK_ROWS = 3
MAX_ROWS = 20


def plain_decimal(value: Decimal | None) -> Decimal | None:
    """200.0000 -> 200, 12.5000 -> 12.50: what a number field can show and the form's
    two decimal places accept, so an unchanged save sends back the same amount."""
    if value is None:
        return None
    value = Decimal(value)
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.quantize(Decimal("0.01"))


class ProgramForm(forms.Form):
    metric = forms.ChoiceField(
        label="Tiers are reached by",
        choices=LoyaltyMetric.choices,
        widget=forms.RadioSelect,
        initial=LoyaltyMetric.SPEND,
    )
    period_days = forms.IntegerField(
        label="Counted over the last (days)",
        min_value=1,
        max_value=3660,
        initial=365,
        help_text="A rolling period: 365 counts the last 12 months, ending on your latest "
        "orders, in your time zone.",
    )
    points_per_unit = forms.DecimalField(
        label="Points earned per 1 spent",
        min_value=0,
        max_digits=10,
        decimal_places=2,
        initial=1,
        help_text="Returns take the points back.",
    )
    reward_points = forms.IntegerField(
        label="Points needed for a reward", min_value=1, max_value=10_000_000, initial=500
    )
    reward_value = forms.DecimalField(
        label="Reward: amount off",
        min_value=Decimal("0.01"),
        max_digits=14,
        decimal_places=2,
        initial=5,
        help_text="The customer gets a code for this amount off their next order.",
    )
    active = forms.BooleanField(
        label="The programme is on",
        required=False,
        initial=True,
        help_text="When off, tiers and points are kept but not updated.",
    )

    def __init__(self, *args, currency: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        if currency:
            self.fields["points_per_unit"].label = f"Points earned per 1 {currency} spent"
            self.fields["reward_value"].label = f"Reward: amount off ({currency})"


class TierForm(forms.Form):
    name = forms.CharField(label="Tier name", max_length=60, required=False, strip=True)
    threshold = forms.DecimalField(
        label="Reached at", min_value=0, max_digits=14, decimal_places=2, required=False
    )

    def clean(self):
        data = super().clean() or {}
        name = data.get("name")
        threshold = data.get("threshold")
        if data.get("DELETE"):
            return data
        if name and threshold is None:
            self.add_error("threshold", "Say when customers reach this tier (0 for everyone).")
        if threshold is not None and not name:
            self.add_error("name", "Give this tier a name, or clear its amount.")
        return data


TierFormSet = forms.formset_factory(
    TierForm, extra=BLANK_ROWS, can_delete=True, max_num=MAX_ROWS, absolute_max=MAX_ROWS
)


def tier_initial(tiers) -> list[dict[str, Any]]:
    return [{"name": t.name, "threshold": plain_decimal(t.threshold)} for t in tiers]


def program_initial(program) -> dict[str, Any]:
    return {
        "metric": program.metric,
        "period_days": program.period_days,
        "points_per_unit": plain_decimal(program.points_per_unit),
        "reward_points": program.reward_points,
        "reward_value": plain_decimal(program.reward_value),
        "active": program.active,
    }


def kept_rows(formset) -> list[forms.Form]:
    """The formset's rows that name a tier and are not removed, lowest first (the
    owner may list them in any order; the service wants them lowest first, and its
    "tiers[i]" keys then name these rows)."""
    rows = [
        f for f in formset.forms if f.cleaned_data.get("name") and not f.cleaned_data.get("DELETE")
    ]
    return sorted(rows, key=lambda f: f.cleaned_data.get("threshold") or 0)


def program_data(form: ProgramForm, formset) -> dict[str, Any]:
    """The service's input from the two (valid) forms."""
    data = dict(form.cleaned_data)
    data["tiers"] = [
        {"name": f.cleaned_data["name"], "threshold": f.cleaned_data["threshold"]}
        for f in kept_rows(formset)
    ]
    return data


def unchanged(form: ProgramForm, formset) -> bool:
    return not form.has_changed() and not any(f.has_changed() for f in formset.forms)


def errors_from(exc: ApplicationError, form: ProgramForm, formset) -> bool:
    """Put the service's field messages next to their fields; False when none matched."""
    fields = (exc.extra or {}).get("fields") or {}
    rows = kept_rows(formset)
    placed = False
    for key, message in fields.items():
        text = " ".join(message) if isinstance(message, list) else str(message)
        if key in form.fields:
            form.add_error(key, text)
            placed = True
            continue
        if key.startswith("tiers"):
            index, _, name = key[len("tiers") :].partition(".")
            try:
                row = rows[int(index.strip("[]"))]
            except (ValueError, IndexError):
                row = None
            if row is not None and name in row.fields:
                row.add_error(name, text)
                placed = True
            elif row is not None:
                row.add_error("name", text)
                placed = True
            else:
                formset._non_form_errors = formset.error_class([text])
                placed = True
    return placed


def describe_errors(*forms_: forms.Form) -> None:
    """aria-invalid and aria-describedby on every field with an error, pointing at
    the message the template draws with the id "<field id>-error"."""
    for form in forms_:
        for name in form.errors:
            if name not in form.fields:
                continue
            bound = form[name]
            attrs = form.fields[name].widget.attrs
            attrs["aria-invalid"] = "true"
            described = [f"{bound.auto_id}-error"]
            if form.fields[name].help_text:
                described.append(f"{bound.auto_id}_helptext")
            attrs["aria-describedby"] = " ".join(described)
