"""Automation pages (mounted with the campaigns at /campaigns/automations/, namespace
`campaigns`): the list with each trigger in plain words and its figures, the
builder (new and edit), an automation's page (trigger, message, on/off, results)
and delete.

Views are thin: the form only shapes what the owner typed into the data the
services take (the API's keys: `trigger`, `message`, `active`); the rules live in
campaigns/automations.py, and each `ApplicationError` is put next to its field in
plain words. Objects come through the scoped manager with `get_object_or_404`, so
another organisation's ids answer 404.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Count, Q, Sum
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import org_required
from core.exceptions import ApplicationError

from . import automations
from .models import Automation, Delivery, DeliveryStatus, TriggerKind
from .views import _audiences, _pct, _segments

# each trigger kind: its label on the radio card and a sentence saying what it does
KIND_CARDS = {
    TriggerKind.ENTERS_SEGMENT: (
        "Joins a segment",
        "When a customer moves into a segment, for example becomes a loyal regular.",
    ),
    TriggerKind.ENTERS_AUDIENCE: (
        "Joins a saved audience",
        "When a customer starts to match one of your saved audiences.",
    ),
    TriggerKind.CHURN_HIGH: (
        "Likely to stop buying",
        "When a customer becomes likely to stop buying from you.",
    ),
    TriggerKind.DAYS_AFTER_FIRST_ORDER: (
        "Days after the first order",
        "A set number of days after a customer's first order, such as a thank-you.",
    ),
    TriggerKind.NEXT_ORDER_OVERDUE: (
        "Next order is late",
        "When a customer has not ordered by the time they usually would.",
    ),
    TriggerKind.BIRTHDAY: ("Birthday", "On the customer's birthday, in their own time zone."),
    TriggerKind.BACK_IN_STOCK: (
        "Back in stock",
        "When a product is back in stock, to the customers who bought it or looked at it.",
    ),
    TriggerKind.TIER_CHANGED: (
        "Loyalty tier changes",
        "When a customer moves to another loyalty tier.",
    ),
}
PRODUCT_CHOICES_MAX = 1000

# the services' field names (as the API knows them) -> the form's fields; days
# depends on the kind (see _form_errors)
SERVICE_FIELD = {
    "name": "name",
    "trigger": "kind",
    "trigger.kind": "kind",
    "trigger.params": "kind",
    "trigger.params.segment_id": "segment",
    "trigger.params.audience_id": "audience",
    "trigger.params.skus": "product",
    "trigger.params.tier": "tier",
    "message": "body",
    "message.channel": "channel",
    "message.subject": "subject",
    "message.body": "body",
    "message.conversion_window_days": "conversion_window_days",
}


class AutomationForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=200,
        help_text="For you only, for example “Welcome new regulars”.",
    )
    kind = forms.ChoiceField(
        label="Send it when",
        choices=[(k.value, KIND_CARDS[k][0]) for k in TriggerKind],
        widget=forms.RadioSelect,
        initial=TriggerKind.ENTERS_SEGMENT,
    )
    segment = forms.ChoiceField(label="Segment", required=False)
    audience = forms.ChoiceField(label="Audience", required=False)
    first_order_days = forms.IntegerField(
        label="Days after the first order", required=False, min_value=0, max_value=3650
    )
    overdue_days = forms.IntegerField(
        label="Days late",
        required=False,
        min_value=0,
        max_value=365,
        initial=0,
        help_text="0 sends on the day the order was expected.",
    )
    product = forms.ChoiceField(
        label="Product",
        required=False,
        help_text="Leave on “Any product” to send whenever something they bought is back.",
    )
    tier = forms.CharField(
        label="Only when they reach the tier",
        required=False,
        max_length=200,
        help_text="A move up into this tier (such as Gold). Leave empty to send on every "
        "change of tier, up or down.",
    )
    channel = forms.ChoiceField(
        label="Send by",
        choices=[("email", "Email"), ("sms", "SMS")],
        widget=forms.RadioSelect,
        initial="email",
    )
    subject = forms.CharField(label="Subject", max_length=500, required=False)
    body = forms.CharField(label="Message", required=False, widget=forms.Textarea)
    conversion_window_days = forms.IntegerField(
        label="Count an order for this automation for this many days after an open or click",
        min_value=1,
        max_value=90,
        initial=5,
    )
    active = forms.BooleanField(label="Switch it on now", required=False, initial=True)

    def __init__(self, *args, segments=(), audiences=(), products=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["segment"].choices = [("", "Choose a segment")] + [
            (str(s.pk), s.name) for s in segments
        ]
        self.fields["audience"].choices = [("", "Choose an audience")] + [
            (str(a.pk), a.name) for a in audiences
        ]
        self.fields["product"].choices = [("", "Any product")] + [
            (p.sku, f"{p.name} ({p.sku})" if p.name else p.sku) for p in products
        ]

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind == TriggerKind.ENTERS_SEGMENT and not data.get("segment"):
            self.add_error("segment", "Choose the segment to watch.")
        if kind == TriggerKind.ENTERS_AUDIENCE and not data.get("audience"):
            self.add_error("audience", "Choose the audience to watch.")
        if kind == TriggerKind.DAYS_AFTER_FIRST_ORDER and data.get("first_order_days") is None:
            if "first_order_days" not in self.errors:
                self.add_error("first_order_days", "Enter a number of days, such as 30.")
        return data

    def service_data(self) -> dict[str, Any]:
        d = self.cleaned_data
        kind = d["kind"]
        params: dict[str, Any] = {}
        if kind == TriggerKind.ENTERS_SEGMENT:
            params["segment_id"] = int(d["segment"])
        elif kind == TriggerKind.ENTERS_AUDIENCE:
            params["audience_id"] = int(d["audience"])
        elif kind == TriggerKind.DAYS_AFTER_FIRST_ORDER:
            params["days"] = d["first_order_days"]
        elif kind == TriggerKind.NEXT_ORDER_OVERDUE:
            params["days"] = d.get("overdue_days") or 0
        elif kind == TriggerKind.BACK_IN_STOCK and d.get("product"):
            params["skus"] = [d["product"]]
        elif kind == TriggerKind.TIER_CHANGED and (d.get("tier") or "").strip():
            params["tier"] = d["tier"].strip()
        return {
            "name": d["name"],
            "trigger": {"kind": kind, "params": params},
            "message": {
                "channel": d["channel"],
                "subject": (d.get("subject") or "") if d["channel"] == "email" else "",
                "body": d.get("body") or "",
                "conversion_window_days": d["conversion_window_days"],
            },
        }


def _initial(automation: Automation) -> dict[str, Any]:
    params = automation.trigger_params or {}
    kind = automation.trigger_kind
    skus = params.get("skus") or []
    return {
        "name": automation.name,
        "kind": kind,
        "segment": str(params.get("segment_id", "")),
        "audience": str(params.get("audience_id", "")),
        "first_order_days": params.get("days")
        if kind == TriggerKind.DAYS_AFTER_FIRST_ORDER
        else None,
        "overdue_days": params.get("days", 0) if kind == TriggerKind.NEXT_ORDER_OVERDUE else 0,
        "product": skus[0] if len(skus) == 1 else "",
        "tier": params.get("tier", ""),
        "channel": automation.channel,
        "subject": automation.subject,
        "body": automation.body,
        "conversion_window_days": automation.conversion_window_days,
        "active": automation.active,
    }


def _plain(key: str, message: str) -> str:
    """The services name fields the API's way ("trigger.params.days must be …"); on
    the page the message sits next to its field, so the field is "This"."""
    if message.startswith(key + " "):
        return "This" + message[len(key) :]
    return message.replace("The body", "The message", 1)


def _form_errors(form: AutomationForm, error: ApplicationError) -> bool:
    named = dict((error.extra or {}).get("fields") or {})
    kind = form.cleaned_data.get("kind")
    days_field = "overdue_days" if kind == TriggerKind.NEXT_ORDER_OVERDUE else "first_order_days"
    placed = False
    for key, message in named.items():
        target = days_field if key == "trigger.params.days" else SERVICE_FIELD.get(key)
        if target in form.fields:
            text = error.message if key in ("message.subject", "message.body") else message
            form.add_error(target, _plain(key, str(text)))
            placed = True
    return placed


def _products():
    from customers.models import Product

    return list(Product.objects.order_by("name", "sku")[:PRODUCT_CHOICES_MAX])


def _automation(pk: int) -> Automation:
    return get_object_or_404(Automation.objects.all(), pk=pk)


# --- words --------------------------------------------------------------------------
def _days(n: int) -> str:
    return f"{n} day{'s' if n != 1 else ''}"


def trigger_words(automation: Automation, names: dict[str, dict[int, str]]) -> str:
    """The trigger as a sentence: “When a customer enters “Loyal Regulars””."""
    kind, params = automation.trigger_kind, automation.trigger_params or {}
    if kind == TriggerKind.ENTERS_SEGMENT:
        sid = params.get("segment_id")
        return f"When a customer enters “{names['segments'].get(sid, 'a removed segment')}”"
    if kind == TriggerKind.ENTERS_AUDIENCE:
        aid = params.get("audience_id")
        name = names["audiences"].get(aid, "a removed audience")
        return f"When a customer joins the audience “{name}”"
    if kind == TriggerKind.CHURN_HIGH:
        return "When a customer becomes likely to stop buying"
    if kind == TriggerKind.DAYS_AFTER_FIRST_ORDER:
        days = int(params.get("days", 0))
        return f"{_days(days)} after their first order" if days else "On their first order"
    if kind == TriggerKind.NEXT_ORDER_OVERDUE:
        days = int(params.get("days", 0))
        if days:
            return f"When their next order is {_days(days)} later than expected"
        return "When their next order is later than expected"
    if kind == TriggerKind.BIRTHDAY:
        return "On their birthday"
    if kind == TriggerKind.BACK_IN_STOCK:
        skus = params.get("skus") or []
        if skus:
            shown = ", ".join(f"“{names['products'].get(s, s)}”" for s in skus)
            return f"When {shown} is back in stock, to those who bought it or looked at it"
        return "When a product they bought or looked at is back in stock"
    if kind == TriggerKind.TIER_CHANGED:
        tier = params.get("tier")
        return (
            f"When they reach the loyalty tier “{tier}”"
            if tier
            else "When their loyalty tier changes"
        )
    return automation.get_trigger_kind_display()


def _names(rows: list[Automation]) -> dict[str, dict]:
    from audiences.models import Audience
    from customers.models import Product
    from segmentation.models import Segment

    def ids(key: str) -> set:
        return {a.trigger_params.get(key) for a in rows if a.trigger_params.get(key)}

    skus = {s for a in rows for s in (a.trigger_params.get("skus") or [])}
    return {
        "segments": dict(
            Segment.objects.filter(pk__in=ids("segment_id")).values_list("pk", "name")
        ),
        "audiences": dict(
            Audience.objects.filter(pk__in=ids("audience_id")).values_list("pk", "name")
        ),
        "products": {
            sku: name or sku
            for sku, name in Product.objects.filter(sku__in=skus).values_list("sku", "name")
        },
    }


# --- the list -----------------------------------------------------------------------
@org_required
@require_GET
def automation_list(request):
    rows = list(Automation.objects.order_by("-created_at", "-id"))
    figures = {
        f["campaign__automation_id"]: f
        for f in Delivery.objects.filter(campaign__automation__in=[a.pk for a in rows])
        .values("campaign__automation_id")
        .annotate(
            sent=Count("id", filter=Q(status__in=(DeliveryStatus.SENT, DeliveryStatus.BOUNCED))),
            converted=Count("id", filter=Q(converted_at__isnull=False)),
            revenue=Sum("revenue"),
        )
    }
    names = _names(rows)
    return render(
        request,
        "campaigns/automations.html",
        {
            "rows": [
                {
                    "automation": a,
                    "trigger": trigger_words(a, names),
                    "sent": figures.get(a.pk, {}).get("sent", 0),
                    "converted": figures.get(a.pk, {}).get("converted", 0),
                    "revenue": figures.get(a.pk, {}).get("revenue") or 0,
                }
                for a in rows
            ],
            "currency": request.organization.currency,
        },
    )


# --- the builder --------------------------------------------------------------------
def _prefill(query) -> dict[str, str] | None:
    """A new automation's trigger from the link that opened the builder (the loyalty
    page's "create an automation": `?kind=tier_changed&tier=Gold`)."""
    kind = query.get("kind", "")
    if kind not in TriggerKind.values:
        return None
    initial = {"kind": kind}
    if kind == TriggerKind.TIER_CHANGED and query.get("tier"):
        initial["tier"] = query["tier"].strip()[:200]
    return initial


