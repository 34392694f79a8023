"""Offers: create, change, delete, build, override the fairness flag, and the hidden
loyalty reward offer.

Saving an offer checks every field (errors name the field) and starts a build job
(kind `offer`). A build snapshots the target — the live members of the chosen
segments, or an audience's members of its last build — without erased customers,
draws the hold-out at random (seeded from the offer's id, so a rebuild of the same
members gives the same draw) with round(share × n) members, issues the codes,
stores each recipient's nearest store, runs the fairness check (audiences/
fairness.py, four-fifths rule) on those who get a code, and marks the offer ready
with its counts, or failed with the reason.

A code once given must keep working: a rebuild keeps each staying customer on
their side (recipient with the same code, or hold-out) and draws only newcomers;
once a code has been used or a campaign carrying the offer has started sending,
a rebuild also keeps the customers who left the target (their codes are out
there). The hold-out is exactly round(share × n) at the first build; a rebuild
comes as close as it can without taking a code back.

What cannot change once the offer is in use (a code redeemed, or a campaign with
it sending or sent): the target, the hold-out share, the code mode, the kind and
value, the start and the terms. The name, the end and the limits always can.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import zoneinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.tenancy import scope_check
from core.exceptions import ApplicationError
from core.jobs import NULL_JOB, JobCancelled, JobHandle

from .codes import codes_fresh
from .models import CodeMode, Offer, OfferKind, OfferRecipient, OfferRedemption, OfferStatus

log = logging.getLogger("segmenta.offers")

NAME_MAX = 200
REASON_MIN = 10
MAX_HOLDOUT = 0.5
WRITE_CHUNK = 2_000
# changing these needs a rebuild; once the offer is in use they are fixed
TARGET_FIELDS = ("segment_ids", "audience_id", "holdout_share", "code_mode", "kind", "value")
# terms: no rebuild, but fixed once the offer is in use (redemptions were judged on them)
TERM_FIELDS = ("starts_at", "min_basket", "categories")
ALWAYS_FIELDS = ("name", "ends_at", "max_redemptions_per_code", "max_redemptions_total")
KNOWN_FIELDS = {*TARGET_FIELDS, *TERM_FIELDS, *ALWAYS_FIELDS}

__all__ = [
    "issue_reward_code",
    "offer_build",
    "offer_create",
    "offer_delete",
    "offer_override_fairness",
    "offer_rebuild",
    "offer_send_problem",
    "offer_update",
]


# --- small helpers ----------------------------------------------------------------------
def _field_error(field: str, message: str, *, status: int = 400, code: str = "invalid"):
    return ApplicationError(message, {"fields": {field: message}}, status=status, code=code)


def _person(user):
    """The signed-in person behind a request (an API key is nobody)."""
    from django.contrib.auth import get_user_model

    return user if isinstance(user, get_user_model()) and user.pk else None


def _audit(*, organization, action: str, offer: Offer, user, request, details: dict) -> None:
    from accounts.services import audit_log

    audit_log(
        organization=organization,
        action=action,
        actor=user,
        request=request,
        target=f"offer {offer.pk}: {offer.name}",
        details={"offer_id": offer.pk, **details},
    )


def _number(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or value is None or value == "":
        raise _field_error(field, f"{field} must be a number.")
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise _field_error(field, f"{field} must be a number.") from None
    if not number.is_finite():
        raise _field_error(field, f"{field} must be a number.")
    return number


def _plain(number: Decimal) -> str:
    """10 -> "10", 12.50 -> "12.5" (how a value is stored)."""
    text = f"{number.normalize():f}"
    return text


def _positive_int(value: Any, field: str, *, allow_null: bool = False) -> int | None:
    if value is None or value == "":
        if allow_null:
            return None
        raise _field_error(field, f"{field} must be a whole number of at least 1.")
    if isinstance(value, bool):
        raise _field_error(field, f"{field} must be a whole number of at least 1.")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or value < 1:
        raise _field_error(field, f"{field} must be a whole number of at least 1.")
    if value > 2_000_000_000:
        raise _field_error(field, f"{field} is too large.")
    return value


def _moment(value: Any, field: str, *, organization) -> dt.datetime | None:
    if value is None or value == "":
        return None
    when: dt.datetime | None
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, dt.date):
        when = dt.datetime.combine(value, dt.time())
    elif isinstance(value, str):
        text = value.strip()
        try:
            when = parse_datetime(text)
        except ValueError:
            when = None
        if when is None:
            try:
                when = dt.datetime.combine(dt.date.fromisoformat(text), dt.time())
            except ValueError:
                raise _field_error(
                    field, f"{field} must be an ISO 8601 date or time, such as 2025-05-01T09:00."
                ) from None
    else:
        raise _field_error(field, f"{field} must be an ISO 8601 date or time.")
    assert when is not None
    if timezone.is_naive(when):
        zone = zoneinfo.ZoneInfo(organization.time_zone or "UTC")
        when = timezone.make_aware(when, zone)
    return when


# --- validation -------------------------------------------------------------------------
def _clean_name(value: Any, *, exclude_pk: int | None) -> str:
    name = "" if value is None else value
    if not isinstance(name, str):
        raise _field_error("name", "name must be text.")
    name = " ".join(name.split())
    if not name:
        raise _field_error("name", "Give the offer a name.")
    if len(name) > NAME_MAX:
        raise _field_error("name", f"The name is longer than {NAME_MAX} characters.")
    taken = Offer.objects.filter(name__iexact=name, is_reward=False)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise _field_error("name", f"An offer named “{name}” exists already.", code="duplicate")
    return name


def _clean_value(kind: str, value: Any) -> str:
    if kind == OfferKind.FREE_SHIPPING:
        if value not in (None, "", 0):
            raise _field_error("value", "A free delivery offer takes no value.")
        return ""
    if kind == OfferKind.PRODUCT:
        from customers.models import Product

        sku = "" if value is None else str(value).strip()
        if not sku:
            raise _field_error("value", "Name the product given away by its sku.")
        if not Product.objects.filter(sku=sku).exists():
            raise _field_error("value", f"There is no product with the sku “{sku[:64]}”.")
        if len(sku) > 64:
            raise _field_error("value", "The sku is longer than 64 characters.")
        return sku
    number = _number(value, "value")
    if kind == OfferKind.PERCENT and not (0 < number <= 100):
        raise _field_error("value", "A percentage off must be more than 0 and at most 100.")
    if kind == OfferKind.AMOUNT and number <= 0:
        raise _field_error("value", "An amount off must be more than 0.")
    if number > Decimal("1e9"):
        raise _field_error("value", "The value is too large.")
    return _plain(number.quantize(Decimal("0.0001")))


def _clean_segment_ids(value: Any) -> list[int]:
    from segmentation.models import Segment

    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise _field_error("segment_ids", "segment_ids must be a list of segment ids.")
    ids = list(dict.fromkeys(value))
    found = set(Segment.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing = [i for i in ids if i not in found]
    if missing:
        raise _field_error("segment_ids", f"No such segment: {', '.join(map(str, missing))}.")
    return ids


def _clean_audience(value: Any):
    from audiences.models import Audience

    if value in (None, ""):
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _field_error("audience_id", "audience_id must be an audience id.")
    audience = Audience.objects.filter(pk=value).first()
    if audience is None:
        raise _field_error("audience_id", f"No such audience: {value}.")
    return audience


def _clean_categories(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _field_error("categories", "categories must be a list of category names.")
    out = list(dict.fromkeys(" ".join(v.split()) for v in value if v.strip()))
    if len(out) > 200 or any(len(v) > 255 for v in out):
        raise _field_error("categories", "At most 200 categories of 255 characters each.")
    return out


def _apply(offer: Offer, data: dict[str, Any], *, organization, creating: bool) -> set[str]:
    """Check `data` and set it on `offer`; returns the fields whose value changed."""
    if not isinstance(data, dict):
        raise ApplicationError("The offer's fields must be given as an object.")
    unknown = sorted(set(data) - KNOWN_FIELDS)
    if unknown:
        raise _field_error(unknown[0], f"Unknown field: {unknown[0]}.")
    before = {f: getattr(offer, f) for f in KNOWN_FIELDS if f != "audience_id"}
    before["audience_id"] = offer.audience_id
    if "name" in data or creating:
        offer.name = _clean_name(data.get("name"), exclude_pk=offer.pk)
    if "kind" in data or creating:
        kind = data.get("kind")
        if kind not in OfferKind.values:
            raise _field_error("kind", "kind must be percent, amount, free_shipping or product.")
        offer.kind = kind
    if "value" in data or "kind" in data or creating:
        kept = "" if offer.kind == OfferKind.FREE_SHIPPING else offer.value
        offer.value = _clean_value(offer.kind, data.get("value", kept))
    if "segment_ids" in data:
        offer.segment_ids = _clean_segment_ids(data["segment_ids"])
        if offer.segment_ids:
            offer.audience = None
    if "audience_id" in data:
        audience = _clean_audience(data["audience_id"])
        if audience is not None and "segment_ids" in data and offer.segment_ids:
            raise _field_error("audience_id", "Give segment_ids or audience_id, not both.")
        offer.audience = audience
        if audience is not None:
            offer.segment_ids = []
    if not offer.segment_ids and offer.audience_id is None:
        raise _field_error(
            "segment_ids", "Choose who gets it: segment_ids (a list) or audience_id."
        )
    if "code_mode" in data:
        if data["code_mode"] not in CodeMode.values:
            raise _field_error("code_mode", "code_mode must be unique or shared.")
        offer.code_mode = data["code_mode"]
    if "holdout_share" in data:
        share = _number(data["holdout_share"], "holdout_share")
        if not (0 <= share <= Decimal(str(MAX_HOLDOUT))):
            raise _field_error(
                "holdout_share", "holdout_share must be between 0 and 0.5 (half kept back)."
            )
        offer.holdout_share = float(share)
    if "max_redemptions_per_code" in data:
        offer.max_redemptions_per_code = int(
            _positive_int(data["max_redemptions_per_code"], "max_redemptions_per_code") or 1
        )
    if "max_redemptions_total" in data:
        offer.max_redemptions_total = _positive_int(
            data["max_redemptions_total"], "max_redemptions_total", allow_null=True
        )
    if "min_basket" in data:
        if data["min_basket"] in (None, ""):
            offer.min_basket = None
        else:
            basket = _number(data["min_basket"], "min_basket")
            if basket < 0 or basket > Decimal("1e9"):
                raise _field_error("min_basket", "min_basket must be from 0 to 1,000,000,000.")
            offer.min_basket = basket.quantize(Decimal("0.0001"))
    if "categories" in data:
        offer.categories = _clean_categories(data["categories"])
    if "starts_at" in data:
        offer.starts_at = _moment(data["starts_at"], "starts_at", organization=organization)
    if "ends_at" in data:
        offer.ends_at = _moment(data["ends_at"], "ends_at", organization=organization)
    if offer.starts_at and offer.ends_at and offer.ends_at <= offer.starts_at:
        raise _field_error("ends_at", "The offer must end after it starts.")
    after = {f: getattr(offer, f) for f in KNOWN_FIELDS if f != "audience_id"}
    after["audience_id"] = offer.audience_id
    return {f for f in KNOWN_FIELDS if before[f] != after[f]}


def in_use_reason(offer: Offer) -> str | None:
    """Why the offer's target and terms are fixed now, or None."""
    from campaigns.models import Campaign, CampaignStatus

    if offer.pk is None:
        return None
    if OfferRedemption.objects.filter(offer=offer).exists():
        return "A code of this offer has been used"
    if Campaign.objects.filter(
        offer_id=offer.pk, status__in=[CampaignStatus.SENDING, CampaignStatus.SENT]
    ).exists():
        return "A campaign carrying this offer has started sending"
    return None


