"""Forms of the campaign pages. They only shape what the owner typed into the data
the services take (the same keys as the API); the rules and their messages live in
services.py, and `form_errors_from` puts a service's message next to its field."""

from __future__ import annotations

from typing import Any

from django import forms

from core.exceptions import ApplicationError

SCHEDULE_CHOICES = [
    ("now", "When I press “Send now”"),
    ("at", "At a date and time"),
    ("best_hour", "At each customer's best hour (from when they usually order or open)"),
]
ALLOCATION_CHOICES = [
    ("fixed", "Fixed: split evenly between the A/B versions"),
    ("thompson", "Send more to the better version as results arrive"),
]
RECIPIENT_CHOICES = [("segments", "Segments"), ("audience", "A saved audience")]

# the services' field names (as the API knows them) -> the form's fields
SERVICE_FIELD = {
    "segment_ids": "segments",
    "audience_id": "audience",
    "schedule": "send_at",
    "holdout_share": "holdout_percent",
    "conversion_window_days": "conversion_window_days",
    "offer_id": "offer",
    "survey_id": "survey",
    "cap_messages": "cap_messages",
    "cap_days": "cap_days",
}


class CampaignForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    goal = forms.CharField(
        label="Goal",
        max_length=300,
        required=False,
        help_text="What should this campaign achieve? For example “bring back lapsed buyers”.",
    )
    channel = forms.ChoiceField(
        label="Send by",
        choices=[("email", "Email"), ("sms", "SMS")],
        widget=forms.RadioSelect,
        initial="email",
    )
    recipients = forms.ChoiceField(
        label="Send to",
        choices=RECIPIENT_CHOICES,
        widget=forms.RadioSelect,
        initial="segments",
    )
    segments = forms.MultipleChoiceField(
        label="Segments", required=False, widget=forms.CheckboxSelectMultiple
    )
    audience = forms.ChoiceField(label="Audience", required=False)
    offer = forms.ChoiceField(
        label="Offer",
        required=False,
        help_text="Each customer gets their own code from the offer through "
        "{{ offer_code }} or {% offer %}. Only customers given a code get the campaign: "
        "the offer's hold-out and customers outside it are left out.",
    )
    survey = forms.ChoiceField(
        label="Include a survey",
        required=False,
        help_text="Write {{ survey_link }} in the message: each customer gets their own "
        "link, so their answers are tied to them and count in the survey's results.",
    )
    subject = forms.CharField(label="Subject", max_length=500, required=False)
    body = forms.CharField(label="Message", required=False, widget=forms.Textarea)
    schedule = forms.ChoiceField(
        label="When to send", choices=SCHEDULE_CHOICES, widget=forms.RadioSelect, initial="now"
    )
    send_at = forms.DateTimeField(
        label="Date and time",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    holdout_percent = forms.IntegerField(
        label="Hold-out group (%)",
        min_value=0,
        max_value=50,
        initial=0,
        help_text="A share of the recipients who get nothing, to measure what the campaign "
        "added over doing nothing. 10% is a good start; 0 turns it off.",
    )
    allocation = forms.ChoiceField(
        label="A/B versions", choices=ALLOCATION_CHOICES, widget=forms.RadioSelect, initial="fixed"
    )
    conversion_window_days = forms.IntegerField(
        label="Count an order as a result for (days)",
        min_value=1,
        max_value=90,
        initial=5,
        help_text="An order within this many days after opening or clicking counts for the "
        "campaign.",
    )

    def __init__(self, *args, segments=(), audiences=(), offers=(), surveys=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["survey"].choices = [("", "No survey")] + [
            (str(s.pk), s.name + (" (closed)" if s.status != "open" else "")) for s in surveys
        ]
        self.fields["offer"].choices = [("", "No offer")] + [
            (str(o.pk), o.name + (" (being built)" if o.status == "building" else ""))
            for o in offers
        ]
        self.fields["segments"].choices = [
            (str(s.pk), f"{s.name} ({s.size:,} customers)") for s in segments
        ]
        self.fields["audience"].choices = [("", "Choose an audience")] + [
            (str(a.pk), f"{a.name} ({a.size:,} customers)") for a in audiences
        ]

    def clean(self):
        data = super().clean()
        if data.get("schedule") == "at" and not data.get("send_at"):
            self.add_error("send_at", "Give the date and time to send it.")
        if data.get("recipients") == "segments" and not data.get("segments"):
            self.add_error("segments", "Tick at least one segment.")
        if data.get("recipients") == "audience" and not data.get("audience"):
            self.add_error("audience", "Choose the audience.")
        return data

    def service_data(self) -> dict[str, Any]:
        d = self.cleaned_data
        out: dict[str, Any] = {
            "name": d["name"],
            "goal": d.get("goal") or "",
            "channel": d["channel"],
            "subject": (d.get("subject") or "") if d["channel"] == "email" else "",
            "body": d.get("body") or "",
            "holdout_share": (d.get("holdout_percent") or 0) / 100,
            "allocation": d["allocation"],
            "conversion_window_days": d["conversion_window_days"],
            "offer_id": int(d["offer"]) if d.get("offer") else None,
            "survey_id": int(d["survey"]) if d.get("survey") else None,
        }
        if d["recipients"] == "audience":
            out["audience_id"] = int(d["audience"]) if d.get("audience") else None
            out["segment_ids"] = []
        else:
            out["segment_ids"] = [int(i) for i in d.get("segments") or []]
            out["audience_id"] = None
        if d["schedule"] == "best_hour":
            out["schedule"] = "best_hour"
        elif d["schedule"] == "at" and d.get("send_at"):
            # the organisation's zone: the services read a zone-less time that way
            out["schedule"] = {"at": d["send_at"].replace(tzinfo=None).isoformat()}
        else:
            out["schedule"] = None
        return out


def campaign_initial(campaign, organization) -> dict[str, Any]:
    import zoneinfo

    schedule = "best_hour" if campaign.best_hour else ("at" if campaign.send_at else "now")
    send_at = None
    if campaign.send_at:
        zone = zoneinfo.ZoneInfo(organization.time_zone or "UTC")
        send_at = campaign.send_at.astimezone(zone).replace(tzinfo=None)
    return {
        "name": campaign.name,
        "goal": campaign.goal,
        "channel": campaign.channel,
        "recipients": "audience" if campaign.audience_id else "segments",
        "segments": [str(i) for i in campaign.segment_ids],
        "audience": str(campaign.audience_id or ""),
        "subject": campaign.subject,
        "body": campaign.body,
        "schedule": schedule,
        "send_at": send_at,
        "holdout_percent": round(campaign.holdout_share * 100),
        "allocation": campaign.allocation,
        "conversion_window_days": campaign.conversion_window_days,
        "offer": str(campaign.offer_id or ""),
        "survey": str(campaign.survey_id or ""),
    }


class VariantForm(forms.Form):
    KIND_CHOICES = [
        ("persona", "For a persona"),
        ("segments", "For segments"),
        ("arm", "An A/B version for everyone else"),
    ]
    kind = forms.ChoiceField(
        label="Who is it for", choices=KIND_CHOICES, widget=forms.RadioSelect, initial="persona"
    )
    name = forms.CharField(label="Name", max_length=200)
    persona = forms.ChoiceField(label="Persona", required=False)
    segments = forms.MultipleChoiceField(
        label="Segments", required=False, widget=forms.CheckboxSelectMultiple
    )
    draft = forms.BooleanField(
        label="Write a starter draft from the persona (you edit it before sending)",
        required=False,
    )
    subject = forms.CharField(label="Subject", max_length=500, required=False)
    body = forms.CharField(label="Message", required=False, widget=forms.Textarea)

    def __init__(self, *args, segments=(), personas=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["persona"].choices = [("", "Choose a persona")] + [
            (str(p.pk), f"{p.name} ({p.segment.name})") for p in personas
        ]
        self.fields["segments"].choices = [(str(s.pk), s.name) for s in segments]

    def clean(self):
        data = super().clean()
        if not data.get("draft") and not (data.get("body") or "").strip():
            self.add_error("body", "Write the message, or tick “Write a starter draft”.")
        if data.get("draft") and data.get("kind") != "persona":
            self.add_error("draft", "A starter draft is written from a persona: choose one.")
        return data

    def service_data(self) -> dict[str, Any]:
        d = self.cleaned_data
        out: dict[str, Any] = {"name": d["name"], "subject": d.get("subject") or ""}
        out["body"] = d.get("body") or ""
        if d["kind"] == "persona":
            out["persona_id"] = int(d["persona"]) if d.get("persona") else None
            if out["persona_id"] is None:
                raise ApplicationError(
                    "Choose the persona.", {"fields": {"persona_id": "Choose the persona."}}
                )
            out["draft"] = bool(d.get("draft"))
        elif d["kind"] == "segments":
            out["segment_ids"] = [int(i) for i in d.get("segments") or []]
            if not out["segment_ids"]:
                raise ApplicationError(
                    "Choose at least one segment.",
                    {"fields": {"segment_ids": "Choose at least one segment."}},
                )
        return out


class SettingsForm(forms.Form):
    cap_messages = forms.IntegerField(
        label="At most this many messages", min_value=1, max_value=365, required=False
    )
    cap_days = forms.IntegerField(
        label="in this many days", min_value=1, max_value=365, required=False
    )
    quiet_start_hour = forms.TypedChoiceField(
        label="No SMS from", coerce=int, choices=[(h, f"{h:02d}:00") for h in range(24)]
    )
    quiet_end_hour = forms.TypedChoiceField(
        label="until", coerce=int, choices=[(h, f"{h:02d}:00") for h in range(24)]
    )
    from_name = forms.CharField(label="From name", max_length=200, required=False)
    reply_to = forms.EmailField(label="Replies go to", required=False)


def form_errors_from(form: forms.Form, error: ApplicationError, *, fields=None) -> bool:
    """Put a service's message next to its field (the services name fields the API's
    way, the template compiler as {"subject": [...]}); False when no field matched."""
    extra = error.extra or {}
    named = dict(extra.get("fields") or {})
    for key in ("subject", "body"):
        if key in extra and isinstance(extra[key], list):
            named[key] = " ".join(str(m) for m in extra[key])
    placed = False
    mapping = {**SERVICE_FIELD, **(fields or {})}
    for key, message in named.items():
        target = mapping.get(key, key)
        if target in form.fields:
            text = message
            if key in ("subject", "body"):  # "The body, line 2: ..." in the page's words
                text = error.message.replace("The body", "The message", 1)
            form.add_error(target, str(text))
            placed = True
    return placed


class VariantWordsForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    subject = forms.CharField(label="Subject", max_length=500, required=False)
    body = forms.CharField(label="Message", required=False, widget=forms.Textarea)
