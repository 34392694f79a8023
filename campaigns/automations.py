"""Automations (CONTRACT.md `automations/`): a message sent to each customer once per
occurrence of a trigger.

How it works:

- Evaluation (`automations_evaluate`, run for each organisation with active
  automations by the periodic task `campaigns.tasks.automations_due` every 15
  minutes, as an `automations_run` job) looks, automation by automation, for new
  occurrences of the trigger and writes each as an `AutomationOccurrence`, unique per
  (automation, customer, key): evaluating again, or two schedulers at once, finds the
  same keys and sends nothing more. Each automation is also claimed for the
  evaluation with a conditional UPDATE (`claimed_until`), so only one evaluator works
  on it at a time. The pipeline's steps (segments, predictions, audiences) change who
  meets a trigger; the next evaluation (within 15 minutes) sees the change.
- Triggers and their occurrence keys:
  - `enters_segment` {segment_id}, `enters_audience` {audience_id}, `churn_high`
    (the live predictions' `churn_risk` is high): the members at the last
    evaluation are kept (`AutomationMember`); a customer who is a member now and was
    not then *enters* (key `entered:<n>`, the customer's n-th entry). The first
    evaluation only records who is in already: nobody is sent to for being in the
    segment when the automation was switched on.
  - `days_after_first_order` {days}: when `first_order_at` + days has passed, and
    that moment came after the automation was switched on (`watch_from`).
  - `next_order_overdue` {days}: the live prediction's `expected_next_order_at`
    passed by more than `days` days (in the organisation's time zone) with no order
    since the predictions were made; key `overdue:<expected date>`.
  - `birthday`: the customer's `birth_date` month and day is today in the customer's
    time zone (a `time_zone` attribute), else the organisation's; 29 February is
    celebrated on 28 February in other years; key `birthday:<year>`.
  - `back_in_stock` {skus?}: a product's `in_stock` turned true since the last
    evaluation (the skus out of stock are remembered in `state`); sent to the
    customers who bought it or whose events name its sku in `properties.sku`; key
    `restock:<sku>:<time>`.
  - `tier_changed` {tier?}: each `tier_changed` event after `watch_from` (written by
    loyalty's step), optionally only a move up into `tier` (`properties.tier`,
    `properties.up`); key `tier:<event id>`.
- Sending: each occurrence gets a `Delivery` in one of the automation's hidden
  campaigns (`Campaign.automation`): round 1 for a customer's first message, round 2
  for the second, and so on (a campaign reaches a person once). The rules are a
  campaign's: consent to the channel and an address, no suppression (bounce,
  complaint), the organisation's frequency cap counting campaigns and automations
  together (both write deliveries), and SMS quiet hours in the customer's time zone
  (the message waits; `send_due` resumes it). The rows are written first, then handed
  over by the campaigns' send job body (`sending.campaign_send_run`), so rendering,
  tracking, conversions and statistics are the campaigns' own.
- Results (`automation_stats`): a campaign's figures over every round.
"""

from __future__ import annotations

import logging
import secrets
import zoneinfo
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from accounts.tenancy import scope_check
from core.exceptions import ApplicationError
from core.jobs import NULL_JOB, JobCancelled, JobHandle, JobPaused

from .models import (
    Automation,
    AutomationMember,
    AutomationOccurrence,
    Campaign,
    CampaignStatus,
    Channel,
    Delivery,
    DeliveryStatus,
    SkipReason,
    TriggerKind,
)
from .rules import check_active

log = logging.getLogger("segmenta.campaigns")

LEASE = timedelta(minutes=30)  # how long an evaluator may hold an automation
MEMBERSHIP_TRIGGERS = (
    TriggerKind.ENTERS_SEGMENT,
    TriggerKind.ENTERS_AUDIENCE,
    TriggerKind.CHURN_HIGH,
)
CHUNK = 2000


def _fields_error(name: str, message: str) -> ApplicationError:
    return ApplicationError(message, {"fields": {name: message}})