# --- saving -----------------------------------------------------------------------------
def _start_build(*, organization, offer: Offer, user=None, sync: bool = False):
    from core.jobs import job_start

    from .tasks import offer_build as task

    Offer.objects.filter(pk=offer.pk).update(status=OfferStatus.BUILDING, message="")
    job = job_start(
        organization=organization,
        kind="offer",
        task=task,
        params={"offer_id": offer.pk},
        user=user,
        title=f"Build offer “{offer.name}”"[:200],
        sync=sync,
    )
    Offer.objects.filter(pk=offer.pk).update(job=job)
    offer.job = job
    return job


def offer_create(*, organization, data: dict, user=None, request=None, sync: bool = False) -> Offer:
    """Save an offer (status building) and start its build job; `sync` builds it here."""
    scope_check(organization=organization)
    offer = Offer(organization=organization, created_by=_person(user))
    _apply(offer, dict(data or {}), organization=organization, creating=True)
    with transaction.atomic():
        offer.status = OfferStatus.BUILDING
        offer.save()
        _audit(
            organization=organization,
            action="offer.created",
            offer=offer,
            user=user,
            request=request,
            details={"kind": offer.kind, "value": offer.value, "code_mode": offer.code_mode},
        )
        if not sync:
            _start_build(organization=organization, offer=offer, user=user)
    if sync:
        _start_build(organization=organization, offer=offer, user=user, sync=True)
    log.info("offer.created offer_id=%s", offer.pk)
    offer.refresh_from_db()
    return offer


