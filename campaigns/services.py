"""Writing campaigns: create, change, delete, variants, and who a send reaches.

`campaign_recipients_plan` is the one place that decides, for every customer a
campaign names, whether they get it and which words: the pre-send summary
(`campaign_audit`) counts its answer and the send job (campaigns/sending.py)
writes it as Delivery rows. Rules, in order:

0. a campaign carrying an offer goes only to customers given a code: the offer's
   hold-out (`offer_holdout`) and customers outside the offer (`no_offer_code`) are
   skipped first, whatever else is true of them;
1. consent to the channel (`accepts_email` / `accepts_sms`), then an address for it;
2. suppressed: a hard bounce or a complaint on this channel earlier;
3. the frequency cap (CampaignSettings): no more than N messages in M days,
   counting every campaign (and automation) together;
4. the hold-out: a random `holdout_share` of the rest, drawn from a hash of the
   campaign and customer so it is the same on every run (restarts included);
5. words: the first-created variant whose segments or persona match, else an A/B
   arm (fixed shares, or Thompson sampling at send time), else the campaign's own;
6. when: now, or each customer's best hour; SMS in quiet hours waits for them to end.
"""

from __future__ import annotations

import hashlib
import logging
import math
import zoneinfo
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.tenancy import scope_check
from core.exceptions import ApplicationError, NotFound

from .models import (
    Allocation,
    Campaign,
    CampaignSettings,
    CampaignStatus,
    Channel,
    Delivery,
    DeliveryStatus,
    SkipReason,
    Variant,
)

log = logging.getLogger("segmenta.campaigns")

EDITABLE = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)
SENDABLE_STATUSES = (DeliveryStatus.SENDING, DeliveryStatus.SENT, DeliveryStatus.BOUNCED)
# the A/B plan's defaults: a 95% two-sided test with 80% power to see a relative lift
PLAN_ALPHA = 0.05
PLAN_POWER = 0.8
PLAN_BASELINE_RATE = 0.05
PLAN_RELATIVE_LIFT = 0.3


# --- small helpers ----------------------------------------------------------------------
def _fields_error(field_name: str, message: str, *, status: int = 400, code: str = "invalid"):
    return ApplicationError(message, {"fields": {field_name: message}}, status=status, code=code)


def _person(user):
    from accounts.actor import Actor

    return Actor.person(user)


def _not_editable(campaign: Campaign) -> ApplicationError:
    return ApplicationError(
        f"This campaign is {campaign.get_status_display().lower()}: it can be changed only "
        "while it is a draft or scheduled.",
        {"status": campaign.status},
        code="not_editable",
        status=409,
    )