def _builder(request, automation: Automation | None):
    segments, audiences, products = _segments(), _audiences(), _products()
    error = None
    if request.method == "POST":
        form = AutomationForm(
            request.POST, segments=segments, audiences=audiences, products=products
        )
        if form.is_valid():
            data = form.service_data()
            try:
                if automation is None:
                    data["active"] = form.cleaned_data["active"]
                    saved = automations.automation_create(
                        organization=request.organization, data=data, user=request.user
                    )
                    messages.success(
                        request,
                        f"Automation “{saved.name}” saved"
                        + (" and switched on." if saved.active else ". It is off for now."),
                    )
                else:
                    saved = automations.automation_update(
                        organization=request.organization, automation=automation, data=data
                    )
                    messages.success(request, f"Automation “{saved.name}” saved.")
                return redirect("campaigns:automation_detail", saved.pk)
            except ApplicationError as exc:
                if not _form_errors(form, exc):
                    error = exc.message
                else:
                    error = "Some answers need a look: see the notes next to the fields."
        else:
            error = "Some answers need a look: see the notes next to the fields."
    else:
        form = AutomationForm(
            initial=_initial(automation) if automation else _prefill(request.GET),
            segments=segments,
            audiences=audiences,
            products=products,
        )
    kind = form["kind"].value() or TriggerKind.ENTERS_SEGMENT
    cards = [
        {
            "value": k.value,
            "label": KIND_CARDS[k][0],
            "text": KIND_CARDS[k][1],
            "checked": k == kind,
        }
        for k in TriggerKind
    ]
    return render(
        request,
        "campaigns/automation_form.html",
        {
            "form": form,
            "automation": automation,
            "error": error,
            "cards": cards,
            "has_segments": bool(segments),
            "has_audiences": bool(audiences),
        },
        status=400 if request.method == "POST" else 200,
    )