def offer_update(*, organization, offer: Offer, data: dict, user=None, request=None) -> Offer:
    """Change an offer (PATCH: only the fields given). A new target, hold-out share,
    code mode, kind or value rebuilds it; they, the start and the terms are refused
    once the offer is in use (`in_use_reason`)."""
    scope_check(organization=organization)
    data = dict(data or {})
    rebuild = False
    with transaction.atomic():
        locked = Offer.objects.select_for_update().get(pk=offer.pk)
        if locked.is_reward:
            raise ApplicationError("The loyalty reward offer is managed by the loyalty programme.")
        changed = _apply(locked, data, organization=organization, creating=False)
        fixed = sorted(changed & {*TARGET_FIELDS, *TERM_FIELDS})
        if fixed:
            reason = in_use_reason(locked)
            if reason:
                message = (
                    f"{reason}, so who gets it and on what terms can no longer change "
                    f"({', '.join(fixed)}). You can still change its name, its end and its "
                    "limits, or create a new offer."
                )
                raise ApplicationError(
                    message,
                    {"fields": {f: message for f in fixed}},
                    code="offer_in_use",
                    status=409,
                )
        rebuild = bool(changed & set(TARGET_FIELDS))
        if rebuild and changed & {"segment_ids", "audience_id", "holdout_share"}:
            # a different group of people needs its own decision about fairness
            locked.override_reason = ""
            locked.override_by = None
            locked.override_at = None
        locked.save()
        if changed:
            _audit(
                organization=organization,
                action="offer.changed",
                offer=locked,
                user=user,
                request=request,
                details={"fields": sorted(changed)},
            )
        if rebuild:
            _start_build(organization=organization, offer=locked, user=user)
    if not rebuild and changed & {*TERM_FIELDS, *ALWAYS_FIELDS} - {"name"}:
        # limits and the window decide which uses count: judge them again now
        from .redemption import redemptions_refresh

        redemptions_refresh(organization=organization, offer_ids=[locked.pk])
    locked.refresh_from_db()
    return locked