def _clean_text(value: Any, name: str, *, max_length: int, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise _fields_error(name, f"{name} must be text.")
    value = value.strip() if name == "name" else value
    if required and not value.strip():
        raise _fields_error(name, f"{name} is required.")
    if len(value) > max_length:
        raise _fields_error(name, f"{name} is longer than {max_length:,} characters.")
    return value


def _clean_segment_ids(value: Any, name: str = "segment_ids") -> list[int]:
    from segmentation.models import Segment

    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise _fields_error(name, f"{name} must be a list of segment ids.")
    ids = list(dict.fromkeys(value))
    found = set(Segment.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing = [i for i in ids if i not in found]
    if missing:
        raise _fields_error(name, f"No such segment: {', '.join(map(str, missing))}.")
    return ids


def _clean_share(value: Any, name: str) -> float:
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise _fields_error(name, f"{name} must be a number between 0 and 1.") from None
    if not (0.0 <= share <= 1.0) or math.isnan(share):
        raise _fields_error(name, f"{name} must be a number between 0 and 1.")
    return share


def _check_template(*, channel: str, subject: str, body: str) -> None:
    """A template that cannot be compiled is refused now, naming the field."""
    if not (subject or body):
        return
    from .rendering import compile_message

    compile_message(channel=channel, subject=subject, body=body)


# --- campaigns --------------------------------------------------------------------------
def _apply(campaign: Campaign, data: dict[str, Any], *, creating: bool) -> None:
    from audiences.models import Audience

    if "name" in data or creating:
        campaign.name = _clean_text(data.get("name"), "name", max_length=200, required=True)
    if "channel" in data:
        if data["channel"] not in Channel.values:
            raise _fields_error("channel", "channel must be email or sms.")
        campaign.channel = data["channel"]
    if "goal" in data:
        campaign.goal = _clean_text(data["goal"], "goal", max_length=300)
    if "subject" in data:
        campaign.subject = _clean_text(data["subject"], "subject", max_length=500)
    if "body" in data:
        campaign.body = _clean_text(data["body"], "body", max_length=200_000)
    if "segment_ids" in data:
        campaign.segment_ids = _clean_segment_ids(data["segment_ids"])
        if campaign.segment_ids:
            campaign.audience = None
    if "audience_id" in data:
        audience_id = data["audience_id"]
        if audience_id in (None, ""):
            campaign.audience = None
        else:
            if not isinstance(audience_id, int) or isinstance(audience_id, bool):
                raise _fields_error("audience_id", "audience_id must be an audience id.")
            audience = Audience.objects.filter(pk=audience_id).first()
            if audience is None:
                raise _fields_error("audience_id", f"No such audience: {audience_id}.")
            campaign.audience = audience
            campaign.segment_ids = []
    if campaign.segment_ids and campaign.audience_id and "audience_id" in data:
        raise _fields_error("audience_id", "Give segment_ids or audience_id, not both.")
    if "schedule" in data:
        _apply_schedule(campaign, data["schedule"])
    if "holdout_share" in data:
        share = _clean_share(data["holdout_share"], "holdout_share")
        if share > 0.5:
            raise _fields_error("holdout_share", "holdout_share must be at most 0.5.")
        campaign.holdout_share = share
    if "allocation" in data:
        if data["allocation"] not in Allocation.values:
            raise _fields_error("allocation", "allocation must be fixed or thompson.")
        campaign.allocation = data["allocation"]
    if "conversion_window_days" in data:
        days = data["conversion_window_days"]
        if not isinstance(days, int) or isinstance(days, bool) or not (1 <= days <= 90):
            raise _fields_error(
                "conversion_window_days", "conversion_window_days must be 1 to 90 days."
            )
        campaign.conversion_window_days = days
    if "offer_id" in data:
        campaign.offer_id = _clean_offer_id(data["offer_id"], current=campaign.offer_id)
    if "survey_id" in data:
        campaign.survey_id = _clean_survey_id(data["survey_id"], current=campaign.survey_id)
    _check_template(channel=campaign.channel, subject=campaign.subject, body=campaign.body)
    _check_survey_link(campaign, campaign.body)


def _clean_offer_id(value: Any, *, current: int | None) -> int | None:
    """An offer of this organisation a campaign can carry: built or being built, and not
    the loyalty programme's hidden reward offer. The offer a campaign carries already is
    kept as it is (saving an unchanged campaign never fails on it); sending checks it."""
    from offers.models import Offer, OfferStatus

    if value in (None, ""):
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fields_error("offer_id", "offer_id must be an offer id or null.")
    if current is not None and value == current:
        return value
    offer = Offer.objects.filter(pk=value).first()  # scoped: another organisation's is absent
    if offer is None or offer.is_reward:
        raise _fields_error("offer_id", f"No such offer: {value}.")
    if offer.status not in (OfferStatus.READY, OfferStatus.BUILDING):
        raise _fields_error(
            "offer_id",
            f"The offer “{offer.name}” could not be built, so it has no codes to send; "
            "fix it on the offer's page first.",
        )
    return value


def _clean_survey_id(value: Any, *, current: int | None) -> int | None:
    """An open survey of this organisation. The survey a campaign carries already is
    kept as it is (saving an unchanged campaign never fails on it); sending checks it."""
    from research.models import Survey, SurveyStatus

    if value in (None, ""):
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fields_error("survey_id", "survey_id must be a survey id or null.")
    if current is not None and value == current:
        return value
    # scoped: another organisation's is absent (and no column holds an id beyond 2^63)
    survey = Survey.objects.filter(pk=value).first() if 0 < value < 2**63 else None
    if survey is None:
        raise _fields_error("survey_id", f"No such survey: {value}.")
    if survey.status != SurveyStatus.OPEN:
        raise _fields_error(
            "survey_id",
            f"The survey “{survey.name}” is closed, so it takes no answers: reopen it on "
            "its page, or choose an open survey.",
        )
    return value


def campaign_survey(campaign: Campaign):
    """The survey the campaign carries (scoped), or None."""
    from research.models import Survey

    if not campaign.survey_id:
        return None
    return Survey.objects.filter(pk=campaign.survey_id).first()


def _check_survey_link(campaign: Campaign, body: str, *, field_name: str = "body") -> None:
    """A message of a campaign carrying a survey must hold `{{ survey_link }}` (else
    nobody could answer it), and `{{ survey_link }}` needs a survey (else it is empty).
    An empty body is left for later: sending needs words anyway."""
    from .rendering import uses_field

    if not (body or "").strip():
        return
    uses = uses_field(body, "survey_link", channel=campaign.channel)
    if campaign.survey_id and not uses:
        raise _fields_error(
            field_name,
            "This campaign carries a survey: put {{ survey_link }} in the message, where "
            "each customer gets their own link to it.",
        )
    if uses and not campaign.survey_id:
        raise _fields_error(
            "survey_id",
            "The message uses {{ survey_link }}: choose the survey it links to, or take "
            "{{ survey_link }} out of the message.",
        )


def campaign_survey_problem(campaign: Campaign) -> str | None:
    """Why the campaign's survey link cannot be sent now (the survey is closed, or was
    deleted while the message still links to it), or None."""
    from research.models import SurveyStatus

    from .rendering import uses_field

    if not campaign.survey_id:
        bodies = [campaign.body, *Variant.objects.filter(campaign=campaign).values_list(
            "body", flat=True
        )]  # fmt: skip
        if any(uses_field(b, "survey_link", channel=campaign.channel) for b in bodies if b):
            return (
                "The message links to a survey ({{ survey_link }}) but the campaign carries "
                "none (it may have been deleted): choose a survey, or take the link out."
            )
        return None
    survey = campaign_survey(campaign)
    if survey is None:
        return "The survey this campaign carries was deleted: choose another survey, or none."
    if survey.status != SurveyStatus.OPEN:
        return (
            f"The survey “{survey.name}” is closed, so its links would take no answers: "
            "reopen it, or choose another survey."
        )
    return None


def _check_survey(campaign: Campaign) -> None:
    """Refuse (409, naming `survey_id`) a send whose survey link would not work, and
    (400, naming `body`) one whose words leave the survey's link out."""
    problem = campaign_survey_problem(campaign)
    if problem:
        raise ApplicationError(
            problem,
            {"survey_id": campaign.survey_id, "fields": {"survey_id": problem}},
            code="survey_not_sendable",
            status=409,
        )
    if not campaign.survey_id:
        return
    _check_survey_link(campaign, campaign.body)
    for variant in Variant.objects.filter(campaign=campaign).only("name", "body"):
        try:
            _check_survey_link(campaign, variant.body)
        except ApplicationError:
            raise _fields_error(
                "body",
                f"The version “{variant.name}” leaves out {{{{ survey_link }}}}: add it, so "
                "its customers can answer the survey too.",
            ) from None


def campaign_offer(campaign: Campaign):
    """The offer the campaign carries (scoped), or None."""
    from offers.models import Offer

    if not campaign.offer_id:
        return None
    return Offer.objects.filter(pk=campaign.offer_id).first()


def _apply_schedule(campaign: Campaign, schedule: Any) -> None:
    """`null`/"now" sends when asked; `{"at": ISO time}` (the organisation's zone when
    it has none); `"best_hour"` or `{"best_hour": true}` each customer's best hour."""
    from django.utils.dateparse import parse_datetime

    campaign.best_hour = False
    campaign.send_at = None
    if schedule in (None, "", "now"):
        return
    if schedule == "best_hour" or (isinstance(schedule, dict) and schedule.get("best_hour")):
        campaign.best_hour = True
        return
    if not isinstance(schedule, dict) or "at" not in schedule:
        raise _fields_error("schedule", 'schedule must be {"at": time}, "best_hour" or null.')
    raw = schedule["at"]
    when = parse_datetime(raw) if isinstance(raw, str) else None
    if when is None:
        raise _fields_error("schedule", "schedule.at must be an ISO 8601 time.")
    if timezone.is_naive(when):
        tz = zoneinfo.ZoneInfo(campaign.organization.time_zone or "UTC")
        when = timezone.make_aware(when, tz)
    campaign.send_at = when


def campaign_create(*, organization, data: dict[str, Any], user=None) -> Campaign:
    scope_check(organization=organization)
    campaign = Campaign(organization=organization, created_by=_person(user))
    if "channel" not in data:
        raise _fields_error("channel", "channel is required (email or sms).")
    _apply(campaign, data, creating=True)
    if not campaign.segment_ids and not campaign.audience_id:
        raise _fields_error(
            "segment_ids", "Choose who gets it: segment_ids (a list) or audience_id."
        )
    campaign.save()  # a draft: `POST send` schedules it when its time is ahead
    log.info("campaign.created campaign_id=%s", campaign.pk)
    return campaign


def campaign_update(*, organization, campaign: Campaign, data: dict[str, Any]) -> Campaign:
    scope_check(organization=organization)
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if not locked.editable:
            raise _not_editable(locked)
        _apply(locked, data, creating=False)
        if not locked.segment_ids and not locked.audience_id:
            raise _fields_error(
                "segment_ids", "Choose who gets it: segment_ids (a list) or audience_id."
            )
        if locked.status == CampaignStatus.SCHEDULED and not locked.send_at:
            locked.status = CampaignStatus.DRAFT
        locked.save()
    return locked


def campaign_delete(*, organization, campaign: Campaign) -> None:
    scope_check(organization=organization)
    # the status test and the delete in one statement: a send claiming it meanwhile wins
    deleted, _ = Campaign.objects.filter(pk=campaign.pk, status__in=EDITABLE).delete()
    if not deleted:
        campaign.refresh_from_db()
        raise _not_editable(campaign)


def campaign_settings_get(*, organization) -> CampaignSettings:
    found = CampaignSettings.objects.filter(organization=organization).first()
    return found or CampaignSettings(organization=organization)


def campaign_settings_update(*, organization, data: dict[str, Any]) -> CampaignSettings:
    scope_check(organization=organization)
    current = campaign_settings_get(organization=organization)
    for key in ("cap_messages", "cap_days"):
        if key in data:
            value = data[key]
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 365
            ):
                raise _fields_error(key, f"{key} must be a whole number from 1 to 365, or null.")
            setattr(current, key, value)
    if (current.cap_messages is None) != (current.cap_days is None):
        raise _fields_error(
            "cap_days", "Set both cap_messages and cap_days for a frequency cap, or neither."
        )
    for key in ("quiet_start_hour", "quiet_end_hour"):
        if key in data:
            value = data[key]
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 23:
                raise _fields_error(key, f"{key} must be an hour from 0 to 23.")
            setattr(current, key, value)
    if "from_name" in data:
        current.from_name = _clean_text(data["from_name"], "from_name", max_length=200)
    if "reply_to" in data:
        from django.core.validators import validate_email

        value = _clean_text(data["reply_to"], "reply_to", max_length=254)
        if value:
            try:
                validate_email(value)
            except Exception:
                raise _fields_error("reply_to", "reply_to must be an email address.") from None
        current.reply_to = value
    current.save()
    return current


# --- variants ---------------------------------------------------------------------------
def variant_create(*, organization, campaign: Campaign, data: dict[str, Any], user=None) -> Variant:
    """A variant for segments or a persona, or an A/B arm (`share`). With
    `"draft": true` and a persona, the words are a starter draft written from the
    persona (marked `is_draft` until someone edits them)."""
    from segmentation.models import Persona

    scope_check(organization=organization)
    if not campaign.editable:
        raise _not_editable(campaign)
    variant = Variant(organization=organization, campaign=campaign)
    variant.name = _clean_text(data.get("name"), "name", max_length=200, required=True)
    variant.segment_ids = _clean_segment_ids(data.get("segment_ids"))
    persona_id = data.get("persona_id")
    if persona_id not in (None, ""):
        if not isinstance(persona_id, int) or isinstance(persona_id, bool):
            raise _fields_error("persona_id", "persona_id must be a persona id.")
        variant.persona = Persona.objects.filter(pk=persona_id).first()
        if variant.persona is None:
            raise _fields_error("persona_id", f"No such persona: {persona_id}.")
    if data.get("share") is not None:
        if variant.segment_ids or variant.persona_id:
            raise _fields_error(
                "share", "share is for A/B arms; a segment or persona variant has none."
            )
        variant.share = _clean_share(data["share"], "share")
    if data.get("draft"):
        if variant.persona is None:
            raise _fields_error("persona_id", "A starter draft is written from a persona.")
        from .drafts import draft_for_persona

        variant.subject, variant.body = draft_for_persona(
            variant.persona, channel=campaign.channel, goal=campaign.goal
        )
        if campaign.survey_id:
            variant.body = variant.body.rstrip() + "\n\nTell us what you think: {{ survey_link }}"
        variant.is_draft = True
    else:
        variant.subject = _clean_text(data.get("subject"), "subject", max_length=500)
        variant.body = _clean_text(data.get("body"), "body", max_length=200_000, required=True)
    _check_template(channel=campaign.channel, subject=variant.subject, body=variant.body)
    _check_survey_link(campaign, variant.body)
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if not locked.editable:
            raise _not_editable(locked)
        variant.save()
    return variant


# --- who gets it ------------------------------------------------------------------------
def _unit(*parts: Any) -> float:
    """A reproducible uniform number in [0, 1) for these parts (hold-out, arms)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def recipient_ids(campaign: Campaign) -> tuple[list[int], dict[int, int]]:
    """The customers a campaign names now, in order (an audience best first), and the
    first of the campaign's segments each is in (for results by segment)."""
    from audiences.models import AudienceMember
    from segmentation.models import Segment
    from segmentation.selectors import segment_members

    if campaign.audience_id:
        ids = list(
            AudienceMember.objects.filter(
                audience_id=campaign.audience_id, customer__erased_at__isnull=True
            )
            .order_by("rank", "customer_id")
            .values_list("customer_id", flat=True)
        )
        return ids, {}
    ordered: dict[int, None] = {}
    segment_of: dict[int, int] = {}
    segments = {s.pk: s for s in Segment.objects.filter(pk__in=campaign.segment_ids)}
    for segment_id in campaign.segment_ids:
        segment = segments.get(segment_id)
        if segment is None:
            continue
        for customer_id in segment_members(segment=segment).values_list("pk", flat=True):
            ordered.setdefault(customer_id, None)
            segment_of.setdefault(customer_id, segment_id)
    return list(ordered), segment_of


def _member_sets(segment_ids: set[int]) -> dict[int, set[int]]:
    from segmentation.models import Segment
    from segmentation.selectors import segment_members

    out: dict[int, set[int]] = {}
    for segment in Segment.objects.filter(pk__in=segment_ids):
        out[segment.pk] = set(segment_members(segment=segment).values_list("pk", flat=True))
    return out


@dataclass
class Decision:
    customer_id: int
    status: str
    skip_reason: str = ""
    to_address: str = ""
    variant_id: int | None = None
    segment_id: int | None = None
    persona_id: int | None = None
    scheduled_for: datetime | None = None


@dataclass
class RecipientPlan:
    decisions: list[Decision]
    counts: dict[str, int] = field(default_factory=dict)


def customer_zone(customer, organization) -> zoneinfo.ZoneInfo:
    """The customer's time zone where known (a `time_zone` field or attribute), else the
    organisation's."""
    name = getattr(customer, "time_zone", "") or (customer.attributes or {}).get("time_zone")
    for candidate in (name, organization.time_zone, "UTC"):
        if candidate and isinstance(candidate, str):
            try:
                return zoneinfo.ZoneInfo(candidate)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                continue
    return zoneinfo.ZoneInfo("UTC")


def quiet_until(when: datetime, zone, settings: CampaignSettings) -> datetime | None:
    """When SMS quiet hours that `when` falls in end (None when it is not in them)."""
    start, end = settings.quiet_start_hour, settings.quiet_end_hour
    if start == end:
        return None
    local = when.astimezone(zone)
    hour = local.hour
    if start > end:  # overnight, e.g. 21:00 to 09:00
        if not (hour >= start or hour < end):
            return None
        day = local.date() if hour < end else local.date() + timedelta(days=1)
    else:
        if not (start <= hour < end):
            return None
        day = local.date()
    return datetime(day.year, day.month, day.day, end, tzinfo=zone).astimezone(
        zoneinfo.ZoneInfo("UTC")
    )


def best_hours(customer_ids: list[int], zones: dict[int, Any]) -> dict[int, int]:
    """Each customer's most common order hour in their time zone (ties: the earliest)."""
    from customers.models import Order

    hours: dict[int, Counter] = {}
    rows = Order.objects.filter(customer_id__in=customer_ids, is_return=False).values_list(
        "customer_id", "ordered_at"
    )
    for customer_id, ordered_at in rows.iterator(chunk_size=5000):
        zone = zones.get(customer_id)
        if zone is None:
            continue
        hours.setdefault(customer_id, Counter())[ordered_at.astimezone(zone).hour] += 1
    return {
        cid: min(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        for cid, counter in hours.items()
    }


def next_at_hour(now: datetime, hour: int, zone) -> datetime:
    local = now.astimezone(zone)
    candidate = datetime(local.year, local.month, local.day, hour, tzinfo=zone)
    if candidate <= now:
        nxt = local.date() + timedelta(days=1)
        candidate = datetime(nxt.year, nxt.month, nxt.day, hour, tzinfo=zone)
    return candidate.astimezone(zoneinfo.ZoneInfo("UTC"))


def recent_message_counts(customer_ids: list[int], *, days: int, now: datetime) -> Counter:
    """Messages each customer was handed in the last `days` days, every campaign (and
    automation, which writes deliveries too) counted together."""
    since = now - timedelta(days=days)
    counts: Counter = Counter()
    rows = Delivery.objects.filter(
        customer_id__in=customer_ids, status__in=SENDABLE_STATUSES, sent_at__gte=since
    ).values_list("customer_id", flat=True)
    for customer_id in rows.iterator(chunk_size=5000):
        counts[customer_id] += 1
    return counts


def suppressed_ids(customer_ids: list[int], *, channel: str) -> dict[int, datetime]:
    """Customers with a hard bounce or a complaint on this channel, and when the latest
    was (a later opt-in, with a newer consent time, lifts it)."""
    from django.db.models import Max

    from customers.models import Event

    latest: dict[int, datetime] = {}
    bounced = (
        Delivery.objects.filter(
            customer_id__in=customer_ids, channel=channel, status=DeliveryStatus.BOUNCED
        )
        .values("customer_id")
        .annotate(at=Max("sent_at"), made=Max("created_at"))
    )
    for row in bounced:
        latest[row["customer_id"]] = row["at"] or row["made"]
    complained = (
        Event.objects.filter(customer_id__in=customer_ids, type="message_complained")
        .filter(Q(properties__channel=channel) | Q(properties__channel__isnull=True))
        .values("customer_id")
        .annotate(at=Max("occurred_at"))
    )
    for row in complained:
        cid = row["customer_id"]
        latest[cid] = max(latest[cid], row["at"]) if cid in latest else row["at"]
    return latest


def campaign_variants(campaign: Campaign) -> tuple[list[Variant], list[Variant]]:
    """(targeted variants in creation order, A/B arms in creation order)."""
    variants = list(Variant.objects.filter(campaign=campaign).order_by("created_at", "id"))
    targeted = [v for v in variants if v.segment_ids or v.persona_id]
    arms = [v for v in variants if not (v.segment_ids or v.persona_id)]
    return targeted, arms


def fixed_arm(campaign_id: int, customer_id: int, arms: list[Variant]) -> Variant:
    """An arm by share (arms without one split what the others leave equally)."""
    given = sum(v.share for v in arms if v.share is not None)
    unset = [v for v in arms if v.share is None]
    rest = max(0.0, 1.0 - given) / len(unset) if unset else 0.0
    weights = [v.share if v.share is not None else rest for v in arms]
    total = sum(weights) or 1.0
    u = _unit(campaign_id, customer_id, "arm") * total
    acc = 0.0
    for variant, weight in zip(arms, weights, strict=True):
        acc += weight
        if u < acc:
            return variant
    return arms[-1]


def _offer_codes(campaign: Campaign, customer_ids: list[int]) -> tuple[dict | None, set[int]]:
    """For a campaign carrying an offer: (the code of each of these customers who was
    given one, the offer's hold-out); (None, empty) without an offer. An offer that no
    longer exists gives nobody a code (and sending is refused: `campaign_offer_problem`)."""
    from offers.selectors import customer_codes, holdout_ids

    if not campaign.offer_id:
        return None, set()
    offer = campaign_offer(campaign)
    if offer is None:
        return {}, set()
    codes: dict[int, str] = {}
    for start in range(0, len(customer_ids), 5000):
        codes.update(customer_codes(offer=offer, customer_ids=customer_ids[start : start + 5000]))
    return codes, holdout_ids(offer=offer)


def campaign_recipients_plan(campaign: Campaign, *, now: datetime | None = None) -> RecipientPlan:
    """Every customer the campaign names, with what happens to them (module docstring)."""
    from customers.models import Customer
    from segmentation.models import Persona

    now = now or timezone.now()
    organization = campaign.organization
    ids, segment_of = recipient_ids(campaign)
    settings = campaign_settings_get(organization=organization)
    targeted, arms = campaign_variants(campaign)
    persona_segment = {
        p.pk: p.segment_id
        for p in Persona.objects.filter(pk__in=[v.persona_id for v in targeted if v.persona_id])
    }
    wanted = {s for v in targeted for s in v.segment_ids} | set(persona_segment.values())
    members = _member_sets(wanted)
    persona_of_segment = dict(
        Persona.objects.filter(segment_id__in=set(segment_of.values()))
        .order_by("id")
        .values_list("segment_id", "pk")
    )
    channel = campaign.channel
    suppressed = suppressed_ids(ids, channel=channel)
    capped: Counter = Counter()
    if settings.cap_messages and settings.cap_days:
        capped = recent_message_counts(ids, days=settings.cap_days, now=now)
    decisions: list[Decision] = []
    customers = {
        c.pk: c
        for c in Customer.objects.filter(pk__in=ids, erased_at__isnull=True).only(
            "pk",
            "email",
            "phone",
            "accepts_email",
            "accepts_sms",
            "attributes",
            "email_consent_at",
            "sms_consent_at",
        )
    }
    zones = {cid: customer_zone(c, organization) for cid, c in customers.items()}
    hours = best_hours(list(customers), zones) if campaign.best_hour else {}
    codes, offer_held = _offer_codes(campaign, list(customers))
    for customer_id in ids:
        customer = customers.get(customer_id)
        if customer is None:
            continue
        d = Decision(customer_id=customer_id, status=DeliveryStatus.QUEUED)
        d.segment_id = segment_of.get(customer_id)
        d.persona_id = persona_of_segment.get(d.segment_id) if d.segment_id else None
        consented = customer.accepts_email if channel == Channel.EMAIL else customer.accepts_sms
        address = (customer.email if channel == Channel.EMAIL else customer.phone).strip()
        decisions.append(d)
        if codes is not None and customer_id not in codes:
            d.status = DeliveryStatus.SKIPPED
            d.skip_reason = (
                SkipReason.OFFER_HOLDOUT if customer_id in offer_held else SkipReason.NO_OFFER_CODE
            )
            continue
        if not consented:
            d.status, d.skip_reason = DeliveryStatus.SKIPPED, SkipReason.NO_CONSENT
            continue
        if not address:
            d.status, d.skip_reason = DeliveryStatus.SKIPPED, SkipReason.NO_ADDRESS
            continue
        d.to_address = address
        consent_at = (
            customer.email_consent_at if channel == Channel.EMAIL else customer.sms_consent_at
        )
        if customer_id in suppressed and (
            consent_at is None or consent_at <= suppressed[customer_id]
        ):
            d.status, d.skip_reason = DeliveryStatus.SKIPPED, SkipReason.SUPPRESSED
            continue
        if settings.cap_messages and capped[customer_id] >= settings.cap_messages:
            d.status, d.skip_reason = DeliveryStatus.SKIPPED, SkipReason.FREQUENCY_CAP
            continue
        if campaign.holdout_share and _unit(campaign.pk, customer_id, "holdout") < (
            campaign.holdout_share
        ):
            d.status = DeliveryStatus.HOLDOUT
            d.to_address = ""
            continue
        for variant in targeted:
            in_segment = any(customer_id in members.get(s, ()) for s in variant.segment_ids)
            persona_seg = persona_segment.get(variant.persona_id) if variant.persona_id else None
            if in_segment or (persona_seg and customer_id in members.get(persona_seg, ())):
                d.variant_id = variant.pk
                if variant.persona_id:
                    d.persona_id = variant.persona_id
                break
        if d.variant_id is None and arms and campaign.allocation == Allocation.FIXED:
            d.variant_id = fixed_arm(campaign.pk, customer_id, arms).pk
        # (Thompson arms are chosen batch by batch at send time, from results so far)
        zone = zones[customer_id]
        if campaign.best_hour and customer_id in hours:
            d.scheduled_for = next_at_hour(now, hours[customer_id], zone)
        if channel == Channel.SMS:
            until = quiet_until(d.scheduled_for or now, zone, settings)
            if until is not None:
                d.scheduled_for = until
    counts = Counter(
        d.skip_reason if d.status == DeliveryStatus.SKIPPED else d.status for d in decisions
    )
    return RecipientPlan(
        decisions=decisions,
        counts={
            "audience": len(decisions),
            "sendable": counts[DeliveryStatus.QUEUED],
            "skipped_no_consent": counts[SkipReason.NO_CONSENT],
            "skipped_no_address": counts[SkipReason.NO_ADDRESS],
            "skipped_frequency_cap": counts[SkipReason.FREQUENCY_CAP],
            "skipped_suppressed": counts[SkipReason.SUPPRESSED],
            "skipped_offer_holdout": counts[SkipReason.OFFER_HOLDOUT],
            "skipped_no_offer_code": counts[SkipReason.NO_OFFER_CODE],
            "with_offer_code": (
                sum(1 for d in decisions if d.customer_id in codes) if codes is not None else 0
            ),
            "holdout": counts[DeliveryStatus.HOLDOUT],
            "deferred": sum(1 for d in decisions if d.scheduled_for is not None),
        },
    )


def sample_size_per_arm(p1: float, p2: float, *, alpha: float = PLAN_ALPHA, power=PLAN_POWER):
    """Customers per arm for a two-sided two-proportion z-test to tell p1 from p2."""
    from statistics import NormalDist

    z_a = NormalDist().inv_cdf(1 - alpha / 2)
    z_b = NormalDist().inv_cdf(power)
    p_bar = (p1 + p2) / 2
    top = z_a * math.sqrt(2 * p_bar * (1 - p_bar)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(top**2 / (p1 - p2) ** 2)


def campaign_plan(campaign: Campaign) -> dict[str, Any]:
    """The A/B plan shown before sending: customers each arm needs before a winner can
    be named (fixed horizon: no peeking)."""
    if campaign.plan.get("per_variant"):
        return dict(campaign.plan)
    baseline = PLAN_BASELINE_RATE
    past = Delivery.objects.filter(status=DeliveryStatus.SENT).exclude(campaign=campaign)
    sent = past.count()
    if sent >= 1000:
        converted = past.filter(converted_at__isnull=False).count()
        baseline = min(0.5, max(0.005, converted / sent))
    target = min(0.99, baseline * (1 + PLAN_RELATIVE_LIFT))
    return {
        "baseline_rate": round(baseline, 4),
        "lift": PLAN_RELATIVE_LIFT,
        "alpha": PLAN_ALPHA,
        "power": PLAN_POWER,
        "per_variant": sample_size_per_arm(baseline, target),
    }


def campaign_audit(campaign: Campaign) -> dict[str, Any]:
    """What a send would do now: {audience, sendable, skipped_no_consent,
    skipped_no_address, skipped_frequency_cap, skipped_suppressed,
    skipped_offer_holdout, skipped_no_offer_code, holdout, deferred, plan, offer}
    (`offer`: null, or what the campaign's offer is and whether it can be sent)."""
    plan = campaign_recipients_plan(campaign)
    out: dict[str, Any] = {k: plan.counts[k] for k in (
        "audience", "sendable", "skipped_no_consent", "skipped_no_address",
        "skipped_frequency_cap", "skipped_suppressed", "skipped_offer_holdout",
        "skipped_no_offer_code", "holdout",
    )}  # fmt: skip
    out["deferred"] = plan.counts["deferred"]
    out["plan"] = campaign_plan(campaign)
    out["offer"] = campaign_offer_summary(campaign, with_code=plan.counts["with_offer_code"])
    return out


def campaign_offer_summary(campaign: Campaign, *, with_code: int | None = None):
    """The offer a campaign carries, for the pre-send summary: {id, name, status,
    recipients (given a code), holdout (the offer's hold-out), with_code (of the
    campaign's customers), fairness_flagged, override_reason, fairness, problem};
    None without an offer."""
    if not campaign.offer_id:
        return None
    offer = campaign_offer(campaign)
    if offer is None:
        return {
            "id": campaign.offer_id, "name": "", "status": "missing", "recipients": 0,
            "holdout": 0, "with_code": 0, "fairness_flagged": False, "override_reason": "",
            "fairness": [], "problem": campaign_offer_problem(campaign),
        }  # fmt: skip
    return {
        "id": offer.pk,
        "name": offer.name,
        "status": offer.status,
        "recipients": offer.recipients_count,
        "holdout": offer.holdout_count,
        "with_code": with_code,
        "fairness_flagged": offer.fairness_flagged,
        "override_reason": offer.override_reason,
        "fairness": [row for row in (offer.fairness or []) if row.get("warning")],
        "problem": campaign_offer_problem(campaign, offer=offer),
    }


def campaign_offer_problem(campaign: Campaign, *, offer=None) -> str | None:
    """Why the campaign's offer cannot be sent now (offers.services.offer_send_problem:
    building, failed, ended, flagged by the fairness check without a recorded
    reason), or None; None too for a campaign without an offer."""
    from offers.services import offer_send_problem

    if not campaign.offer_id:
        return None
    offer = offer or campaign_offer(campaign)
    if offer is None:
        return "The offer this campaign carries was deleted: choose another offer, or none."
    return offer_send_problem(offer=offer)


# --- sending: start, schedule, test ------------------------------------------------------
def _running_job(campaign: Campaign):
    from core.models import Job, JobStatus

    if not campaign.job_id:
        return None
    return Job.objects.filter(
        pk=campaign.job_id, status__in=(JobStatus.QUEUED, JobStatus.RUNNING)
    ).first()


def _already_running(job) -> ApplicationError:
    return ApplicationError(
        f"This campaign is being sent already (job {job.pk}).",
        {"job": job.pk},
        code="send_running",
        status=409,
    )


def _check_ready(campaign: Campaign) -> None:
    if not campaign.segment_ids and not campaign.audience_id:
        raise _fields_error("segment_ids", "Choose who gets it: segment_ids or audience_id.")
    if not campaign.body.strip() and not Variant.objects.filter(campaign=campaign).exists():
        raise _fields_error("body", "body is required: write the message first.")
    if campaign.channel == Channel.EMAIL and not campaign.subject.strip():
        if not Variant.objects.filter(campaign=campaign).exclude(subject="").exists():
            raise _fields_error("subject", "subject is required for an email.")


def _check_offer(
    campaign: Campaign, *, organization, reason: Any, user, request, scheduling: bool
) -> None:
    """Refuse (409, with the reason in words) a send whose offer cannot be sent now. An
    offer flagged by the fairness check is sent only with a recorded reason: a
    `fairness_override_reason` given with the send is recorded first (audited by
    offers.services.offer_override_fairness). Scheduling may go ahead while the offer
    is still being built: the scheduler checks again when the time comes."""
    from offers.models import OfferStatus

    if reason is not None and not isinstance(reason, str):
        raise _fields_error("fairness_override_reason", "fairness_override_reason must be text.")
    reason = (reason or "").strip()
    if not campaign.offer_id:
        return
    offer = campaign_offer(campaign)
    if offer is not None and reason and offer.fairness_flagged and not offer.override_reason:
        from offers.services import offer_override_fairness

        try:
            offer = offer_override_fairness(
                organization=organization, offer=offer, reason=reason, user=user, request=request
            )
        except ApplicationError as exc:
            raise _fields_error("fairness_override_reason", exc.message) from None
    problem = campaign_offer_problem(campaign, offer=offer)
    if problem is None:
        return
    if scheduling and offer is not None and offer.status == OfferStatus.BUILDING:
        return
    flagged = offer is not None and offer.fairness_flagged and not offer.override_reason
    extra: dict[str, Any] = {"offer_id": campaign.offer_id}
    if flagged:
        extra["fields"] = {
            "fairness_override_reason": "To send it anyway, record why the offer is fair "
            "to send as it is."
        }
    raise ApplicationError(
        problem, extra, code="offer_flagged" if flagged else "offer_not_sendable", status=409
    )


def campaign_send(
    *,
    organization,
    campaign: Campaign,
    user=None,
    sync: bool = False,
    fairness_override_reason: str | None = None,
    request=None,
):
    """Start sending (202 with the job), or schedule it when `send_at` is ahead.
    Returns the Job, or None when it was scheduled. A second request while a send runs
    answers 409 naming the job; a campaign sent already answers 409; so does one whose
    offer cannot be sent now (`_check_offer`: a fairness-flagged offer needs
    `fairness_override_reason`, recorded and audited before the send starts)."""
    scope_check(organization=organization)
    from core.jobs import job_kind, job_kind_authorize

    job_kind_authorize(kind=job_kind("campaign_send"), organization=organization, user=user)
    with transaction.atomic():
        current = Campaign.objects.select_for_update().get(pk=campaign.pk)
        running = _running_job(current)
        if running is not None:
            raise _already_running(running)
        if current.status in (CampaignStatus.SENT, CampaignStatus.CANCELLED):
            raise ApplicationError(
                f"This campaign was {current.get_status_display().lower()} already; "
                "copy it to send it again.",
                {"status": current.status},
                code="not_sendable",
                status=409,
            )
        _check_ready(current)
        _check_survey(current)
        scheduling = bool(current.send_at and current.send_at > timezone.now())
        _check_offer(
            current, organization=organization, reason=fairness_override_reason, user=user,
            request=request, scheduling=scheduling,
        )  # fmt: skip
        if scheduling:
            Campaign.objects.filter(pk=current.pk).update(status=CampaignStatus.SCHEDULED)
            campaign.refresh_from_db()
            return None
        job = _claim_and_start(current, user=user)
        if job is None:
            raise ApplicationError(
                "This campaign is being sent already.", code="send_running", status=409
            )
    if sync:
        _run_now(job)
    campaign.refresh_from_db()
    return job


def _claim_and_start(campaign: Campaign, *, user=None):
    """Claim the campaign with one conditional UPDATE (the status and job read) and start
    its job; None when someone else claimed it first. Call inside a transaction."""
    from core.jobs import job_start

    from .tasks import campaign_send as task

    claimed = Campaign.objects.filter(
        pk=campaign.pk, status=campaign.status, job_id=campaign.job_id
    ).update(
        status=CampaignStatus.SENDING,
        started_at=campaign.started_at or timezone.now(),
        message="",
    )
    if not claimed:
        return None
    job = job_start(
        organization=campaign.organization,
        kind="campaign_send",
        task=task,
        params={"campaign_id": campaign.pk},
        user=user,
        title=f"Send campaign “{campaign.name}”"[:200],
        sync=False,
    )
    Campaign.objects.filter(pk=campaign.pk).update(job=job)
    return job


def _run_now(job) -> None:
    """Run a started job's task here (tests, `--sync`); the queued copy then skips it."""
    from .tasks import campaign_send as task

    params = {k: v for k, v in job.params.items() if not k.startswith("_")}
    task.apply(kwargs={"organization_id": job.organization_id, "job_id": job.pk, **params})
    job.refresh_from_db()


def campaigns_start_due(*, now: datetime | None = None) -> int:
    """Start the scheduled campaigns whose time has come, and resume sends with
    deliveries now due (best hour, quiet hours). Safe with several schedulers: each
    start is a conditional UPDATE that only one of them wins."""
    now = now or timezone.now()
    started = 0
    due = Campaign.objects.filter(status=CampaignStatus.SCHEDULED, send_at__lte=now)
    for campaign in due.order_by("send_at", "pk"):
        problem = campaign_offer_problem(campaign) or campaign_survey_problem(campaign)
        if problem:
            # not sent: it stays scheduled with the reason shown on its page, and goes
            # out when the offer can be sent (built, or a reason recorded for the flag)
            # and the survey takes answers
            message = f"Not sent at its time: {problem}"[:500]
            Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.SCHEDULED).exclude(
                message=message
            ).update(message=message)
            log.info("campaign.offer_blocked campaign_id=%s", campaign.pk)
            continue
        with transaction.atomic():
            if _claim_and_start(campaign) is not None:
                started += 1
    waiting = Campaign.objects.filter(status=CampaignStatus.SENDING).filter(
        pk__in=Delivery.objects.filter(status=DeliveryStatus.QUEUED, scheduled_for__lte=now).values(
            "campaign_id"
        )
    )
    for campaign in waiting.order_by("pk"):
        if _running_job(campaign) is not None:
            continue
        with transaction.atomic():
            if _claim_and_start(campaign) is not None:
                started += 1
    return started


def campaign_test_send(*, organization, campaign: Campaign, to: Any, user=None) -> dict:
    """One rendered copy to a member of the organisation (marked as a test; links are not
    tracked; nobody's delivery is written)."""
    from django.contrib.auth import get_user_model
    from django.core.validators import validate_email

    from accounts.models import Membership

    scope_check(organization=organization)
    if not isinstance(to, str) or not to.strip():
        raise _fields_error("to", "to is required: the email of a member of your team.")
    to = to.strip()
    if campaign.channel == Channel.EMAIL:
        try:
            validate_email(to)
        except Exception:
            raise _fields_error("to", "to must be an email address.") from None
    members = get_user_model().objects.filter(
        pk__in=Membership.objects.filter(organization=organization).values("user_id"),
        email__iexact=to,
    )
    if not members.exists():
        raise _fields_error(
            "to", "Test copies go only to members of your organisation: no member has that email."
        )
    from .sending import send_test_copy

    return send_test_copy(campaign=campaign, to=to)


def preview_customer(*, campaign: Campaign, customer_id: Any):
    from customers.models import Customer

    try:
        customer_id = int(customer_id)
    except (TypeError, ValueError):
        raise _fields_error("customer", "customer must be a customer id.") from None
    customer = Customer.objects.filter(pk=customer_id, erased_at__isnull=True).first()
    if customer is None:
        raise NotFound("No such customer.", {"fields": {"customer": "No such customer."}})
    return customer
