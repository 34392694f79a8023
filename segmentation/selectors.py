"""Reads for segments, memberships, personas and their history.

Every query goes through the scoped managers (current organisation only).
"""

from __future__ import annotations

import copy
import logging
from array import array
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db.models import Count, F, Prefetch, Q, QuerySet

from core.kept import kept_callable

from .models import Persona, Segment, SegmentationRun, SegmentationSettings, SegmentKind
from .models import SegmentMembership as Membership

log = logging.getLogger("segmenta.segments")

LIVE_KINDS = (SegmentKind.CLUSTER, SegmentKind.RFM)


def live_run() -> SegmentationRun | None:
    return SegmentationRun.objects.filter(is_live=True).first()


def segmentation_settings_get() -> SegmentationSettings:
    """The organisation's settings, or unsaved defaults."""
    found = SegmentationSettings.objects.first()
    return found if found is not None else SegmentationSettings()


def segments_current(*, kind: str | None = None) -> QuerySet[Segment]:
    """Segments of the live run (cluster and RFM) and every rule segment."""
    qs = Segment.objects.filter(
        Q(kind__in=LIVE_KINDS, is_active=True) | Q(kind=SegmentKind.RULE)
    ).prefetch_related(Prefetch("personas", queryset=Persona.objects.all()))
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("kind", "-size", "id")


def personas_current() -> QuerySet[Persona]:
    return (
        Persona.objects.filter(segment__is_active=True)
        .select_related("segment", "segment__parent", "updated_by")
        # top-level segments first, then each segment's groups within together
        .order_by(
            "segment__kind", F("segment__parent_id").asc(nulls_first=True), "-segment__size", "id"
        )
    )


def segment_members_run_id(*, segment: Segment) -> int | None:
    """The run whose membership `segment_members` reads: the live run for an active
    segment, else the segment's last run; None for a rule segment (evaluated now)."""
    if segment.kind == SegmentKind.RULE:
        return None
    run_id = None
    if segment.is_active:
        run_id = SegmentationRun.objects.filter(is_live=True).values_list("pk", flat=True).first()
    return run_id if run_id is not None else segment.last_run_id


def segment_members(*, segment: Segment) -> QuerySet:
    """The segment's customers now: members in the live run (or, for a retired
    segment, in its last run); a rule segment is evaluated on the current data."""
    from customers.models import Customer

    if segment.kind == SegmentKind.RULE:
        from core.exceptions import ApplicationError

        from .services.rules import rule_clean, rule_customers

        try:
            rule = rule_clean(segment.rule)
        except ApplicationError:  # a field that is no longer offered: nobody matches
            return Customer.objects.none()
        return rule_customers(rule).order_by("pk")
    run_id = segment_members_run_id(segment=segment)
    if run_id is None:
        return Customer.objects.none()
    member_ids = Membership.objects.filter(run_id=run_id, segment=segment).values("customer_id")
    # a customer erased since the run is no longer shown anywhere
    return Customer.objects.filter(pk__in=member_ids, erased_at__isnull=True).order_by("pk")


# --- member pages and figures of big segments -------------------------------------------
# A segment of a run does not change after the run (but for erasures, which delete
# memberships), so what the pages compute from it is cached per organisation and run.
RUN_FIGURES_TIMEOUT = 24 * 3600
COUNT_TIMEOUT = 300  # a count may lag an erasure by five minutes
RULE_COUNT_TIMEOUT = 60  # a rule segment follows the data: counted at most a minute ago


def run_cached(parts: tuple, compute, timeout: int):
    """`compute()` cached under a key naming the organisation and `parts`."""
    from django.core.cache import cache

    from accounts.tenancy import require_organization_id

    key = "segmentation:" + ":".join(str(p) for p in parts) + f":org_{require_organization_id()}"
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, timeout)
    return value