@org_required(write=True)
@require_http_methods(["GET", "POST"])
def automation_new(request):
    return _builder(request, None)


@org_required(write=True)
@require_http_methods(["GET", "POST"])
def automation_edit(request, pk: int):
    return _builder(request, _automation(pk))


# --- an automation's page -----------------------------------------------------------
def _results(automation: Automation) -> dict[str, Any]:
    figures = automations.automation_stats(automation)
    figures["conversion_rate_words"] = _pct(figures.get("conversion_rate"))
    for group in figures["by_segment"]:
        group["rate_words"] = _pct(group["conversion_rate"])
    return figures


@org_required
@require_GET
def automation_detail(request, pk: int):
    automation = _automation(pk)
    return render(
        request,
        "campaigns/automation_detail.html",
        {
            "automation": automation,
            "trigger": trigger_words(automation, _names([automation])),
            "results": _results(automation),
            "currency": request.organization.currency,
        },
    )


@org_required(write=True)
@require_POST
def automation_toggle(request, pk: int):
    automation = _automation(pk)
    try:
        saved = automations.automation_update(
            organization=request.organization,
            automation=automation,
            data={"active": not automation.active},
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        if saved.active:
            messages.success(
                request,
                f"“{saved.name}” is on. It sends for what happens from now on, not before.",
            )
        else:
            messages.success(request, f"“{saved.name}” is off. Nothing more is sent.")
    return redirect("campaigns:automation_detail", automation.pk)


@org_required(write=True)
@require_POST
def automation_delete(request, pk: int):
    automation = _automation(pk)
    automations.automation_delete(organization=request.organization, automation=automation)
    messages.success(request, f"Automation “{automation.name}” deleted.")
    return redirect("campaigns:automations")
