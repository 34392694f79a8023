"""Which channel works best for a group of customers, from past engagement.

The rule (the audience and segment pages show its result in plain words):

- Evidence is the last `WINDOW_DAYS` days up to the organisation's latest data
  date (its newest order or event, as the pipeline uses), not today, so imported
  history counts.
- **Message channels** (email, SMS, push) come from events: Segmenta's own
  `message_sent`, `message_opened`, `message_clicked` and `converted` with a
  `channel` property, and imported event types whose name mentions email,
  newsletter, e-mail, SMS or push (`email_open`, `EmailClicked`, `sms_click`; bounces,
  complaints and unsubscribes are not contact). A customer is *reached* by a
  channel when they have any such event for it, and *engaged* when one of those
  events is a click or a conversion (clicked, converted, purchase, order, redeem).
  Opens are reach only: mail clients open messages by themselves.
  Rate = engaged / reached.
- **Order channels** (the orders' `channel`: web, store, phone, marketplace, …):
  the reached customers are those who placed a paid order with a known channel in
  the window; engaged are those who ordered through this channel. Rate = share of
  recent buyers who buy through it.
- A channel needs at least `MIN_REACHED` reached customers and one engaged to be a
  candidate. The best channel is the candidate message channel with the highest
  rate (campaigns send through those); only when no message channel has enough
  evidence is it the order channel most of the group's recent buyers use. Ties go
  to more engaged customers, then the channel's name. No candidate: None.

`best_channel(customer_ids, *, organization)` answers for any group (an audience);
`segment_best_channels()` for every segment of the live run in one pass, cached
briefly per organisation, run and data version. `segment_panel` is the segment page's panel,
whose figure (`segment_best_channel`) is kept per organisation, segment and run (or rule),
not worked out per view: for a big organisation refreshed in the background and
worked out by each segmentation run (`segmentation.selectors.segment_figure`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from core.kept import kept_callable
from core.sensitive import name_words

WINDOW_DAYS = 180
MIN_REACHED = 20
CACHE_SECONDS = 600
LOOKUP_LIMIT = 20_000_000  # customer ids below this are counted with a lookup table

MESSAGE_CHANNELS = ("email", "sms", "push")
SEGMENTA_MESSAGE_TYPES = ("message_sent", "message_opened", "message_clicked", "converted")
_ENGAGED_TYPES = frozenset({"message_clicked", "converted"})
_CHANNEL_WORDS = {
    "email": "email",
    "emails": "email",
    "newsletter": "email",
    "sms": "sms",
    "push": "push",
}
_ENGAGED_WORDS = frozenset(
    {
        "click",
        "clicked",
        "clicks",
        "convert",
        "converted",
        "conversion",
        "purchase",
        "purchased",
        "order",
        "ordered",
        "redeem",
        "redeemed",
    }
)
_NOT_CONTACT_WORDS = frozenset(
    {
        "bounce",
        "bounced",
        "complaint",
        "complained",
        "unsubscribe",
        "unsubscribed",
        "optout",
        "failed",
        "dropped",
        "rejected",
    }
)
LABELS = {
    "email": "Email",
    "sms": "SMS",
    "push": "Push notifications",
    "web": "Web shop",
    "online": "Online shop",
    "app": "App",
    "store": "Store",
    "shop": "Shop",
    "pos": "Store till",
    "phone": "Phone",
    "marketplace": "Marketplace",
}

__all__ = [
    "Evidence",
    "best_channel",
    "classify_event_type",
    "group_best_channels",
    "segment_best_channel",
    "segment_best_channels",
    "segment_panel",
]


# --- the rule (no ORM) -----------------------------------------------------------------
def classify_event_type(event_type: str) -> tuple[str, bool] | None:
    """An imported event type -> (message channel, engaged?), or None when it is not
    a message event. `email_click` -> ("email", True); `sms_sent` -> ("sms", False)."""
    words = set(name_words(event_type))
    if words & _NOT_CONTACT_WORDS or ("opt" in words and "out" in words):
        return None
    channels = {_CHANNEL_WORDS[w] for w in words if w in _CHANNEL_WORDS}
    if "mail" in words and "e" in words:  # e-mail; "direct_mail" is the post
        channels.add("email")
    if len(channels) != 1:
        return None
    return channels.pop(), bool(words & _ENGAGED_WORDS)


def _label(channel: str) -> str:
    return LABELS.get(channel, channel[:1].upper() + channel[1:])


Key = tuple[str, str]  # (kind: "message" | "order", channel)


@dataclass(frozen=True)
class Evidence:
    """Engagement in the window as sorted arrays of distinct customer ids per
    (kind, channel): `reached` and `engaged` (see the module's rule; for order
    channels `reached` is every recent buyer, the same array for each channel)."""

    reached: dict[Key, np.ndarray]
    engaged: dict[Key, np.ndarray]
    as_of: dt.date | None
    window_days: int = WINDOW_DAYS

    @classmethod
    def empty(cls) -> Evidence:
        return cls({}, {}, None)


def _ids(values) -> np.ndarray:
    """Sorted distinct ids (a sort: numpy's hashing unique is slower on these)."""
    ids = np.sort(np.asarray(values if values is not None else [], dtype=np.int64).ravel())
    if len(ids) > 1:
        ids = ids[np.concatenate(([True], ids[1:] != ids[:-1]))]
    return ids


def _counter(members: np.ndarray):
    """count(ids) -> how many of `ids` (distinct) are members: a lookup table when
    the ids are small enough, else a sorted search."""
    members = _ids(members)
    if not len(members):
        return lambda ids: 0
    top = int(members[-1])
    if members[0] >= 0 and top < LOOKUP_LIMIT:
        flags = np.zeros(top + 1, dtype=bool)
        flags[members] = True
        return lambda ids: int(flags[ids[(ids >= 0) & (ids <= top)]].sum())
    return lambda ids: int(np.isin(ids, members, assume_unique=True).sum())


def _percent(rate: float) -> str:
    return f"{rate * 100:.0f}%"


_MESSAGES = {"email": "emails", "sms": "text messages", "push": "push notifications"}


def _reason(best: dict, runner_up: dict | None, window_days: int, *, about: bool = False) -> str:
    label = best["label"]
    if best["kind"] == "message":
        messages = _MESSAGES.get(best["channel"], f"{label} messages")
        text = (
            f"{'About ' if about else ''}{best['engaged']:,} of the {best['customers']:,} "
            "customers here who got "
            f"{messages} in the last {window_days} days clicked or bought from one "
            f"({_percent(best['rate'])})"
        )
    else:
        text = (
            f"No message channel has enough evidence yet, but {'about ' if about else ''}"
            f"{best['engaged']:,} of the "
            f"{best['customers']:,} customers here who ordered in the last {window_days} days "
            f"ordered through {label} ({_percent(best['rate'])})"
        )
    if runner_up is not None:
        text += f", against {_percent(runner_up['rate'])} for {runner_up['label']}"
    return text + "."


def _summary(
    rows: list[dict], window_days: int, as_of: dt.date | None, *, scale: float | None = None
) -> dict | None:
    """The best channel of one group from its per-channel rows, or None. With
    `scale` (the rows count a sample), the counts shown are scaled up to stand for
    everyone, while `MIN_REACHED` applies to the customers actually counted."""
    if not rows:
        return None
    by_channel = sorted(rows, key=lambda r: (r["kind"] != "message", -r["rate"], r["channel"]))
    candidates = [r for r in by_channel if r["customers"] >= MIN_REACHED and r["engaged"] > 0]
    for kind in ("message", "order"):
        ranked = sorted(
            (r for r in candidates if r["kind"] == kind),
            key=lambda r: (-r["rate"], -r["engaged"], r["channel"]),
        )
        if ranked:
            if scale is not None:
                shown = {id(r): _scaled(r, scale) for r in by_channel}
                by_channel = [shown[id(r)] for r in by_channel]
                ranked = [shown[id(r)] for r in ranked]
            best = ranked[0]
            runner_up = ranked[1] if len(ranked) > 1 else None
            return {
                "channel": best["channel"],
                "label": best["label"],
                "kind": kind,
                "rate": best["rate"],
                "customers": best["customers"],
                "engaged": best["engaged"],
                "reason": _reason(best, runner_up, window_days, about=scale is not None),
                "window_days": window_days,
                "as_of": as_of.isoformat() if as_of else None,
                "min_customers": MIN_REACHED,
                "by_channel": by_channel,
            }
    return None


def _scaled(row: dict, scale: float) -> dict:
    return {
        **row,
        "customers": round(row["customers"] * scale),
        "engaged": round(row["engaged"] * scale),
    }


def group_best_channels(evidence: Evidence, groups: dict, *, scale: float | None = None) -> dict:
    """The best channel of each group ({group: customer ids}; a customer may be in
    several groups). Groups without evidence are left out. `scale`: see `_summary`."""
    found = {}
    for group, members in groups.items():
        count = _counter(members)
        rows = []
        for key, reached_ids in evidence.reached.items():
            reached = count(reached_ids)
            if not reached:
                continue
            engaged = count(evidence.engaged.get(key, np.empty(0, dtype=np.int64)))
            kind, channel = key
            rows.append(
                {
                    "channel": channel,
                    "label": _label(channel),
                    "kind": kind,
                    "customers": reached,
                    "engaged": engaged,
                    "rate": round(engaged / reached, 4),
                }
            )
        summary = _summary(rows, evidence.window_days, evidence.as_of, scale=scale)
        if summary is not None:
            found[group] = summary
    return found


# --- loading ---------------------------------------------------------------------------
def data_version() -> str:
    """Changes whenever customers, orders or events are written
    (`customers.selectors.data_version`)."""
    from customers.selectors import data_version as customers_data_version

    return customers_data_version()


def _latest_data_at():
    from django.db.models import Max

    from customers.models import Event, Order

    latest = [
        Order.objects.aggregate(at=Max("ordered_at"))["at"],
        Event.objects.aggregate(at=Max("occurred_at"))["at"],
    ]
    latest = [at for at in latest if at is not None]
    return max(latest) if latest else None


def _id_arrays(queryset, keys: list[str], id_field: str) -> list[tuple]:
    """[(*key values, distinct ids)] for the rows of `queryset` grouped by `keys`.
    On PostgreSQL the database groups them into arrays (read in C, no Python work
    per row); elsewhere (SQLite in development and tests) rows are grouped here."""
    from django.db import connections

    queryset = queryset.order_by()
    if connections[queryset.db].vendor == "postgresql":
        from django.contrib.postgres.aggregates import ArrayAgg

        # duplicates are dropped here: a sort in numpy beats DISTINCT in the aggregate
        grouped = queryset.values(*keys).annotate(ids=ArrayAgg(id_field))
        return [(*(row[k] for k in keys), _ids(row["ids"])) for row in grouped]
    found: dict[tuple, list[int]] = {}
    for *values, pk in queryset.values_list(*keys, id_field).distinct().iterator(20_000):
        found.setdefault(tuple(values), []).append(pk)
    return [(*values, _ids(ids)) for values, ids in found.items()]


def _add(target: dict[Key, list[np.ndarray]], key: Key, ids: np.ndarray) -> None:
    target.setdefault(key, []).append(ids)


def _joined(parts: dict[Key, list[np.ndarray]], erased: np.ndarray) -> dict[Key, np.ndarray]:
    out = {}
    for key, arrays in parts.items():
        ids = _ids(np.concatenate(arrays))
        out[key] = ids[~np.isin(ids, erased)] if len(erased) else ids
    return out


def load_evidence(*, window_days: int = WINDOW_DAYS, sample=None) -> Evidence:
    """Engagement of the current organisation's customers in the window; with a
    `customers.sampling.CustomerSample`, of the customers in it."""
    from django.db.models.fields.json import KeyTextTransform

    from customers.models import Customer, Event, Order, OrderStatus

    until = _latest_data_at()
    if until is None:
        return Evidence.empty()
    since = until - dt.timedelta(days=window_days)
    reached: dict[Key, list[np.ndarray]] = {}
    engaged: dict[Key, list[np.ndarray]] = {}

    events = Event.objects.filter(occurred_at__gt=since, occurred_at__lte=until)
    if sample is not None:
        events = events.filter(sample.lookup("customer_id"))
    types = set(events.order_by().values_list("type", flat=True).distinct())
    imported = {t: c for t in types if (c := classify_event_type(t)) is not None}
    ours = [t for t in SEGMENTA_MESSAGE_TYPES if t in types]
    if ours:
        via = KeyTextTransform("channel", "properties")
        rows = _id_arrays(
            events.filter(type__in=ours).annotate(via=via), ["type", "via"], "customer_id"
        )
        for event_type, channel, ids in rows:
            channel = str(channel or "").strip().casefold()
            if channel in MESSAGE_CHANNELS:
                _add(reached, ("message", channel), ids)
                if event_type in _ENGAGED_TYPES:
                    _add(engaged, ("message", channel), ids)
    if imported:
        for event_type, ids in _id_arrays(
            events.filter(type__in=list(imported)), ["type"], "customer_id"
        ):
            channel, clicked = imported[event_type]
            _add(reached, ("message", channel), ids)
            if clicked:
                _add(engaged, ("message", channel), ids)

    orders = Order.objects.filter(
        ordered_at__gt=since,
        ordered_at__lte=until,
        customer__isnull=False,
        is_return=False,
        status=OrderStatus.PAID,
    ).exclude(channel="")
    if sample is not None:
        orders = orders.filter(sample.lookup("customer_id"))
    order_channels: dict[Key, list[np.ndarray]] = {}
    for channel, ids in _id_arrays(orders, ["channel"], "customer_id"):
        channel = " ".join(str(channel).split()).casefold()
        if channel:
            _add(order_channels, ("order", channel), ids)

    # erasure deletes a person's events and unlinks orders; a half-finished one must
    # not count
    erased = _ids(Customer.objects.filter(erased_at__isnull=False).values_list("pk", flat=True))
    reached_ids = _joined(reached, erased)
    engaged_ids = _joined(engaged, erased)
    if order_channels:
        by_channel = _joined(order_channels, erased)
        buyers = _ids(np.concatenate(list(by_channel.values())))
        for key, ids in by_channel.items():
            reached_ids[key] = buyers
            engaged_ids[key] = ids
    return Evidence(reached_ids, engaged_ids, until.date(), window_days)


def best_channel(customer_ids: Iterable[int], *, organization, sample=None) -> dict | None:
    """The best channel for these customers (see the module's rule), or None when
    there is no evidence yet. With a `customers.sampling.CustomerSample` (the
    audience preview's estimate; the ids are then the sample's), the evidence is the
    sample's and the counts shown are scaled up to the whole organisation: the rates
    are the sample's."""
    from accounts.tenancy import scope_check

    scope_check(organization=organization)
    if not isinstance(customer_ids, list | tuple | np.ndarray):
        customer_ids = list(customer_ids)  # a queryset is read once, not item by item
    ids = np.asarray(customer_ids, dtype=np.int64).ravel()
    if not len(ids):
        return None
    if sample is None:
        return group_best_channels(load_evidence(), {0: ids}).get(0)
    return group_best_channels(_sample_evidence(sample), {0: ids}, scale=sample.scale).get(0)


def _sample_evidence(sample) -> Evidence:
    """The engagement of a preview sample's customers, kept
    `customers.sampling.CACHE_SECONDS`: the builder previews an audience again at
    each change, and reading the window's events and orders takes about a second on
    a million customers."""
    from accounts.tenancy import require_organization_id

    return sample.cached(
        "audiences:sample-evidence",
        require_organization_id(),
        lambda: load_evidence(sample=sample),
    )


def segment_best_channels(*, organization=None) -> dict[int, dict]:
    """The best channel of every segment of the live run (cluster and RFM), in one
    pass over the memberships; segments without evidence are left out. Cached for
    `CACHE_SECONDS` per organisation, live run and data version (a new import or
    run is never answered from the cache)."""
    from django.core.cache import cache

    from accounts.tenancy import require_organization_id, scope_check
    from segmentation.models import SegmentationRun, SegmentMembership

    if organization is not None:
        scope_check(organization=organization)
    org_id = organization.pk if organization is not None else require_organization_id()
    live = SegmentationRun.objects.filter(is_live=True).values_list("pk", "created_at").first()
    if live is None:
        return {}
    run_id, run_created = live
    key = (
        f"audiences:segment-best-channels:org{org_id}:run{run_id}:{run_created:%Y%m%d%H%M%S%f}:"
        f"{data_version()}"
    )
    found = cache.get(key)
    if found is not None:
        return found
    memberships = SegmentMembership.objects.filter(run_id=run_id, segment__is_active=True)
    groups = {int(seg): ids for seg, ids in _id_arrays(memberships, ["segment_id"], "customer_id")}
    found = group_best_channels(load_evidence(), groups) if groups else {}
    cache.set(key, found, CACHE_SECONDS)
    return found


# --- the segment page's panel ------------------------------------------------------------
@kept_callable
def segment_best_channel(*, segment, organization) -> dict | None:
    """The best channel of a segment's members: the segment page's figure, kept and
    refreshed by `segmentation.selectors.segment_figure` (also in a background task,
    hence a function it can name)."""
    from segmentation.models import SegmentKind
    from segmentation.selectors import segment_members

    if segment.is_active and segment.kind != SegmentKind.RULE:
        return segment_best_channels(organization=organization).get(segment.pk)
    # a rule segment (evaluated now) or a retired one
    ids = segment_members(segment=segment).values_list("pk", flat=True)
    return best_channel(ids, organization=organization)


def segment_panel(*, request, segment) -> dict:
    """The segment page's "Best channel" panel: always drawn (its template has the
    empty state), with a link to build an audience from the segment."""
    from django.urls import NoReverseMatch, reverse

    from segmentation.selectors import segment_figure

    # The figure (not the panel: its page is drawn for each request) is worked out
    # once per organisation, segment and the run or rule that made its members; a
    # big organisation's is refreshed in the background and warmed by each run.
    found = segment_figure(
        segment=segment,
        name="best_channel",
        compute="audiences.channels:segment_best_channel",
        organization=request.organization,
        # a big organisation's page never waits for it: "being worked out" meanwhile
        working={"working": True},
    )
    try:
        build_url = f"{reverse('audiences:new')}?segment={segment.pk}"
    except NoReverseMatch:
        build_url = None
    return {
        "template": "audiences/_best_channel.html",
        "context": {
            "best": found,
            "segment": segment,
            "build_url": build_url,
            "window_days": WINDOW_DAYS,
            "min_customers": MIN_REACHED,
        },
    }