def rule_key(segment: Segment) -> str:
    import hashlib
    import json

    raw = json.dumps(segment.rule or {}, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


SEGMENT_FIGURE_TIMEOUT = 600  # figures from new data (events, orders) show within minutes
SEGMENT_FIGURES_WARM_SECONDS = 300  # a run's job spends at most this on its segments' figures


def segment_members_version(*, segment: Segment) -> str:
    """Names what produced the segment's members now, for the keys of figures worked
    out from them: the run (id and time, since SQLite hands out the id of a deleted
    row again) whose membership `segment_members` reads; for a rule segment, its
    rule and the live run (rule segments are refreshed with each run and on each
    edit, and a rule may name a run's segments). A new run or an edited rule gives
    a new name."""
    run = None
    if segment.kind == SegmentKind.RULE or segment.is_active:
        run = SegmentationRun.objects.filter(is_live=True).values_list("pk", "created_at").first()
    if run is None and segment.kind != SegmentKind.RULE and segment.last_run_id is not None:
        run = (
            SegmentationRun.objects.filter(pk=segment.last_run_id)
            .values_list("pk", "created_at")
            .first()
        )
    stamp = f"run{run[0]}-{run[1]:%Y%m%d%H%M%S%f}" if run is not None else "norun"
    return f"rule-{rule_key(segment)}-{stamp}" if segment.kind == SegmentKind.RULE else stamp


def _figure_name(segment_id: int, name: str) -> str:
    return f"segment-figure:{name}:seg{segment_id}"


def _figures_used_key() -> str:
    from accounts.tenancy import require_organization_id

    return f"segmentation:kept-figures:org_{require_organization_id()}"


def _figure_used(name: str, path: str) -> None:
    """Note that the segment pages keep `name`, worked out by `path`: what a run's
    job works out for every segment as it ends (`segment_figures_warm`)."""
    from django.core.cache import cache

    from core.kept import KEPT_SECONDS

    used = cache.get(_figures_used_key()) or {}
    if used.get(name) != path:
        cache.set(_figures_used_key(), {**used, name: path}, KEPT_SECONDS)


def segment_figure(
    *,
    segment: Segment,
    name: str,
    compute,
    timeout: int = SEGMENT_FIGURE_TIMEOUT,
    organization=None,
    working=None,
):
    """`compute`'s figure, worked out from the segment's members (the best channel
    of 500,000 members), kept per organisation and segment with the
    `segment_members_version` it was worked out from (`core.kept`): worked out once
    per run (or rule), and again every `timeout` seconds for newer data.

    `compute` is a function of no arguments, or the "module:function" path of one
    marked `@kept_callable`, called as `fn(segment=..., organization=...)`. With a
    path, the figure of a big organisation (`KEPT_FIGURES_BACKGROUND_ABOVE`) that
    has only aged is shown as it was while a background refresh works it out again,
    and a run's job works it out for every current segment as it ends
    (`segment_figures_warm`), so the first view after a run reads it. Members it was
    not worked out for yet (a view before the warm got to the segment, an edited
    rule, a figure no longer kept) get `working` while a background refresh works it
    out, when the caller gives one (a page then says so: 5 s at a million customers
    is no wait for a page); without it, and for a small organisation, the figure is
    worked out in the request.

    Only values, never drawn HTML: what a page draws depends on its request (the
    member's role, the session's form token) and must not be shown to another
    member. So `compute` must not read the request either. None is kept too (no
    evidence takes as long to find as some)."""
    from core.kept import WORKING, kept_get, kept_resolve

    version = segment_members_version(segment=segment)
    work_out = compute
    refresh = params = None
    if isinstance(compute, str):
        if organization is None:
            from accounts.models import Organization
            from accounts.tenancy import require_organization_id

            organization = Organization.objects.get(pk=require_organization_id())
        work_out = partial(kept_resolve(compute), segment=segment, organization=organization)
        refresh = "segmentation.selectors:segment_figure_refresh"
        params = {"segment_id": segment.pk, "name": name, "compute": compute}
        _figure_used(name, compute)
    kept = kept_get(
        name=_figure_name(segment.pk, name),
        version=version,
        compute=work_out,
        max_age=timeout,
        refresh=refresh,
        params=params,
        # another run's or rule's members: not this segment's figure any more
        earlier_usable=lambda entry: entry["version"] == version,
        first="inline" if working is None else "later",
    )
    return working if kept.state == WORKING else kept.value


@kept_callable
def segment_figure_refresh(*, organization, segment_id: int, name: str, compute: str) -> None:
    """Work out and keep one segment's figure `name` with `compute` (a path, see
    `segment_figure`): a background refresh, or a run's job warming its segments."""
    from core.kept import kept_resolve, kept_store

    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is None:  # deleted since
        return
    fn = kept_resolve(compute)
    version = segment_members_version(segment=segment)  # read first: see kept_store
    kept_store(
        name=_figure_name(segment_id, name),
        version=version,
        value=fn(segment=segment, organization=organization),
    )


def segment_figures_warm(*, organization) -> int:
    """Work out the kept figures of every current segment of a big organisation (the
    segments page's from→to table, `migration_matrix`; each segment's movement since
    the last run, `segment_migration`; and those the segment pages keep:
    `segment_figure` with a path), biggest segments first,
    within SEGMENT_FIGURES_WARM_SECONDS: called by the segments job as its run is
    committed, so the first view after a run does not work them out (1.2 s for the
    best channel of a 500,000-member segment). Only speed is at stake: a failure is
    logged and the page works the figure out itself. How many kept figures were worked
    out (the movements not counted)."""
    import time

    from django.core.cache import cache

    from core.kept import organization_is_big

    try:
        used = cache.get(_figures_used_key()) or {}
        if not organization_is_big(organization.pk):
            return 0
        segments = list(
            Segment.objects.filter(
                Q(kind__in=LIVE_KINDS, is_active=True) | Q(kind=SegmentKind.RULE)
            ).order_by("-size", "pk")
        )
    except Exception:  # noqa: BLE001 - the run stands; pages work figures out themselves
        log.warning("segments.figures_warm_failed org_id=%s", organization.pk, exc_info=True)
        return 0
    deadline = time.monotonic() + SEGMENT_FIGURES_WARM_SECONDS
    done = 0
    try:
        # the segments page's from→to table between the last two runs (it reads every
        # membership of both: 2.4 s at a million customers), kept per pair of runs
        migration_matrix_refresh(organization=organization)
    except Exception:  # noqa: BLE001
        log.warning("segments.matrix_warm_failed org_id=%s", organization.pk, exc_info=True)
    for segment in segments:
        segment_id = segment.pk
        if segment.kind != SegmentKind.RULE and time.monotonic() <= deadline:
            # where its members came from and went to since the last run (2.4 s for a
            # 500,000-member segment at 1,000,000 customers), kept per pair of runs
            try:
                segment_migration_refresh(organization=organization, segment_id=segment_id)
            except Exception:  # noqa: BLE001
                log.warning(
                    "segments.migration_warm_failed org_id=%s segment_id=%s",
                    organization.pk,
                    segment_id,
                    exc_info=True,
                )
        for name, path in sorted(used.items()):
            if time.monotonic() > deadline:
                log.info("segments.figures_warm_stopped org_id=%s done=%s", organization.pk, done)
                return done
            try:
                segment_figure_refresh(
                    organization=organization, segment_id=segment_id, name=name, compute=path
                )
                done += 1
            except Exception:  # noqa: BLE001
                log.warning(
                    "segments.figure_warm_failed org_id=%s segment_id=%s name=%s",
                    organization.pk,
                    segment_id,
                    name,
                    exc_info=True,
                )
    return done


MEMBER_INDEX_STEP = 50  # the member index keeps the id of every 50th member
MAX_ID = 2**63 - 1


class MemberRows:
    """The members of a segment in id order, read so that a page deep in a segment
    of 500,000 costs what the first page does:

    - a run's segment walks the membership's unique index (organisation, run,
      segment, customer) from a customer id, without touching the customers table,
      then fetches only the page's customers (erased ones are left out);
    - a rule segment walks the live rule query in id order from an id (the index
      `customer_org_id`: "the next 51 that match after this id"), never an OFFSET
      over it.

    Numbered pages (the API's `?page=N`, the site's old links) start from the
    member index: the count and the id of every 50th member, worked out in one pass
    and cached (per run for five minutes, a rule segment's for a minute), so page N
    starts at its place instead of skipping (N - 1) x 50 rows. While that cache lags
    an erasure or a change of the data, a numbered page may be a member short or
    repeat one at its edge, as numbered pages always could; keyset pages (`walk`:
    after or before a member) never skip or repeat one.

    It is a sequence for `Paginator` (`count`, slices) and answers the part of the
    queryset protocol that `core.api.pagination.Pagination` uses for `?cursor=`
    pages: `order_by("pk").filter(pk__gt=after)[:n]`."""

    def __init__(self, segment: Segment):
        self.segment = segment
        self.is_rule = segment.kind == SegmentKind.RULE
        self.run_id = None if self.is_rule else segment_members_run_id(segment=segment)
        self.after: int | None = None  # set by `filter`: cursor pages
        self._index: dict[str, Any] | None = None

    # --- the ids, in order, from an index ----------------------------------------------
    def _source(self, context: tuple | None = None) -> tuple[QuerySet, str] | None:
        """(rows, the column holding the customer id) or None: nobody. A rule is
        evaluated with `context` (reference day, live run), by default the one its
        member index was worked out with: the latest day is a MAX over every order
        and event (0.14 s at a million customers), which a page must not pay on each
        view, and the pages then agree with their count and page starts."""
        if self.is_rule:
            from core.exceptions import ApplicationError

            from .services.rules import RuleContext, rule_clean, rule_customers

            try:
                rule = rule_clean(self.segment.rule)
            except ApplicationError:  # a field that is no longer offered: nobody matches
                return None
            reference_date, live_run_id = context or self.index()["context"]
            found = RuleContext(reference_date=reference_date, live_run_id=live_run_id)
            return rule_customers(rule, context=found), "pk"
        if self.run_id is None:
            return None
        return Membership.objects.filter(run_id=self.run_id, segment=self.segment), "customer_id"

    def _ids(
        self,
        *,
        gt: int | None = None,
        gte: int | None = None,
        lt: int | None = None,
        skip: int = 0,
        limit: int,
    ) -> list[int]:
        """Member ids after `gt` (or from `gte`, skipping `skip`) in id order, or
        before `lt` nearest first: at most `limit`."""
        source = self._source()
        if source is None or limit <= 0:
            return []
        rows, column = source
        order = column
        if gt is not None:
            rows = rows.filter(**{f"{column}__gt": gt})
        if gte is not None:
            rows = rows.filter(**{f"{column}__gte": gte})
        if lt is not None:
            rows, order = rows.filter(**{f"{column}__lt": lt}), f"-{column}"
        return list(rows.order_by(order).values_list(column, flat=True)[skip : skip + limit])

    def walk(
        self,
        *,
        after: int = 0,
        before: int | None = None,
        start: int | None = None,
        skip: int = 0,
        n: int,
    ) -> list:
        """Up to `n` members (customers, erased ones never): after the id `after` in
        id order; or before the id `before`, nearest first; or, for a numbered page,
        the `n` places from the id `start` after skipping `skip` (a customer erased
        since the index was read leaves the page one short rather than moving where
        the next numbered page starts). Each read starts at its place in the index."""
        from customers.models import Customer

        rows: list = []
        numbered = start is not None
        while len(rows) < n:
            want = n - len(rows)
            if before is not None:
                ids = self._ids(lt=before, limit=want)
            elif start is not None:
                ids, start = self._ids(gte=start, skip=skip, limit=want), None
            else:
                ids = self._ids(gt=after, limit=want)
            found = Customer.objects.filter(pk__in=ids, erased_at__isnull=True).in_bulk()
            rows += [found[i] for i in ids if i in found]
            if len(ids) < want or numbered:
                break
            # customers erased since the index was read: read on past them
            if before is not None:
                before = ids[-1]
            else:
                after = ids[-1]
        return rows

    # --- the member index: the count and every 50th member's id ------------------------
    def index(self) -> dict[str, Any]:
        """{"count", "starts": every 50th member's id, "context": a rule's}. Keyed by
        what made the members (`segment_members_version`: the run, or the rule and
        the live run) and when the segment was created (a database made again
        hands out the same ids, and Redis outlives it)."""
        if self._index is None:
            if not self.is_rule and self.run_id is None:
                self._index = {"count": 0, "starts": array("q"), "context": None}
            else:
                key = (
                    "member_index",
                    self.segment.pk,
                    f"{self.segment.created_at:%Y%m%d%H%M%S%f}",
                    segment_members_version(segment=self.segment),
                )
                timeout = RULE_COUNT_TIMEOUT if self.is_rule else COUNT_TIMEOUT
                self._index = run_cached(key, self._index_compute, timeout)
        return self._index

    def _index_compute(self) -> dict[str, Any]:
        """One pass over the members in id order keeping every 50th id (a running
        ROW_NUMBER, nothing held but the ids kept), then the count: 50 per id kept
        but the last, plus the members from the last one on (at most 50, read from
        the index)."""
        from django.db.models import Window
        from django.db.models.functions import RowNumber

        context = None
        if self.is_rule:
            from .services.rules import rule_context

            found = rule_context()
            context = (found.reference_date, found.live_run_id)
        source = self._source(context)
        if source is None:
            return {"count": 0, "starts": array("q"), "context": context}
        rows, column = source
        starts = array(
            "q",
            rows.annotate(_position=Window(RowNumber(), order_by=F(column).asc()))
            .annotate(_step=(F("_position") - 1) % MEMBER_INDEX_STEP)
            .filter(_step=0)
            .order_by(column)
            .values_list(column, flat=True),
        )
        count = 0
        if starts:
            tail = rows.filter(**{f"{column}__gte": starts[-1]}).order_by()
            count = (len(starts) - 1) * MEMBER_INDEX_STEP + tail.count()
        return {"count": count, "starts": starts, "context": context}

    def number_of(self, first_id: int, size: int = MEMBER_INDEX_STEP) -> int | None:
        """The number of the page of `size` that starts with the member `first_id`,
        when the member index knows it (the page starts where a page of 50 starts)."""
        if size != MEMBER_INDEX_STEP:
            return None
        starts = self.index()["starts"]
        at = bisect_left(starts, first_id)
        return at + 1 if at < len(starts) and starts[at] == first_id else None

    # --- a sequence for Paginator ------------------------------------------------------
    def count(self) -> int:
        return self.index()["count"]

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index):
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("MemberRows pages by slices")
        first = index.start or 0
        if self.after is not None:  # a cursor page: the members after `after`
            if index.stop is None:
                raise TypeError("A cursor page needs an end")
            return self.walk(after=self.after, n=index.stop)[first:]
        stop = self.count() if index.stop is None else index.stop
        block, skip = divmod(first, MEMBER_INDEX_STEP)
        starts = self.index()["starts"]
        if stop <= first or block >= len(starts):
            return []
        return self.walk(start=starts[block], skip=skip, n=stop - first)

    # --- what Pagination's cursor pages ask of a queryset ------------------------------
    def order_by(self, *fields: str) -> MemberRows:
        if fields != ("pk",):
            raise ValueError("Members are read in id order only")
        return self

    def filter(self, *, pk__gt: int) -> MemberRows:
        after = copy.copy(self)
        after.after = pk__gt
        return after