def _int(value: Any, name: str, *, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _fields_error(name, f"{name} must be a whole number from {low} to {high}.")
    return value


# --- writing ------------------------------------------------------------------------------
def _clean_trigger(trigger: Any) -> tuple[str, dict]:
    from audiences.models import Audience
    from segmentation.models import Segment

    if not isinstance(trigger, dict):
        raise _fields_error("trigger", 'trigger must be {"kind": ..., "params": {...}}.')
    kind = trigger.get("kind")
    if kind not in TriggerKind.values:
        raise _fields_error(
            "trigger.kind", f"trigger.kind must be one of {', '.join(TriggerKind.values)}."
        )
    params = trigger.get("params") or {}
    if not isinstance(params, dict):
        raise _fields_error("trigger.params", "trigger.params must be an object.")
    out: dict[str, Any] = {}
    if kind == TriggerKind.ENTERS_SEGMENT:
        sid = _int(params.get("segment_id"), "trigger.params.segment_id", low=1, high=2**62)
        if not Segment.objects.filter(pk=sid).exists():
            raise _fields_error("trigger.params.segment_id", f"No such segment: {sid}.")
        out["segment_id"] = sid
    elif kind == TriggerKind.ENTERS_AUDIENCE:
        aid = _int(params.get("audience_id"), "trigger.params.audience_id", low=1, high=2**62)
        if not Audience.objects.filter(pk=aid).exists():
            raise _fields_error("trigger.params.audience_id", f"No such audience: {aid}.")
        out["audience_id"] = aid
    elif kind == TriggerKind.DAYS_AFTER_FIRST_ORDER:
        out["days"] = _int(params.get("days"), "trigger.params.days", low=0, high=3650)
    elif kind == TriggerKind.NEXT_ORDER_OVERDUE:
        out["days"] = _int(params.get("days", 0), "trigger.params.days", low=0, high=365)
    elif kind == TriggerKind.BACK_IN_STOCK:
        skus = params.get("skus")
        if skus is not None:
            if not isinstance(skus, list) or not all(isinstance(s, str) and s for s in skus):
                raise _fields_error(
                    "trigger.params.skus", "trigger.params.skus must be a list of skus."
                )
            out["skus"] = list(dict.fromkeys(skus))
    elif kind == TriggerKind.TIER_CHANGED:
        tier = params.get("tier")
        if tier is not None:
            if not isinstance(tier, str) or not tier.strip():
                raise _fields_error(
                    "trigger.params.tier", "trigger.params.tier must be a tier name."
                )
            out["tier"] = tier.strip()
    return kind, out


def _apply(automation: Automation, data: dict[str, Any], *, creating: bool) -> None:
    from .services import _check_template, _clean_text

    if not isinstance(data, dict):
        raise ApplicationError("The body must be a JSON object.")
    if "name" in data or creating:
        automation.name = _clean_text(data.get("name"), "name", max_length=200, required=True)
    if "trigger" in data or creating:
        if "trigger" not in data:
            raise _fields_error("trigger", "trigger is required.")
        kind, params = _clean_trigger(data["trigger"])
        if not creating and (kind, params) != (automation.trigger_kind, automation.trigger_params):
            automation.baseline_at = None  # a new condition: record who meets it first
            automation.state = {}
            automation.watch_from = timezone.now()
        automation.trigger_kind, automation.trigger_params = kind, params
    if "message" in data or creating:
        message = data.get("message")
        if not isinstance(message, dict):
            raise _fields_error("message", 'message must be {"channel", "subject", "body"}.')
        if "channel" in message or creating:
            if message.get("channel") not in Channel.values:
                raise _fields_error("message.channel", "message.channel must be email or sms.")
            automation.channel = message["channel"]
        for key, limit in (("subject", 500), ("body", 200_000)):
            if key in message:
                setattr(
                    automation, key, _clean_text(message[key], f"message.{key}", max_length=limit)
                )
        if "conversion_window_days" in message:
            automation.conversion_window_days = _int(
                message["conversion_window_days"], "message.conversion_window_days", low=1, high=90
            )
    if "active" in data:
        if not isinstance(data["active"], bool):
            raise _fields_error("active", "active must be true or false.")
        if data["active"] and not automation.active:
            automation.watch_from = timezone.now()  # what happened while off is not sent
            automation.baseline_at = None
        automation.active = data["active"]
    if not automation.body.strip():
        raise _fields_error("message.body", "message.body is required.")
    if automation.channel == Channel.EMAIL and not automation.subject.strip():
        raise _fields_error("message.subject", "message.subject is required for an email.")
    from .rendering import uses_field

    if uses_field(automation.body, "survey_link", channel=automation.channel):
        # an automation carries no survey: the link would be empty
        raise _fields_error(
            "message.body",
            "{{ survey_link }} works in campaigns carrying a survey, not in automations: "
            "send the survey through a campaign, or share its public link.",
        )
    try:
        _check_template(
            channel=automation.channel, subject=automation.subject, body=automation.body
        )
    except ApplicationError as exc:
        fields = {f"message.{k}": v for k, v in (exc.extra.get("fields") or {}).items()}
        raise ApplicationError(
            exc.message, {"fields": fields or {"message.body": exc.message}}
        ) from None


def automation_create(*, organization, data: dict[str, Any], user=None) -> Automation:
    from .services import _person

    scope_check(organization=organization)
    automation = Automation(organization=organization, created_by=_person(user))
    _apply(automation, data, creating=True)
    automation.save()
    log.info("automation.created automation_id=%s kind=%s", automation.pk, automation.trigger_kind)
    return automation


def automation_update(*, organization, automation: Automation, data: dict[str, Any]) -> Automation:
    scope_check(organization=organization)
    with transaction.atomic():
        locked = Automation.objects.select_for_update().get(pk=automation.pk)
        channel = locked.channel
        _apply(locked, data, creating=False)
        waiting = Delivery.objects.filter(
            campaign__automation=locked, status__in=(DeliveryStatus.QUEUED, DeliveryStatus.SENDING)
        )
        if locked.channel != channel and waiting.exists():
            raise ApplicationError(
                "message.channel cannot change while messages of this automation wait to be "
                "sent (SMS quiet hours); try again once they have gone.",
                {"fields": {"message.channel": "Messages are waiting to be sent."}},
                code="messages_waiting",
                status=409,
            )
        if locked.baseline_at is None:
            AutomationMember.objects.filter(automation=locked).delete()
        locked.save()
        # its campaigns send the new words from now on
        Campaign.objects.filter(automation=locked).update(
            name=_round_name(locked.name, None), channel=locked.channel, subject=locked.subject,
            body=locked.body, conversion_window_days=locked.conversion_window_days,
        )  # fmt: skip
        for campaign in Campaign.objects.filter(automation=locked).only("pk", "automation_round"):
            Campaign.objects.filter(pk=campaign.pk).update(
                name=_round_name(locked.name, campaign.automation_round)
            )
    return locked


def automation_delete(*, organization, automation: Automation) -> None:
    """The automation goes with its campaigns, deliveries and occurrences."""
    scope_check(organization=organization)
    Automation.objects.filter(pk=automation.pk).delete()


def _round_name(name: str, round_no: int | None) -> str:
    return f"{name} (automation, round {round_no or 1})"[:200]


# --- finding occurrences -------------------------------------------------------------
def _membership_now(automation: Automation) -> set[int]:
    from audiences.models import AudienceMember
    from predictions.models import CustomerPrediction
    from segmentation.models import Segment
    from segmentation.selectors import segment_members

    params = automation.trigger_params
    if automation.trigger_kind == TriggerKind.ENTERS_SEGMENT:
        segment = Segment.objects.filter(pk=params.get("segment_id")).first()
        if segment is None:
            return set()
        return set(segment_members(segment=segment).values_list("pk", flat=True))
    if automation.trigger_kind == TriggerKind.ENTERS_AUDIENCE:
        return set(
            AudienceMember.objects.filter(
                audience_id=params.get("audience_id"), customer__erased_at__isnull=True
            ).values_list("customer_id", flat=True)
        )
    return set(
        CustomerPrediction.objects.filter(
            run__is_live=True, churn_risk="high", customer__erased_at__isnull=True
        ).values_list("customer_id", flat=True)
    )


def _entries(automation: Automation, now: datetime) -> list[tuple[int, str]]:
    current = _membership_now(automation)
    before = set(
        AutomationMember.objects.filter(automation=automation).values_list("customer_id", flat=True)
    )
    left = sorted(before - current)
    entered = sorted(current - before)
    for i in range(0, len(left), CHUNK):
        AutomationMember.objects.filter(
            automation=automation, customer_id__in=left[i : i + CHUNK]
        ).delete()
    AutomationMember.objects.bulk_create(
        [
            AutomationMember(
                organization_id=automation.organization_id, automation=automation, customer_id=c
            )
            for c in entered
        ],
        batch_size=CHUNK,
        ignore_conflicts=True,
    )
    if automation.baseline_at is None:
        return []  # the first look: who is in already is not an entry
    earlier: Counter = Counter()
    for i in range(0, len(entered), CHUNK):
        for row in (
            AutomationOccurrence.objects.filter(
                automation=automation, customer_id__in=entered[i : i + CHUNK]
            )
            .values("customer_id")
            .annotate(n=Count("pk"))
        ):
            earlier[row["customer_id"]] = row["n"]
    return [(c, f"entered:{earlier[c] + 1}") for c in entered]


def _first_orders(automation: Automation, now: datetime) -> list[tuple[int, str]]:
    from customers.models import Customer

    days = timedelta(days=int(automation.trigger_params.get("days", 0)))
    rows = Customer.objects.filter(
        erased_at__isnull=True,
        first_order_at__gt=automation.watch_from - days,
        first_order_at__lte=now - days,
    ).values_list("pk", "first_order_at")
    return [(pk, f"first_order:{first.date().isoformat()}") for pk, first in rows]


def _org_zone(organization) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(organization.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _overdue(automation: Automation, now: datetime) -> list[tuple[int, str]]:
    from predictions.models import CustomerPrediction, PredictionRun

    run = PredictionRun.objects.filter(is_live=True).first()
    if run is None:
        return []
    days = int(automation.trigger_params.get("days", 0))
    zone = _org_zone(automation.organization)
    today = now.astimezone(zone).date()
    watched = automation.watch_from.astimezone(zone).date()
    # overdue on the day after expected + days; only days since it was switched on
    latest = today - timedelta(days=days + 1)
    earliest = watched - timedelta(days=days + 1)
    rows = (
        CustomerPrediction.objects.filter(
            run=run,
            customer__erased_at__isnull=True,
            expected_next_order_at__isnull=False,
            expected_next_order_at__lte=latest,
            expected_next_order_at__gte=earliest,
        )
        .filter(
            Q(customer__last_order_at__isnull=True) | Q(customer__last_order_at__lt=run.created_at)
        )
        .values_list("customer_id", "expected_next_order_at")
    )
    return [(c, f"overdue:{expected.isoformat()}") for c, expected in rows]


def _birthday_in(year: int, birth: date) -> date:
    if birth.month == 2 and birth.day == 29:
        try:
            return date(year, 2, 29)
        except ValueError:
            return date(year, 2, 28)
    return date(year, birth.month, birth.day)


def _birthdays(automation: Automation, now: datetime) -> list[tuple[int, str]]:
    from customers.models import Customer

    from .services import customer_zone

    organization = automation.organization
    days = {(now + timedelta(days=d)).date() for d in (-1, 0, 1)}
    match = Q()
    for day in days:
        match |= Q(birth_date__month=day.month, birth_date__day=day.day)
        if day.month == 2 and day.day == 28:
            match |= Q(birth_date__month=2, birth_date__day=29)
    out = []
    for customer in Customer.objects.filter(match, erased_at__isnull=True).only(
        "pk", "birth_date", "attributes"
    ):
        local = now.astimezone(customer_zone(customer, organization)).date()
        if _birthday_in(local.year, customer.birth_date) == local:
            out.append((customer.pk, f"birthday:{local.year}"))
    return out


def _restocks(automation: Automation, now: datetime) -> list[tuple[int, str]]:
    from customers.models import Customer, Event, OrderLine, Product

    skus = automation.trigger_params.get("skus")
    products = Product.objects.all()
    if skus:
        products = products.filter(sku__in=skus)
    out_now = sorted(products.filter(in_stock=False).values_list("sku", flat=True))
    before = set(automation.state.get("out_of_stock", []))
    automation.state = {**automation.state, "out_of_stock": out_now}
    if automation.baseline_at is None or not before:
        return []
    back = list(
        products.filter(sku__in=sorted(before), in_stock=True).values_list("sku", "updated_at")
    )
    found: list[tuple[int, str]] = []
    for sku, updated_at in back:
        key = f"restock:{sku}:{(updated_at or now).isoformat(timespec='seconds')}"
        buyers = set(
            OrderLine.objects.filter(sku=sku, order__customer__isnull=False).values_list(
                "order__customer_id", flat=True
            )
        )
        buyers.update(
            Event.objects.filter(properties__sku=sku).values_list("customer_id", flat=True)
        )
        live = Customer.objects.filter(pk__in=buyers, erased_at__isnull=True).values_list(
            "pk", flat=True
        )
        found.extend((c, key) for c in sorted(live))
    return found


def _tier_changes(automation: Automation, now: datetime) -> list[tuple[int, str]]:
    from customers.models import Event

    events = Event.objects.filter(
        type="tier_changed",
        occurred_at__gt=automation.watch_from,
        occurred_at__lte=now,
        customer__erased_at__isnull=True,
    )
    tier = automation.trigger_params.get("tier")
    if tier:
        # "reached Gold": a move up into the tier, not a drop into it from above
        events = events.filter(properties__tier=tier, properties__up=True)
    return [(c, f"tier:{pk}") for pk, c in events.values_list("pk", "customer_id")]


FINDERS: dict[str, Any] = {
    TriggerKind.ENTERS_SEGMENT: _entries,
    TriggerKind.ENTERS_AUDIENCE: _entries,
    TriggerKind.CHURN_HIGH: _entries,
    TriggerKind.DAYS_AFTER_FIRST_ORDER: _first_orders,
    TriggerKind.NEXT_ORDER_OVERDUE: _overdue,
    TriggerKind.BIRTHDAY: _birthdays,
    TriggerKind.BACK_IN_STOCK: _restocks,
    TriggerKind.TIER_CHANGED: _tier_changes,
}


# --- deliveries ----------------------------------------------------------------------
def _round_campaign(automation: Automation, round_no: int, cache: dict[int, Campaign]) -> Campaign:
    if round_no in cache:
        return cache[round_no]
    found = Campaign.objects.filter(automation=automation, automation_round=round_no).first()
    if found is None:
        try:
            with transaction.atomic():
                found = Campaign.objects.create(
                    organization_id=automation.organization_id,
                    automation=automation,
                    automation_round=round_no,
                    name=_round_name(automation.name, round_no),
                    channel=automation.channel,
                    subject=automation.subject,
                    body=automation.body,
                    goal="automation",
                    conversion_window_days=automation.conversion_window_days,
                    status=CampaignStatus.SENDING,
                    started_at=timezone.now(),
                    counts={"snapshot_at": timezone.now().isoformat()},
                    created_by_id=automation.created_by_id,
                )
        except IntegrityError:  # another evaluator made it first
            found = Campaign.objects.get(automation=automation, automation_round=round_no)
    cache[round_no] = found
    return found


def _write_deliveries(
    automation: Automation, pending: list[AutomationOccurrence], now: datetime
) -> set[int]:
    """A delivery for each pending occurrence (queued, or skipped with the reason), in
    the campaign of the customer's round; returns the campaigns written to."""
    from customers.models import Customer

    from .services import (
        campaign_settings_get,
        customer_zone,
        quiet_until,
        recent_message_counts,
        suppressed_ids,
    )

    organization = automation.organization
    ids = sorted({o.customer_id for o in pending})
    settings = campaign_settings_get(organization=organization)
    channel = automation.channel
    suppressed = suppressed_ids(ids, channel=channel)
    capped: Counter = Counter()
    if settings.cap_messages and settings.cap_days:
        capped = recent_message_counts(ids, days=settings.cap_days, now=now)
    customers = {
        c.pk: c
        for c in Customer.objects.filter(pk__in=ids, erased_at__isnull=True).only(
            "pk", "email", "phone", "accepts_email", "accepts_sms", "attributes",
            "email_consent_at", "sms_consent_at",
        )
    }  # fmt: skip
    rounds: Counter = Counter(
        {
            row["customer_id"]: row["n"]
            for row in Delivery.objects.filter(campaign__automation=automation, customer_id__in=ids)
            .values("customer_id")
            .annotate(n=Count("pk"))
        }
    )
    segment_id = (
        automation.trigger_params.get("segment_id")
        if automation.trigger_kind == TriggerKind.ENTERS_SEGMENT
        else None
    )
    campaigns: dict[int, Campaign] = {}
    rows: list[Delivery] = []
    links: list[tuple[AutomationOccurrence, int]] = []
    for occurrence in pending:
        customer = customers.get(occurrence.customer_id)
        if customer is None:
            continue
        rounds[customer.pk] += 1
        campaign = _round_campaign(automation, rounds[customer.pk], campaigns)
        row = Delivery(
            organization_id=automation.organization_id, campaign=campaign, customer_id=customer.pk,
            channel=channel, status=DeliveryStatus.QUEUED, token=secrets.token_hex(16),
            segment_id=segment_id,
        )  # fmt: skip
        rows.append(row)
        links.append((occurrence, campaign.pk))
        consented = customer.accepts_email if channel == Channel.EMAIL else customer.accepts_sms
        address = (customer.email if channel == Channel.EMAIL else customer.phone).strip()
        consent_at = (
            customer.email_consent_at if channel == Channel.EMAIL else customer.sms_consent_at
        )
        if not consented:
            row.status, row.skip_reason = DeliveryStatus.SKIPPED, SkipReason.NO_CONSENT
        elif not address:
            row.status, row.skip_reason = DeliveryStatus.SKIPPED, SkipReason.NO_ADDRESS
        elif customer.pk in suppressed and (
            consent_at is None or consent_at <= suppressed[customer.pk]
        ):
            row.status, row.skip_reason = DeliveryStatus.SKIPPED, SkipReason.SUPPRESSED
        elif settings.cap_messages and capped[customer.pk] >= settings.cap_messages:
            row.status, row.skip_reason = DeliveryStatus.SKIPPED, SkipReason.FREQUENCY_CAP
        else:
            row.to_address = address
            capped[customer.pk] += 1  # two occurrences at once count twice
            if channel == Channel.SMS:
                row.scheduled_for = quiet_until(
                    now, customer_zone(customer, organization), settings
                )
    with transaction.atomic():
        Delivery.objects.bulk_create(rows, batch_size=CHUNK, ignore_conflicts=True)
        by_key = {
            (campaign_id, customer_id): pk
            for pk, campaign_id, customer_id in Delivery.objects.filter(
                campaign_id__in=[c.pk for c in campaigns.values()], customer_id__in=ids
            ).values_list("pk", "campaign_id", "customer_id")
        }
        for occurrence, campaign_id in links:
            delivery_id = by_key.get((campaign_id, occurrence.customer_id))
            if delivery_id is not None:
                AutomationOccurrence.objects.filter(pk=occurrence.pk, delivery__isnull=True).update(
                    delivery_id=delivery_id
                )
    return {c.pk for c in campaigns.values()}


def _send(automation: Automation, campaign_ids: set[int], job: JobHandle) -> tuple[int, dict]:
    """Hand over the queued deliveries now due of the automation's campaigns (the new
    ones, and any left by an interrupted run) with the campaigns' send job body.
    (sent, the `limit_reached` of the last send the day's emails stopped, or {})."""
    from .sending import _due, campaign_send_run

    waiting = set(
        Delivery.objects.filter(
            campaign__automation=automation, status=DeliveryStatus.QUEUED
        ).values_list("campaign_id", flat=True)
    )
    sent = 0
    limited: dict = {}
    for campaign in Campaign.objects.filter(pk__in=campaign_ids | waiting).order_by(
        "automation_round"
    ):
        if not _due(campaign).exists():
            continue
        Campaign.objects.filter(pk=campaign.pk).exclude(status=CampaignStatus.SENDING).update(
            status=CampaignStatus.SENDING, finished_at=None
        )
        result = campaign_send_run(campaign_id=campaign.pk, job=job)
        sent += int(result.get("sent") or 0)
        limited = result.get("limit_reached") or limited
    return sent, limited


def _claim(automation: Automation) -> bool:
    wall = timezone.now()
    return bool(
        Automation.objects.filter(pk=automation.pk, active=True)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=wall))
        .update(claimed_until=wall + LEASE)
    )