def offer_delete(*, organization, offer: Offer, user=None, request=None) -> None:
    """Delete an offer with its codes and redemptions; refused once a campaign
    carrying it has been sent (its codes are out there)."""
    from campaigns.models import Campaign, CampaignStatus

    scope_check(organization=organization)
    if offer.is_reward:
        raise ApplicationError("The loyalty reward offer is managed by the loyalty programme.")
    if Campaign.objects.filter(
        offer_id=offer.pk, status__in=[CampaignStatus.SENDING, CampaignStatus.SENT]
    ).exists():
        raise ApplicationError(
            "A campaign carrying this offer has been sent, so its codes are out there: "
            "the offer stays to honour them and show its results. Set an end date to stop it.",
            code="offer_in_use",
            status=409,
        )
    _audit(
        organization=organization,
        action="offer.deleted",
        offer=offer,
        user=user,
        request=request,
        details={"recipients": offer.recipients_count},
    )
    offer.delete()


def offer_rebuild(*, organization, offer: Offer, user=None, sync: bool = False) -> Offer:
    """Build the offer again on its target's members now (a job)."""
    scope_check(organization=organization)
    if offer.is_reward:
        raise ApplicationError("The loyalty reward offer is not built from a target.")
    _start_build(organization=organization, offer=offer, user=user, sync=sync)
    offer.refresh_from_db()
    return offer