@dataclass
class MemberPage:
    """One page of a segment's members for the site."""

    rows: list
    count: int
    pages: int
    number: int | None  # None: a page the member index cannot place
    next_after: str = ""  # cursors for the links ("" when there is no such page)
    previous_before: str = ""


def _member_cursor(value: str) -> int | None:
    """The id a cursor names, or None when there is none or it is not one of ours
    (a forged or damaged link starts from the first page)."""
    from core.api.pagination import cursor_decode
    from core.exceptions import ApplicationError

    if not (value or "").strip():
        return None
    try:
        return cursor_decode(value)
    except ApplicationError:
        return None


def member_page(
    *, segment: Segment, after: str = "", before: str = "", page: str = "", size: int = 50
) -> MemberPage:
    """A page of the segment's members in id order for the site: after the member
    `after` names (the Next link), before the one `before` names (Previous), or
    page number `page` (links from before keyset pages, and the last page; out of
    range: the nearest page). Each starts at its place in the index (MemberRows):
    page 10,000 costs what page 1 does."""
    from core.api.pagination import cursor_encode

    members = MemberRows(segment)
    count = members.count()
    pages = max(1, -(-count // size))
    after_id, before_id = _member_cursor(after), _member_cursor(before)
    rows: list = []
    number: int | None = None
    has_previous = has_next = False
    if after_id is not None:
        rows = members.walk(after=after_id, n=size + 1)
        has_next = len(rows) > size
        rows = rows[:size]
        has_previous = bool(rows) and bool(members._ids(lt=rows[0].pk, limit=1))
        if not rows:  # the members after it have gone since: the last page
            page, after_id = str(pages), None
    elif before_id is not None:
        nearest = members.walk(before=before_id, n=size + 1)
        if len(nearest) > size:
            rows = nearest[:size][::-1]
            has_previous = True
            has_next = bool(members._ids(gt=rows[-1].pk, limit=1))
        else:  # fewer than a page before it: the first page
            before_id = None
    if after_id is None and before_id is None:
        try:
            number = min(max(int(page), 1), pages) if page else 1
        except ValueError:
            number = 1
        rows = members[(number - 1) * size : number * size + 1]
        has_next = len(rows) > size
        rows = rows[:size]
        has_previous = number > 1 and bool(rows)
        if not rows and number > 1:  # the segment shrank since it was counted: its end
            rows = members.walk(before=MAX_ID, n=size)[::-1]
            has_previous, number = bool(rows) and bool(members._ids(lt=rows[0].pk, limit=1)), None
    elif rows:
        number = members.number_of(rows[0].pk, size)
    return MemberPage(
        rows=rows,
        count=count,
        pages=pages,
        number=number,
        next_after=cursor_encode(rows[-1].pk) if has_next else "",
        previous_before=cursor_encode(rows[0].pk) if has_previous else "",
    )


def segment_history(*, segment: Segment, limit: int = 30) -> list[dict[str, Any]]:
    """Size of the segment in each of the last runs (oldest first), from run summaries,
    so it survives pruning of old membership rows."""
    runs = SegmentationRun.objects.order_by("-created_at", "-id").values(
        "pk", "as_of", "created_at", "summary", "is_live"
    )[:limit]
    out = []
    for run in reversed(list(runs)):
        entry = (run["summary"] or {}).get("segments", {}).get(str(segment.pk))
        out.append(
            {
                "run_id": run["pk"],
                "as_of": run["as_of"],
                "created_at": run["created_at"],
                "is_live": run["is_live"],
                "size": entry["size"] if entry else 0,
                "revenue_share": entry.get("revenue_share") if entry else None,
            }
        )
    return out


def previous_run(*, run: SegmentationRun) -> SegmentationRun | None:
    return (
        SegmentationRun.objects.filter(
            Q(created_at__lt=run.created_at) | Q(created_at=run.created_at, pk__lt=run.pk)
        )
        .order_by("-created_at", "-id")
        .first()
    )


def _run_pair_figure(*, name: str, run, prev, compute, refresh: str, params: dict):
    """A figure of the live run against the previous one (`compute()`), kept per
    organisation and pair of runs (`core.kept`): it never changes once both are
    written. A small organisation works it out in the request; a big one's is worked
    out by the run's job as it ends (`segment_figures_warm`), and a view before that
    gets None while a background refresh (`refresh`) works it out: read from every
    membership of both runs, it takes seconds at a million customers."""
    from core.kept import kept_get

    version = _pair_version(run, prev)
    return kept_get(
        name=name,
        version=version,
        compute=compute,
        max_age=RUN_FIGURES_TIMEOUT,
        refresh=refresh,
        params=params,
        earlier_usable=lambda entry: entry["version"] == version,
        first="later",
    ).value


def _live_pair() -> tuple[SegmentationRun, SegmentationRun] | None:
    """The live run and the one before it, or None without both."""
    run = live_run()
    prev = previous_run(run=run) if run is not None else None
    return (run, prev) if run is not None and prev is not None else None


def _pair_version(run: SegmentationRun, prev: SegmentationRun) -> str:
    return f"run{run.pk}-prev{prev.pk}"


def _migration_name(segment_id: int) -> str:
    return f"segment-migration:seg{segment_id}"


def _matrix_name(kind: str) -> str:
    return f"segment-matrix:{kind}"


@kept_callable
def segment_migration_refresh(*, organization, segment_id: int) -> None:
    """Work out and keep a segment's moves between the last two runs (`segment_migration`)."""
    from core.kept import kept_store

    segment = Segment.objects.filter(pk=segment_id).first()
    pair = _live_pair()
    if segment is None or pair is None or segment.kind == SegmentKind.RULE:
        return
    run, prev = pair
    kept_store(
        name=_migration_name(segment_id),
        version=_pair_version(run, prev),
        value=_segment_migration_counts(segment=segment, run=run, prev=prev),
    )


@kept_callable
def migration_matrix_refresh(*, organization, kind: str = SegmentKind.CLUSTER) -> None:
    """Work out and keep the from→to counts between the last two runs (`migration_matrix`)."""
    from core.kept import kept_store

    pair = _live_pair()
    if pair is None:
        return
    run, prev = pair
    kept_store(
        name=_matrix_name(kind),
        version=_pair_version(run, prev),
        value=_migration_matrix_counts(kind=kind, run=run, prev=prev),
    )


def segment_migration(*, segment: Segment) -> dict[str, Any] | None:
    """Where the segment's members came from and went to between the last two runs.

    Returns {"run", "previous", "inflow": [{segment, name, count}], "outflow": [...],
    "stayed"} with segments of the same kind, or None without two runs, or
    {"working": True} while a big organisation's are worked out in the background
    (`_run_pair_figure`). The figures are kept per organisation, segment and pair of
    runs (they do not change once both runs are written)."""
    pair = _live_pair() if segment.kind != SegmentKind.RULE else None
    if pair is None:
        return None
    run, prev = pair
    counts = _run_pair_figure(
        name=_migration_name(segment.pk),
        run=run,
        prev=prev,
        compute=lambda: _segment_migration_counts(segment=segment, run=run, prev=prev),
        refresh="segmentation.selectors:segment_migration_refresh",
        params={"segment_id": segment.pk},
    )
    if counts is None:
        return {"working": True}
    names = dict(Segment.objects.filter(kind=segment.kind).values_list("pk", "name"))

    def rows(flows: list[tuple[int, int]]) -> list[dict[str, Any]]:
        return [
            {"segment_id": sid, "name": names.get(sid, f"Segment {sid}"), "count": n}
            for sid, n in sorted(flows, key=lambda kv: -kv[1])
        ]

    return {
        "run": run,
        "previous": prev,
        "size_now": counts["size_now"],
        "size_before": counts["size_before"],
        "stayed": counts["stayed"],
        "inflow": rows(counts["inflow"]),
        "outflow": rows(counts["outflow"]),
        # customers with no segment of this kind in the other run (new customers,
        # or customers without orders before)
        "new": counts["new"],
        "gone": counts["gone"],
    }


def _segment_migration_counts(
    *, segment: Segment, run: SegmentationRun, prev: SegmentationRun
) -> dict[str, Any]:
    kind = segment.kind
    # flows between segments of the same level: top-level segments with each
    # other, sub-segments with their siblings (a customer is in both levels)
    level = Q(segment__kind=kind) & (
        Q(segment__parent__isnull=True)
        if segment.parent_id is None
        else Q(segment__parent_id=segment.parent_id)
    )
    current = Membership.objects.filter(run=run, segment=segment).values("customer_id")
    before = Membership.objects.filter(run=prev, segment=segment).values("customer_id")
    inflow_rows = (
        Membership.objects.filter(level, run=prev, customer_id__in=current)
        .values("segment_id")
        .annotate(n=Count("id"))
    )
    inflow = {r["segment_id"]: r["n"] for r in inflow_rows}
    outflow_rows = (
        Membership.objects.filter(level, run=run, customer_id__in=before)
        .values("segment_id")
        .annotate(n=Count("id"))
    )
    outflow = {r["segment_id"]: r["n"] for r in outflow_rows}
    size_now = Membership.objects.filter(run=run, segment=segment).count()
    size_before = Membership.objects.filter(run=prev, segment=segment).count()
    stayed = inflow.pop(segment.pk, 0)
    outflow.pop(segment.pk, None)
    return {
        "size_now": size_now,
        "size_before": size_before,
        "stayed": stayed,
        "inflow": list(inflow.items()),
        "outflow": list(outflow.items()),
        "new": max(size_now - stayed - sum(inflow.values()), 0),
        "gone": max(size_before - stayed - sum(outflow.values()), 0),
    }


def migration_matrix(*, kind: str = SegmentKind.CLUSTER) -> dict[str, Any] | None:
    """From→to counts between the previous and the live run, for segments of `kind`
    (kept per organisation and pair of runs; {"working": True} while a big
    organisation's are worked out in the background, `_run_pair_figure`)."""
    pair = _live_pair()
    if pair is None:
        return None
    run, prev = pair
    pairs = _run_pair_figure(
        name=_matrix_name(kind),
        run=run,
        prev=prev,
        compute=lambda: _migration_matrix_counts(kind=kind, run=run, prev=prev),
        refresh="segmentation.selectors:migration_matrix_refresh",
        params={"kind": str(kind)},
    )
    if pairs is None:
        return {"working": True}
    counts: dict[tuple[int | None, int | None], int] = {(a, b): n for a, b, n in pairs}
    names = dict(Segment.objects.filter(kind=kind).values_list("pk", "name"))
    sources = sorted({a for a, _ in counts}, key=lambda s: (s is None, s or 0))
    targets = sorted({b for _, b in counts}, key=lambda s: (s is None, s or 0))
    return {
        "run": run,
        "previous": prev,
        "sources": [(s, names.get(s, "No segment") if s else "Not segmented") for s in sources],
        "targets": [(t, names.get(t, "No segment") if t else "Not segmented") for t in targets],
        "rows": [[counts.get((s, t), 0) for t in targets] for s in sources],
        "source_rows": [
            (
                (s, names.get(s, "No segment") if s else "Not segmented"),
                [counts.get((s, t), 0) for t in targets],
            )
            for s in sources
        ],
    }


def _migration_matrix_counts(
    *, kind: str, run: SegmentationRun, prev: SegmentationRun
) -> list[tuple[int | None, int | None, int]]:
    """(segment before, segment now, customers) over top-level segments (sub-segments
    split them further); None: not in a segment of `kind` in that run."""
    top = Q(segment__kind=kind, segment__parent__isnull=True)
    before = {
        cid: sid
        for cid, sid in Membership.objects.filter(top, run=prev).values_list(
            "customer_id", "segment_id"
        )
    }
    counts: dict[tuple[int | None, int | None], int] = defaultdict(int)
    seen = set()
    for cid, sid in Membership.objects.filter(top, run=run).values_list(
        "customer_id", "segment_id"
    ):
        counts[(before.get(cid), sid)] += 1
        seen.add(cid)
    for cid, sid in before.items():
        if cid not in seen:
            counts[(sid, None)] += 1
    return [(a, b, n) for (a, b), n in counts.items()]


def customer_segments(*, customer_ids: list[int]) -> dict[int, dict[str, Any]]:
    """For each customer: `segment` ({id, name} of the live cluster segment or None)
    and `segments` (every membership in the live run: {id, name, kind})."""
    out: dict[int, dict[str, Any]] = {
        cid: {"segment": None, "segments": []} for cid in customer_ids
    }
    run_id = SegmentationRun.objects.filter(is_live=True).values_list("pk", flat=True).first()
    if run_id is None or not customer_ids:
        return out
    rows = (
        Membership.objects.filter(run_id=run_id, customer_id__in=customer_ids)
        .values_list(
            "customer_id", "segment_id", "segment__name", "segment__kind", "segment__parent_id"
        )
        .order_by("segment__kind", "segment_id")
    )
    for cid, sid, name, kind, parent_id in rows:
        entry = {"id": sid, "name": name, "kind": kind}
        out[cid]["segments"].append(entry)
        # `segment` is the top-level cluster segment; its sub-segment is listed
        # in `segments`
        if kind == SegmentKind.CLUSTER and parent_id is None and out[cid]["segment"] is None:
            out[cid]["segment"] = {"id": sid, "name": name}
    return out


def customer_segment_history(*, customer_id: int, limit: int = 24) -> list[dict[str, Any]]:
    """The customer's cluster and RFM segment in each of the last runs, newest first."""
    rows = (
        Membership.objects.filter(
            customer_id=customer_id, segment__kind__in=LIVE_KINDS, segment__parent__isnull=True
        )
        .values_list(
            "run_id", "run__as_of", "run__is_live", "segment_id", "segment__name", "segment__kind"
        )
        .order_by("-run__created_at", "-run_id")
    )
    return _history_rows(rows, limit)


def _history_rows(rows, limit: int) -> list[dict[str, Any]]:
    """(run id, as of, live?, segment id, name, kind) rows, newest run first, folded
    into one entry per run with its `cluster` and `rfm` segment."""
    by_run: dict[int, dict[str, Any]] = {}
    for run_id, as_of, is_live, sid, name, kind in rows:
        entry = by_run.setdefault(
            run_id,
            {"run_id": run_id, "as_of": as_of, "is_live": is_live, "cluster": None, "rfm": None},
        )
        entry[kind] = {"id": sid, "name": name}
        if len(by_run) > limit:
            break
    return list(by_run.values())[:limit]


# --- what the customers app shows -----------------------------------------------------
def customers_in_segment(queryset, value: str):
    """Narrow a customer queryset to a segment's current members (`?segment=` the
    segment's id, or its name as people type it)."""
    value = str(value or "").strip()
    try:
        segment = Segment.objects.filter(pk=int(value)).first()
    except (TypeError, ValueError):
        segment = segments_current().filter(name__iexact=value).first()
    if segment is None:
        return queryset.none()
    return queryset.filter(pk__in=segment_members(segment=segment).values("pk"))


def segment_filter_choices() -> list[tuple[str, str]]:
    """(value, label) of the live segments, for the customers list's select."""
    return [(str(pk), name) for pk, name in segments_current().values_list("pk", "name")]


# The customers list shows the filter as a select of these (customers.views).
customers_in_segment.choices = segment_filter_choices  # type: ignore[attr-defined]


def customer_segment_panel(*, request, customer, limit: int = 24) -> dict | None:
    """The customer page's "Segment" place: segments now and over time.

    One read of the customer's memberships (their (organisation, customer, run)
    index) gives both: the live run's rows are the segments now (as
    `customer_segments` lists them), the top-level cluster and RFM rows of every run
    the history (as `customer_segment_history` does)."""
    top = Q(segment__kind__in=LIVE_KINDS, segment__parent__isnull=True)
    rows = list(
        Membership.objects.filter(Q(run__is_live=True) | top, customer_id=customer.pk)
        .values_list(
            "run_id", "run__as_of", "run__is_live", "segment_id", "segment__name",
            "segment__kind", "segment__parent_id",
        )
        .order_by("-run__created_at", "-run_id", "segment__kind", "segment_id")
    )  # fmt: skip
    current: dict[str, Any] = {"segment": None, "segments": []}
    for _, _, is_live, sid, name, kind, parent_id in rows:
        if not is_live:
            continue
        current["segments"].append({"id": sid, "name": name, "kind": kind})
        if kind == SegmentKind.CLUSTER and parent_id is None and current["segment"] is None:
            current["segment"] = {"id": sid, "name": name}
    history = _history_rows(
        (row[:6] for row in rows if row[5] in LIVE_KINDS and row[6] is None), limit
    )
    if not current["segments"] and not history:
        return None
    return {
        "template": "segmentation/_customer_segments.html",
        "context": {"current": current, "history": history},
    }


def segments_for_customers(customer_ids: list[int]) -> dict[int, dict[str, Any]]:
    return customer_segments(customer_ids=customer_ids)


def erase_memberships(*, organization, customer_ids: list[int]) -> None:
    # who was in which segment is personal history: it goes with the person
    Membership.objects.filter(
        organization_id=organization.pk, customer_id__in=customer_ids
    ).delete()
