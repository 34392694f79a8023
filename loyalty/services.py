"""Loyalty: save the programme, recompute tiers and points, exchange points.

Recomputation (`loyalty_refresh`, the pipeline's `loyalty` step, after each orders
import and nightly, and after the programme is saved):

- The as-of day is the organisation's latest data date counted in its time zone
  (`Organization.time_zone`) — its newest order's day: tiers come from orders, and
  the events this step writes must not move its own cut-off — or the day given
  (`--as-of`), read as a day of that time zone: orders are read up to the end of
  that local day. The shared reader (`customers.history.History`) cuts at a UTC
  day and leaves returns out of `purchases()`, so this step reads the orders table
  itself with one statement (the organisation filtered explicitly, erased people
  and other currencies handled as History does, using its erased ids and
  currency).
- `loyalty.compute` does the arithmetic; the results are written in one
  transaction with the programme row locked, so two runs at once never both
  record the same change: an account is created for every customer with a paid
  order and updated (bulk, in chunks) only where something changed, so running
  again changes nothing.
- A tier change writes a `TierChange` (from, to, up, on the as-of day), sets the
  account's `tier_since`, and adds a `tier_changed` event (properties `tier`,
  `from`, `up`, `tier_change_id`; `occurred_at` now, so automations watching
  "reached Gold" see it at their next evaluation).
- **Launching or re-shaping a programme messages nobody**: the first computation
  after a programme is created, after its metric, period or tiers change, or after
  a paused programme is switched on again (`program_save` clears `computed_at`),
  records everyone's placement as `TierChange` rows (the page's movement history
  starts there) but writes no `tier_changed` events, so an automation on
  `tier_changed` does not fire for the whole customer base at once; later runs
  write one event per real change.
- A tier removed from the programme leaves its customers without a tier until the
  next run places them again (recorded as a change from no tier).
- Points: earned = floor(points_per_unit × lifetime net spend), never below 0
  (returns take them back); available = earned − redeemed, never below 0.
  `points_redeemed` is re-derived from the `PointsRedemption` rows on every run.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import zoneinfo
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.tenancy import scope_check
from core.exceptions import ApplicationError
from core.jobs import NULL_JOB, JobHandle
from core.models import Job

from . import compute
from .models import (
    LoyaltyAccount,
    LoyaltyMetric,
    LoyaltyProgram,
    LoyaltyTier,
    PointsRedemption,
    TierChange,
)

log = logging.getLogger("segmenta.loyalty")

WRITE_CHUNK = 2_000
FETCH_CHUNK = 100_000
MAX_TIERS = 10
NAME_MAX = 60
PERIOD_MAX = 3650
THRESHOLD_MAX = Decimal("9999999999")
POINTS_PER_UNIT_MAX = Decimal("999999")
REWARD_POINTS_MAX = 10**9
REWARD_VALUE_MAX = Decimal("1000000")


# --- the programme ---------------------------------------------------------------------
def program_get(*, organization) -> LoyaltyProgram | None:
    scope_check(organization=organization)
    return LoyaltyProgram.objects.prefetch_related("tiers").first()


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _whole(value: Any) -> int | None:
    number = _number(value)
    if number is None or number != number.to_integral_value():
        return None
    return int(number)


def _four_places(number: Decimal) -> bool:
    return number == number.quantize(Decimal("0.0001"))


def _clean(data: Any, program: LoyaltyProgram | None) -> tuple[dict[str, Any], list[dict]]:
    """The programme's fields and tiers from `data`, or ApplicationError naming every
    field that is wrong. Keys left out keep the saved programme's value (or the
    default for a new one); `tiers` is required for a new programme."""
    if not isinstance(data, dict):
        raise ApplicationError(
            "Send the loyalty programme as an object: metric, period_days, "
            "points_per_unit and tiers.",
            {"fields": {"body": "Not an object."}},
        )
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}

    metric = data.get("metric", program.metric if program else LoyaltyMetric.SPEND)
    if metric not in LoyaltyMetric.values:
        errors["metric"] = "Choose orders (number of orders) or spend (amount spent)."
    out["metric"] = metric

    period = _whole(data.get("period_days", program.period_days if program else 365))
    if period is None or not 1 <= period <= PERIOD_MAX:
        errors["period_days"] = f"A whole number of days from 1 to {PERIOD_MAX}."
    out["period_days"] = period

    ppu = _number(data.get("points_per_unit", program.points_per_unit if program else 1))
    if ppu is None or ppu < 0 or ppu > POINTS_PER_UNIT_MAX or not _four_places(ppu):
        errors["points_per_unit"] = (
            f"A number from 0 to {POINTS_PER_UNIT_MAX:,} with at most 4 decimal places."
        )
    out["points_per_unit"] = ppu

    reward_points = _whole(data.get("reward_points", program.reward_points if program else 500))
    if reward_points is None or not 1 <= reward_points <= REWARD_POINTS_MAX:
        errors["reward_points"] = "A whole number of points, at least 1."
    out["reward_points"] = reward_points

    reward_value = _number(data.get("reward_value", program.reward_value if program else 5))
    if (
        reward_value is None
        or reward_value <= 0
        or reward_value > REWARD_VALUE_MAX
        or not _four_places(reward_value)
    ):
        errors["reward_value"] = "An amount above 0 (what the reward code takes off)."
    out["reward_value"] = reward_value

    active = data.get("active", program.active if program else True)
    if not isinstance(active, bool):
        errors["active"] = "true or false."
    out["active"] = active

    tiers: list[dict] = []
    if "tiers" in data or program is None:
        raw = data.get("tiers")
        if not isinstance(raw, list) or not raw:
            errors["tiers"] = "Give at least one tier: a name and the threshold that reaches it."
        elif len(raw) > MAX_TIERS:
            errors["tiers"] = f"At most {MAX_TIERS} tiers."
        else:
            seen: dict[str, int] = {}
            previous: Decimal | None = None
            for i, tier in enumerate(raw):
                key = f"tiers[{i}]"
                if not isinstance(tier, dict):
                    errors[key] = "Each tier is an object: name and threshold."
                    previous = None
                    continue
                name = str(tier.get("name") or "").strip()
                if not name:
                    errors[f"{key}.name"] = "Give the tier a name."
                elif len(name) > NAME_MAX:
                    errors[f"{key}.name"] = f"At most {NAME_MAX} characters."
                elif name.casefold() in seen:
                    errors[f"{key}.name"] = (
                        f"Tier {seen[name.casefold()] + 1} has this name already."
                    )
                else:
                    seen[name.casefold()] = i
                threshold = _number(tier.get("threshold"))
                if threshold is None or threshold < 0 or threshold > THRESHOLD_MAX:
                    errors[f"{key}.threshold"] = "A number, 0 or more."
                    previous = None
                    continue
                if metric == LoyaltyMetric.ORDERS and threshold != threshold.to_integral_value():
                    errors[f"{key}.threshold"] = "A whole number of orders."
                elif not _four_places(threshold):
                    errors[f"{key}.threshold"] = "At most 4 decimal places."
                elif previous is not None and threshold <= previous:
                    errors[f"{key}.threshold"] = (
                        f"Must be above the tier before it ({previous.normalize():f}): list the "
                        "tiers from the lowest to the highest."
                    )
                tiers.append({"name": name, "threshold": threshold, "position": i})
                previous = threshold
    elif program is not None and out["metric"] == LoyaltyMetric.ORDERS:
        for i, tier in enumerate(program.tiers.all()):
            if tier.threshold != tier.threshold.to_integral_value():
                errors[f"tiers[{i}].threshold"] = "A whole number of orders."
    if errors:
        listed = "; ".join(f"{k}: {v}" for k, v in errors.items())
        raise ApplicationError(f"The loyalty programme is not valid — {listed}", {"fields": errors})
    return out, tiers


def _ladder_of(program: LoyaltyProgram) -> tuple:
    tiers = tuple((t.name, t.threshold) for t in program.tiers.all().order_by("position", "id"))
    return (program.metric, program.period_days, tiers)


def _replace_tiers(program: LoyaltyProgram, tiers: list[dict]) -> None:
    """Keep the tier rows whose name stays (accounts keep pointing at them), change
    their threshold and place, delete the others, create the new ones."""
    existing = {t.name.casefold(): t for t in program.tiers.all()}
    wanted = {t["name"].casefold() for t in tiers}
    LoyaltyTier.objects.filter(
        program=program, pk__in=[t.pk for k, t in existing.items() if k not in wanted]
    ).delete()
    for tier in tiers:
        row = existing.get(tier["name"].casefold())
        if row is None:
            LoyaltyTier.objects.create(
                organization_id=program.organization_id,
                program=program,
                name=tier["name"],
                threshold=tier["threshold"],
                position=tier["position"],
            )
        elif (row.name, row.threshold, row.position) != (
            tier["name"],
            tier["threshold"],
            tier["position"],
        ):
            row.name, row.threshold, row.position = (
                tier["name"],
                tier["threshold"],
                tier["position"],
            )
            row.save(update_fields=["name", "threshold", "position"])


def _start_refresh(*, organization, user=None, sync: bool = False) -> Job:
    from core.jobs import job_start

    from .tasks import loyalty_refresh as task

    return job_start(
        organization=organization,
        kind="loyalty",
        task=task,
        params={"as_of": None},
        user=user,
        title="Loyalty (programme saved)",
        sync=sync,
    )


def program_save(
    *, organization, data: dict, user=None, request=None, sync: bool = False
) -> tuple[LoyaltyProgram, Job | None]:
    """Create or change the organisation's programme (CONTRACT `PUT loyalty/program/`)
    and start the `loyalty` job that places every customer (with `sync`, run it
    here). A new metric, period or tier ladder makes the next computation a quiet
    one (see the module's docstring)."""
    from accounts.services import audit_log

    scope_check(organization=organization)
    job: Job | None = None
    with transaction.atomic():
        program = LoyaltyProgram.objects.select_for_update().first()
        created = program is None
        fields, tiers = _clean(data, program)
        before = None if program is None else _ladder_of(program)
        was_paused = program is not None and not program.active
        if program is None:
            program = LoyaltyProgram(organization=organization)
        for name, value in fields.items():
            setattr(program, name, value)
        program.save()
        if tiers:
            _replace_tiers(program, tiers)
        after = _ladder_of(program)
        switched_on = was_paused and program.active
        if (before != after or switched_on) and program.computed_at is not None:
            LoyaltyProgram.objects.filter(pk=program.pk).update(computed_at=None)
        audit_log(
            organization=organization,
            action="loyalty.program_created" if created else "loyalty.program_changed",
            actor=user,
            request=request,
            target=f"loyalty programme {program.pk}",
            details={
                "metric": program.metric,
                "period_days": program.period_days,
                "points_per_unit": str(program.points_per_unit),
                "reward_points": program.reward_points,
                "reward_value": str(program.reward_value),
                "active": program.active,
                "tiers": [{"name": n, "threshold": f"{t.normalize():f}"} for n, t in after[2]],
            },
        )
        if not sync:
            job = _start_refresh(organization=organization, user=user)
    if sync:
        job = _start_refresh(organization=organization, user=user, sync=True)
    program = LoyaltyProgram.objects.prefetch_related("tiers").get(pk=program.pk)
    return program, job


def program_delete(*, organization, user=None, request=None) -> None:
    """Remove the programme with its tiers and accounts. Tier changes and points
    exchanged stay as history (codes already issued stay valid)."""
    from accounts.services import audit_log

    scope_check(organization=organization)
    with transaction.atomic():
        program = LoyaltyProgram.objects.select_for_update().first()
        if program is None:
            return
        LoyaltyAccount.objects.all().delete()
        program.delete()
        audit_log(
            organization=organization,
            action="loyalty.program_deleted",
            actor=user,
            request=request,
            target=f"loyalty programme {program.pk}",
        )


# --- reading the orders ----------------------------------------------------------------
def organization_zone(organization) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(organization.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def latest_local_day(organization) -> dt.date | None:
    """The organisation's latest data date for loyalty: the day of its newest order,
    in its time zone. Events are left out on purpose: tiers come from orders alone,
    and the `tier_changed` events this step writes (dated now) would otherwise move
    the next run's cut-off to today and shift every customer's period."""
    from django.db.models import Max

    from customers.models import Order
    from customers.services.limits import latest_plausible

    moment = Order.objects.filter(ordered_at__lte=latest_plausible()).aggregate(
        m=Max("ordered_at")
    )["m"]
    return None if moment is None else moment.astimezone(organization_zone(organization)).date()


def local_day_end(as_of: dt.date, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The first instant (UTC) after the day `as_of` of the time zone."""
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(0, 0), tzinfo=zone).astimezone(
        dt.UTC
    )


def orders_read(*, organization, as_of: dt.date, job: JobHandle = NULL_JOB) -> compute.OrderRows:
    """The customers' paid orders up to the end of the local day `as_of`: customer,
    local day, net amount in the organisation's currency (0 in another one) and
    whether the order is a purchase (no return, net amount above 0)."""
    from customers.history import History, epoch_sql, float_sql, table_name
    from customers.models import Order

    zone = organization_zone(organization)
    history = History(organization, as_of)  # the scope check, erased ids and currency
    amount = "CASE WHEN currency = '' OR currency = %s THEN total ELSE 0 END"
    sql = (
        f"SELECT customer_id, {epoch_sql('ordered_at')}, {float_sql(amount)}, "  # noqa: S608 - tables from model metadata
        "CASE WHEN is_return OR total <= 0 THEN 0 ELSE 1 END "
        f"FROM {table_name(Order)} WHERE organization_id = %s AND customer_id IS NOT NULL "
        "AND status = 'paid' AND ordered_at < %s"
    )
    cutoff = connection.ops.adapt_datetimefield_value(local_day_end(as_of, zone))
    parts = []
    with connection.cursor() as cursor:
        cursor.execute(sql, [history.own_currency(), history.organization_id, cutoff])
        done = 0
        while True:
            rows = cursor.fetchmany(FETCH_CHUNK)
            if not rows:
                break
            parts.append(np.array(rows, dtype=np.float64).reshape(-1, 4))
            done += len(rows)
            job.progress(5 + min(done / 2_000_000, 1.0) * 40, f"Reading orders: {done:,}")
    data = np.concatenate(parts) if parts else np.zeros((0, 4))
    erased = history.erased_ids()
    if erased.size:
        data = data[~np.isin(data[:, 0].astype(np.int64), erased)]
    return compute.OrderRows(
        customer_ids=data[:, 0].astype(np.int64),
        days=compute.local_days(data[:, 1].astype(np.int64), str(zone)),
        amounts=np.rint(np.nan_to_num(data[:, 2]) * compute.SCALE).astype(np.int64),
        purchase=data[:, 3] > 0,
    )


# --- recomputing -----------------------------------------------------------------------
def _ladder(program: LoyaltyProgram, tiers: list[LoyaltyTier]) -> compute.Ladder:
    return compute.Ladder(
        metric=program.metric,
        period_days=program.period_days,
        points_per_unit=compute.scaled(program.points_per_unit),
        thresholds=tuple(compute.scaled(t.threshold) for t in tiers),
    )


def loyalty_refresh(
    *, organization, as_of: dt.date | None = None, job: JobHandle = NULL_JOB
) -> dict[str, Any]:
    """Place every customer on the programme's tiers and count their points as of
    `as_of` (default: the latest data date in the organisation's time zone). Returns
    the job's summary: {"message", "as_of", "accounts", "changes", "events", ...}."""
    from segmentation.pipeline import pipeline_wait_for_imports

    scope_check(organization=organization)
    started = time.perf_counter()
    program = LoyaltyProgram.objects.first()
    if program is None:
        return {"message": "No loyalty programme yet."}
    if not program.active:
        return {"message": "The loyalty programme is paused; tiers and points were not updated."}
    if as_of is None:
        as_of = latest_local_day(organization)
        if as_of is None:
            return {"message": "No orders yet: tiers and points appear after the first import."}
    pipeline_wait_for_imports()
    job.progress(5, "Reading orders")
    rows = orders_read(organization=organization, as_of=as_of, job=job)
    read_seconds = time.perf_counter() - started
    pipeline_wait_for_imports()  # an import that began while this step read is not mixed in
    job.progress(50, "Placing customers on the tiers")
    with transaction.atomic():
        locked = LoyaltyProgram.objects.select_for_update().filter(pk=program.pk).first()
        if locked is None:  # deleted meanwhile
            return {"message": "The loyalty programme was deleted."}
        tiers = list(LoyaltyTier.objects.filter(program=locked).order_by("threshold", "id"))
        standing = compute.standings(rows, as_of=as_of, ladder=_ladder(locked, tiers))
        outcome = _write(
            locked, tiers, standing, as_of=as_of, quiet=locked.computed_at is None, job=job
        )
        LoyaltyProgram.objects.filter(pk=locked.pk).update(computed_at=timezone.now(), as_of=as_of)
    seconds = time.perf_counter() - started
    log.info(
        "loyalty.refresh_done org_id=%s as_of=%s accounts=%s changes=%s events=%s seconds=%.2f",
        organization.pk, as_of, outcome["accounts"], outcome["changes"], outcome["events"],
        seconds,
    )  # fmt: skip
    members = outcome["members"]
    return {
        "message": (
            f"{members:,} customers hold a tier; {outcome['changes']:,} changed tier "
            f"(orders up to {as_of:%d %b %Y})."
        ),
        "as_of": as_of.isoformat(),
        **outcome,
        "seconds": {"read": round(read_seconds, 3), "total": round(seconds, 3)},
    }


_ACCOUNT_COLUMNS = ("tier_id", "metric_value", "points_earned", "points_redeemed", "points",
                    "tier_since")  # fmt: skip


def _accounts_update(org_id: int, rows: list[tuple]) -> None:
    """Write changed accounts: one `UPDATE … FROM (VALUES …)` per chunk (PostgreSQL,
    SQLite ≥ 3.33). Django's bulk_update builds a CASE over the whole batch for each
    column, which SQLite evaluates row by row: minutes for a nightly run's changes.
    rows: (id, tier_id, metric_value, points_earned, points_redeemed, points,
    tier_since); the organisation is filtered explicitly (raw SQL)."""
    from customers.history import table_name

    table = table_name(LoyaltyAccount)
    ops = connection.ops
    now = ops.adapt_datetimefield_value(timezone.now())
    postgres = connection.vendor == "postgresql"
    names = ("id", *_ACCOUNT_COLUMNS)
    casts = ("bigint", "bigint", "numeric", "integer", "integer", "integer", "date")
    chunk = 500
    with connection.cursor() as cursor:
        for i in range(0, len(rows), chunk):
            part = rows[i : i + chunk]
            params: list[Any] = []
            for pk, tier_id, value, earned, redeemed, points, since in part:
                params += [pk, tier_id, ops.adapt_decimalfield_value(value, 14, 4), earned,
                           redeemed, points, ops.adapt_datefield_value(since)]  # fmt: skip
            if postgres:
                row = "(" + ", ".join(f"%s::{c}" for c in casts) + ")"
                source = f"(VALUES {', '.join([row] * len(part))}) AS d({', '.join(names)})"
            else:
                row = "(" + ", ".join(["%s"] * len(names)) + ")"
                columns = ", ".join(f"column{n + 1} AS {name}" for n, name in enumerate(names))
                source = f"(SELECT {columns} FROM (VALUES {', '.join([row] * len(part))})) AS d"  # noqa: S608 - fixed identifiers
            assignments = ", ".join(f"{c} = d.{c}" for c in _ACCOUNT_COLUMNS)
            cursor.execute(
                f"UPDATE {table} SET {assignments}, updated_at = %s FROM {source} "  # noqa: S608 - fixed identifiers
                f"WHERE {table}.organization_id = %s AND {table}.id = d.id",
                [now, *params, org_id],
            )


def _write(
    program: LoyaltyProgram,
    tiers: list[LoyaltyTier],
    standing: compute.Standings,
    *,
    as_of: dt.date,
    quiet: bool,
    job: JobHandle,
) -> dict[str, Any]:
    from customers.models import Customer, Event

    clock = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now_ = time.perf_counter()
        timings[name] = round(now_ - clock, 3)
        clock = now_

    org_id = program.organization_id
    tier_ids = [t.pk for t in tiers]
    names = {t.pk: t.name for t in tiers}
    rank = {t.pk: i for i, t in enumerate(tiers)}
    redeemed = dict(
        PointsRedemption.objects.values("customer_id")
        .annotate(n=Sum("points"))
        .values_list("customer_id", "n")
    )
    # (id, tier_id, metric_value, points_earned, points_redeemed, points, tier_since)
    existing: dict[int, tuple] = {
        row[1]: row
        for row in LoyaltyAccount.objects.values_list(
            "pk", "customer_id", *_ACCOUNT_COLUMNS
        ).iterator(chunk_size=20_000)
    }
    erased = set(Customer.objects.filter(erased_at__isnull=False).values_list("pk", flat=True))
    lap("load")
    wanted: dict[int, tuple[int | None, int, int]] = {}
    for cid, metric, tier, earned in zip(
        standing.customer_ids.tolist(),
        standing.metric.tolist(),
        standing.tier.tolist(),
        standing.points_earned.tolist(),
        strict=True,
    ):
        if cid not in erased:
            wanted[cid] = (tier_ids[tier] if tier >= 0 else None, metric, earned)
    for cid in existing:  # accounts of customers with no paid order (left) any more
        if cid not in wanted and cid not in erased:
            wanted[cid] = (None, 0, 0)

    created: list[LoyaltyAccount] = []
    changed: list[tuple] = []
    moves: list[TierChange] = []
    now = timezone.now()
    for n, (cid, (tier_id, metric, earned)) in enumerate(wanted.items()):
        if n % 20_000 == 0:
            job.progress(50 + 30 * n / max(len(wanted), 1), "Placing customers on the tiers")
        spent = int(redeemed.get(cid) or 0)
        points = max(earned - spent, 0)
        row = existing.get(cid)
        old_tier, since = (row[2], row[7]) if row is not None else (None, None)
        if old_tier != tier_id:
            since = as_of if tier_id is not None else None
            moves.append(
                TierChange(
                    organization_id=org_id,
                    customer_id=cid,
                    from_tier=names.get(old_tier, "") if old_tier else "",
                    to_tier=names.get(tier_id, "") if tier_id else "",
                    up=tier_id is not None
                    and (old_tier is None or rank.get(tier_id, 0) > rank.get(old_tier, -1)),
                    changed_on=as_of,
                    created_at=now,
                )
            )
        elif tier_id is not None and since is None:
            since = as_of
        value = compute.unscaled(metric)
        if row is None:
            created.append(
                LoyaltyAccount(
                    organization_id=org_id,
                    customer_id=cid,
                    tier_id=tier_id,
                    metric_value=value,
                    points_earned=earned,
                    points_redeemed=spent,
                    points=points,
                    tier_since=since,
                )  # fmt: skip
            )
        elif (
            row[2] != tier_id
            or compute.scaled(row[3]) != metric
            or (row[4], row[5], row[6]) != (earned, spent, points)
            or row[7] != since
        ):
            changed.append((row[0], tier_id, value, earned, spent, points, since))
        # else: nothing changed, nothing written (running again changes nothing)
    lap("place")
    job.progress(80, f"Saving {len(created) + len(changed):,} accounts")
    LoyaltyAccount.objects.bulk_create(created, batch_size=WRITE_CHUNK)
    _accounts_update(org_id, changed)
    lap("accounts")
    TierChange.objects.bulk_create(moves, batch_size=WRITE_CHUNK)
    events = 0
    if not quiet and moves:
        job.progress(92, f"Recording {len(moves):,} tier changes")
        Event.objects.bulk_create(
            [
                Event(
                    organization_id=org_id,
                    customer_id=m.customer_id,
                    type="tier_changed",
                    occurred_at=now,
                    properties={
                        "tier": m.to_tier,
                        "from": m.from_tier,
                        "up": m.up,
                        "tier_change_id": m.pk,
                    },
                    created_at=now,
                    updated_at=now,
                )
                for m in moves
            ],
            batch_size=WRITE_CHUNK,
        )
        events = len(moves)
    lap("changes")
    members = LoyaltyAccount.objects.filter(tier__isnull=False).count()
    return {
        "accounts": len(created) + len(changed),
        "created": len(created),
        "changes": len(moves),
        "events": events,
        "members": members,
        "quiet": quiet,
        "timings": timings,
    }


# --- exchanging points -----------------------------------------------------------------
def points_redeem(*, organization, customer, user=None, request=None) -> PointsRedemption:
    """Exchange the programme's `reward_points` of the customer's points for an offer
    code worth `reward_value` (offers.services.issue_reward_code). The account's
    points go down at once; the code, the points and the value are kept
    (`PointsRedemption`, and the audit log)."""
    from accounts.services import audit_log

    scope_check(organization=organization)
    if customer.organization_id != organization.pk or customer.erased_at is not None:
        raise ApplicationError("No such customer.", code="not_found", status=404)
    program = LoyaltyProgram.objects.first()
    if program is None:
        raise ApplicationError(
            "There is no loyalty programme yet, so there are no points to exchange.",
            code="no_programme",
            status=409,
        )
    if not program.active:
        raise ApplicationError(
            "The loyalty programme is paused: points cannot be exchanged until it is "
            "switched on again.",
            code="programme_paused",
            status=409,
        )
    with transaction.atomic():
        account = LoyaltyAccount.objects.select_for_update().filter(customer=customer).first()
        have = account.points if account is not None else 0
        if have < program.reward_points:
            raise ApplicationError(
                f"{customer.display_name} has {have:,} points; a reward needs "
                f"{program.reward_points:,}.",
                {"points": have, "needed": program.reward_points},
                code="not_enough_points",
                status=409,
            )
        from offers.services import issue_reward_code

        code = issue_reward_code(
            organization=organization, customer=customer, value=program.reward_value, user=user
        )
        redemption = PointsRedemption.objects.create(
            organization=organization,
            customer=customer,
            points=program.reward_points,
            value=program.reward_value,
            code=str(code)[:32],
            created_by=_person(user),
        )
        assert account is not None  # have ≥ reward_points ≥ 1
        account.points_redeemed += program.reward_points
        account.points = max(account.points_earned - account.points_redeemed, 0)
        account.save(update_fields=["points_redeemed", "points", "updated_at"])
        audit_log(
            organization=organization,
            action="loyalty.points_redeemed",
            actor=user,
            request=request,
            target=f"customer {customer.pk}",
            details={
                "redemption_id": redemption.pk,
                "points": program.reward_points,
                "value": str(program.reward_value),
            },
        )
    return redemption


def _person(user):
    """The signed-in person behind a request (an API key is nobody)."""
    from django.contrib.auth import get_user_model

    return user if isinstance(user, get_user_model()) and user.pk else None