def offer_override_fairness(
    *, organization, offer: Offer, reason: Any, user=None, request=None
) -> Offer:
    """Record why a flagged offer may be sent anyway (who, when, why; audit log)."""
    scope_check(organization=organization)
    text = " ".join(str(reason or "").split()) if isinstance(reason, str | None) else ""
    if not isinstance(reason, str | None):
        raise _field_error("reason", "reason must be text.")
    with transaction.atomic():
        locked = Offer.objects.select_for_update().get(pk=offer.pk)
        if not locked.fairness_flagged:
            raise ApplicationError(
                "This offer passed the fairness check: there is nothing to override.",
                code="not_flagged",
                status=409,
            )
        if len(text) < REASON_MIN:
            raise _field_error(
                "reason",
                f"Say in at least {REASON_MIN} characters why this offer may go to this "
                "group anyway (it is kept in the audit log).",
            )
        if len(text) > 2000:
            raise _field_error("reason", "The reason is longer than 2,000 characters.")
        locked.override_reason = text
        locked.override_by = _person(user)
        locked.override_at = timezone.now()
        locked.save(update_fields=["override_reason", "override_by", "override_at", "updated_at"])
        _audit(
            organization=organization,
            action="offer.fairness_override",
            offer=locked,
            user=user,
            request=request,
            details={
                "reason": text,
                "warnings": [r["warning"] for r in locked.fairness if r.get("warning")],
            },
        )
    return locked


def offer_send_problem(*, offer: Offer) -> str | None:
    """Why a campaign cannot send this offer now, in a plain sentence, or None."""
    if offer.status == OfferStatus.BUILDING:
        return f"The offer “{offer.name}” is still being built: wait until its codes are ready."
    if offer.status == OfferStatus.FAILED:
        return (
            f"The offer “{offer.name}” could not be built ({offer.message or 'no reason given'}): "
            "fix it and rebuild it first."
        )
    if offer.ends_at is not None and offer.ends_at <= timezone.now():
        return (
            f"The offer “{offer.name}” ended on {offer.ends_at:%d %b %Y}: its codes no longer work."
        )
    if offer.fairness_flagged and not offer.override_reason:
        return (
            f"The offer “{offer.name}” failed the fairness check (some groups get it far less "
            "often than others): change who gets it, or record a reason to send it anyway."
        )
    if not offer.is_reward and offer.recipients_count == 0:
        return f"Nobody gets a code of the offer “{offer.name}”."
    return None


# --- loyalty rewards --------------------------------------------------------------------
def issue_reward_code(*, organization, customer, value: Any, user=None) -> str:
    """A fresh code worth `value` (amount off) for this customer, from the
    organisation's hidden reward offer for that value (created when first needed).
    Used by the loyalty programme when points are exchanged."""
    scope_check(organization=organization)
    amount = _number(value, "value")
    if amount <= 0:
        raise _field_error("value", "A reward must be worth more than 0.")
    amount = amount.quantize(Decimal("0.01"))
    if customer.erased_at is not None:
        raise ApplicationError("This customer's data was erased.")
    with transaction.atomic():
        offer = (
            Offer.objects.select_for_update()
            .filter(is_reward=True, kind=OfferKind.AMOUNT, value=_plain(amount))
            .order_by("pk")
            .first()
        )
        if offer is None:
            offer = Offer.objects.create(
                organization=organization,
                name=f"Loyalty reward {amount}",
                kind=OfferKind.AMOUNT,
                value=_plain(amount),
                code_mode=CodeMode.UNIQUE,
                holdout_share=0,
                status=OfferStatus.READY,
                is_reward=True,
                built_at=timezone.now(),
            )
        (code,) = codes_fresh(1)
        OfferRecipient.objects.create(
            organization=organization, offer=offer, customer=customer, code=code
        )
        Offer.objects.filter(pk=offer.pk).update(
            recipients_count=OfferRecipient.objects.filter(offer=offer).count()
        )
    return code