def automation_evaluate(
    automation: Automation, *, now: datetime | None = None, job: JobHandle = NULL_JOB
) -> dict[str, int]:
    """Find the automation's new occurrences, write their deliveries and send them.
    {"occurrences", "sent"}; nothing when another evaluator holds it."""
    now = now or timezone.now()
    if not _claim(automation):
        return {"occurrences": 0, "sent": 0, "limit_reached": {}}
    try:
        automation.refresh_from_db()
        with transaction.atomic():  # members, state and occurrences change together
            found = FINDERS[automation.trigger_kind](automation, now)
            AutomationOccurrence.objects.bulk_create(
                [
                    AutomationOccurrence(
                        organization_id=automation.organization_id,
                        automation=automation,
                        customer_id=customer_id,
                        key=key[:200],
                        occurred_at=now,
                    )  # fmt: skip
                    for customer_id, key in found
                ],
                batch_size=CHUNK,
                ignore_conflicts=True,
            )
            Automation.objects.filter(pk=automation.pk).update(
                state=automation.state,
                baseline_at=automation.baseline_at or now,
                last_evaluated_at=timezone.now(),
            )
        pending = list(
            AutomationOccurrence.objects.filter(
                automation=automation, delivery__isnull=True
            ).order_by("pk")
        )
        touched: set[int] = set()
        for i in range(0, len(pending), CHUNK):
            touched |= _write_deliveries(automation, pending[i : i + CHUNK], now)
        # an occurrence whose customer was erased meanwhile has nothing to send
        sent, limited = _send(automation, touched, job)
        return {"occurrences": len(pending), "sent": sent, "limit_reached": limited}
    finally:
        Automation.objects.filter(pk=automation.pk).update(claimed_until=None)