# --- building ---------------------------------------------------------------------------
def _target_ids(offer: Offer) -> list[int]:
    """The offer's target now: customer ids, erased customers left out."""
    from audiences.kinds import segment_member_ids
    from audiences.models import AudienceMember
    from customers.models import Customer

    if offer.segment_ids:
        chosen: set[int] = set()
        for segment_id in offer.segment_ids:
            chosen |= segment_member_ids(segment_id, "segment_ids")
    elif offer.audience_id:
        chosen = set(
            AudienceMember.objects.filter(audience_id=offer.audience_id).values_list(
                "customer_id", flat=True
            )
        )
    else:
        raise ApplicationError(
            "The audience of this offer was deleted: choose segments or another audience.",
            {"fields": {"audience_id": "The audience was deleted."}},
        )
    ids = sorted(chosen)
    live: list[int] = []
    for start in range(0, len(ids), WRITE_CHUNK * 5):
        chunk = ids[start : start + WRITE_CHUNK * 5]
        live.extend(
            Customer.objects.filter(pk__in=chunk, erased_at__isnull=True).values_list(
                "pk", flat=True
            )
        )
    return sorted(live)


def holdout_size(share: float, n: int) -> int:
    """round(share × n), halves rounded up."""
    return int(math.floor(share * n + 0.5))


def split_holdout(
    ids: list[int],
    *,
    share: float,
    seed: Any,
    previous: dict[int, bool] | None = None,
) -> set[int]:
    """The hold-out among `ids` (no ORM). `previous` maps customers of the last build
    to whether they were held out: they keep their side where possible (only former
    hold-out members may move to get a code), newcomers are drawn. Seeded, so the
    same members and seed give the same hold-out."""
    previous = previous or {}
    rng = random.Random(f"offer-holdout:{seed}")
    want = holdout_size(share, len(ids))
    stay_held = sorted(i for i in ids if previous.get(i) is True)
    newcomers = sorted(i for i in ids if i not in previous)
    if len(stay_held) >= want:
        return set(rng.sample(stay_held, want))
    extra = min(want - len(stay_held), len(newcomers))
    return set(stay_held) | set(rng.sample(newcomers, extra))


def _nearest_stores(*, organization, customer_ids: list[int]) -> dict[int, int | None]:
    try:
        from stores.promotions import nearest_stores
    except ImportError:  # local promotions not installed
        return {}
    return nearest_stores(organization=organization, customer_ids=customer_ids)


def _build(offer: Offer, *, job: JobHandle = NULL_JOB) -> Offer:
    from audiences.fairness import fairness_check

    organization = offer.organization
    job.progress(5, f"Finding the customers of “{offer.name}”")
    target = _target_ids(offer)
    if not target:
        raise ApplicationError(
            "Nobody is in the chosen segments or audience right now, so nobody would get "
            "a code. Choose another group, or rebuild once it has members."
        )
    in_use = in_use_reason(offer) is not None
    existing = {
        r.customer_id: r
        for r in OfferRecipient.objects.filter(offer=offer).only(
            "pk", "customer_id", "code", "holdout", "store_id"
        )
    }
    previous = {cid: r.holdout for cid, r in existing.items()}
    members = list(target)
    if in_use:
        # codes are out there: everyone who holds one stays
        target_set = set(target)
        kept = [cid for cid, r in existing.items() if not r.holdout and cid not in target_set]
        members = sorted(set(members) | set(kept))
    job.progress(30, f"Keeping back the hold-out of {len(members):,} customers")
    held = split_holdout(members, share=offer.holdout_share, seed=offer.pk, previous=previous)
    receivers = [cid for cid in members if cid not in held]

    job.progress(45, "Finding each customer's nearest store")
    stores = _nearest_stores(organization=organization, customer_ids=members)

    job.progress(60, "Checking fairness")
    fairness = fairness_check(receivers, organization=organization)
    flagged = any(row.get("warning") for row in fairness)

    job.progress(75, f"Issuing codes to {len(receivers):,} customers")
    unique = offer.code_mode == CodeMode.UNIQUE
    needed = sum(
        1 for cid in receivers if not (existing.get(cid) and existing[cid].code and unique)
    )
    fresh = iter(codes_fresh(needed) if unique else [])
    with transaction.atomic():
        locked = Offer.objects.select_for_update().filter(pk=offer.pk).first()
        if locked is None:  # deleted while it was being built
            return offer
        if not unique and not locked.shared_code:
            (locked.shared_code,) = codes_fresh(1)
        member_set = set(members)
        gone = [r.pk for cid, r in existing.items() if cid not in member_set]
        for start in range(0, len(gone), WRITE_CHUNK):
            OfferRecipient.objects.filter(pk__in=gone[start : start + WRITE_CHUNK]).delete()
        new_rows: list[OfferRecipient] = []
        changed: list[OfferRecipient] = []
        for cid in members:
            is_held = cid in held
            row = existing.get(cid)
            if is_held or not unique:
                code = ""
            elif row is not None and row.code:
                code = row.code
            else:
                code = next(fresh)
            store_id = stores.get(cid) if stores else (row.store_id if row else None)
            if row is None:
                new_rows.append(
                    OfferRecipient(
                        organization_id=locked.organization_id,
                        offer=locked,
                        customer_id=cid,
                        code=code,
                        holdout=is_held,
                        store_id=store_id,
                    )
                )
            elif (row.code, row.holdout, row.store_id) != (code, is_held, store_id):
                row.code, row.holdout, row.store_id = code, is_held, store_id
                changed.append(row)
        if changed:
            # blank the codes that change first: a code is unique across the organisation
            OfferRecipient.objects.filter(pk__in=[r.pk for r in changed]).update(code="")
            OfferRecipient.objects.bulk_update(
                changed, ["code", "holdout", "store"], batch_size=WRITE_CHUNK
            )
        OfferRecipient.objects.bulk_create(new_rows, batch_size=WRITE_CHUNK)
        if unique:
            locked.shared_code = ""
        locked.recipients_count = len(receivers)
        locked.holdout_count = len(held)
        locked.fairness = fairness
        locked.fairness_flagged = flagged
        locked.status = OfferStatus.READY
        locked.message = ""
        locked.built_at = timezone.now()
        locked.save()
    job.progress(95, "Counting redemptions")
    from .redemption import redemptions_refresh

    redemptions_refresh(organization=organization, offer_ids=[locked.pk])
    log.info(
        "offer.built offer_id=%s recipients=%s holdout=%s flagged=%s",
        locked.pk,
        locked.recipients_count,
        locked.holdout_count,
        flagged,
    )
    return locked


def _mark_failed(offer_id: int, message: str) -> None:
    Offer.objects.filter(pk=offer_id).update(status=OfferStatus.FAILED, message=message[:500])


def offer_build_cancelled(*, job) -> None:
    """The `offer` job's `on_cancelled` hook: its build was cancelled before it
    finished, so the offer is not left "building". It becomes failed with the reason,
    even when an earlier build finished: the build was started because the offer is new
    or who gets it changed (or someone asked for it), so its old codes may not match
    it, and a failed offer is not sent until it is rebuilt. The codes of the last build
    stay (as after any failure). Idempotent; an offer a newer job is building is left
    alone."""
    offer = Offer.objects.filter(job_id=job.pk, status=OfferStatus.BUILDING).first()
    if offer is None:
        return
    if offer.built_at is not None:
        message = (
            "The build was cancelled before it finished. Rebuild it to bring its codes up to date."
        )
    else:
        message = "The build was cancelled before it finished. Rebuild it to make its codes."
    Offer.objects.filter(pk=offer.pk, job_id=job.pk, status=OfferStatus.BUILDING).update(
        status=OfferStatus.FAILED, message=message[:500]
    )


def offer_build(*, offer_id: int, job: JobHandle = NULL_JOB) -> Offer:
    """Build one offer (the `offer` job); a target that no longer works fails the
    offer with the reason, and the codes of its last good build stay."""
    offer = Offer.objects.select_related("organization").filter(pk=offer_id).first()
    if offer is None:
        raise ApplicationError("That offer was deleted.", code="not_found", status=404)
    try:
        return _build(offer, job=job)
    except ApplicationError as exc:
        _mark_failed(offer_id, exc.message)
        raise
    except JobCancelled:
        raise  # not an error: the job's hook says it was cancelled (offer_build_cancelled)
    except Exception:
        _mark_failed(offer_id, "The build stopped on an unexpected error; try rebuilding it.")
        raise