def automations_evaluate(
    *, organization, now: datetime | None = None, job: JobHandle = NULL_JOB
) -> dict[str, Any]:
    """Evaluate every active automation of the organisation (the job's body)."""
    scope_check(organization=organization)
    automations = list(
        Automation.objects.filter(active=True).select_related("organization").order_by("pk")
    )
    occurrences = sent = 0
    limited: dict = {}
    for i, automation in enumerate(automations):
        job.check_cancel()
        check_active(organization)  # suspended: stop (JobPaused) until reactivated
        job.progress(
            100 * i / max(len(automations), 1), f"Automation “{automation.name}”", force=False
        )
        try:
            result = automation_evaluate(automation, now=now, job=job)
        except (JobPaused, JobCancelled):
            raise
        except Exception:
            log.exception("automation.evaluate_failed automation_id=%s", automation.pk)
            continue
        occurrences += result["occurrences"]
        sent += result["sent"]
        limited = result.get("limit_reached") or limited
    message = (
        f"{len(automations)} automations: {occurrences:,} new occurrences, {sent:,} messages sent."
    )
    if limited:
        # the day's emails ran out: what is left waits until tomorrow (send_due)
        message += " " + limited["message"]
    return {
        "message": message,
        "automations": len(automations),
        "occurrences": occurrences,
        "sent": sent,
        **({"limit_reached": limited} if limited else {}),
    }


# --- results ---------------------------------------------------------------------------
def automation_stats(automation: Automation) -> dict[str, Any]:
    """A campaign's figures (campaigns/stats.py) over every round of the automation,
    and `occurrences` (how many times the trigger occurred for someone)."""
    from segmentation.models import Segment

    from .stats import _breakdown, delivery_counts, delivery_rows

    rows = delivery_rows(Delivery.objects.filter(campaign__automation=automation))
    return {
        "occurrences": AutomationOccurrence.objects.filter(automation=automation).count(),
        **delivery_counts(rows),
        "holdout": 0,
        "holdout_conversion_rate": None,
        "incremental_revenue": None,
        "variants": [],
        "by_segment": _breakdown(rows, "segment_id", Segment, "segment_id"),
        "by_persona": [],
        "winner": None,
    }
