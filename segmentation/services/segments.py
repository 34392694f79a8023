"""The segmentation step: load → features → clusters, RFM groups, profiles,
personas → match to the live run → write, atomically.

`segmentation_run()` reads the organisation's data through the shared reader
(`customers.history.History`: raw SQL, organisation filtered explicitly, nothing
built row by row in Python), hands data frames to the pure
numerical code in `segmentation/ml/`, and then replaces the live run in one
transaction: a failure anywhere before the commit changes nothing.

A segment keeps its id across runs while it is the same group of customers:
each new cluster is matched to a segment of the previous live run by member
overlap (centroid distance when overlap cannot decide), and a matched segment
keeps its row, its persona and the persona's human edits.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any, SupportsInt, cast

import numpy as np
import pandas as pd
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.actor import Actor
from accounts.tenancy import scope_check
from core.exceptions import ApplicationError
from core.jobs import NULL_JOB, JobHandle
from core.jsonsafe import json_safe
from customers.history import History
from segmentation.pipeline import pipeline_wait_for_imports

from ..models import (
    Persona,
    Segment,
    SegmentationRun,
    SegmentationSettings,
    SegmentKind,
    SegmentMembership,
)
from .personas import persona_apply_generated, persona_fields_from_ml
from .rules import RuleContext, rule_segments_refresh_all, write_memberships
from .sql import latest_data_date

log = logging.getLogger("segmenta.segments")

# Gender and birth date are never modelled unless the owner allows it.
DEFAULT_SENSITIVE = ("gender", "birth_date")
PROJECTION_SAMPLE = 2_000
# Memberships of older runs are pruned; each run keeps its per-segment summary,
# so size-over-time charts go back further than the member lists.
MEMBERSHIP_HISTORY_RUNS = 24
FETCH_CHUNK = 100_000  # rows per chunk of the reads (progress between them)


# --- what the data says --------------------------------------------------------------
@dataclass
class LoadedData:
    lines: pd.DataFrame
    customers: pd.DataFrame
    events: pd.DataFrame | None
    product_lines: pd.DataFrame | None
    erased: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)


def load_data(*, organization_id: int, as_of: dt.date, job: JobHandle = NULL_JOB) -> LoadedData:
    """Order lines, customers, recent events and product names up to `as_of`, as
    frames, through the shared reader (`customers.history.History`: the current
    scope must be the organisation's; erased customers left out, returns netted)."""
    history = History(organization_id, as_of, job=job, chunk=FETCH_CHUNK)
    timings: dict[str, float] = {}
    started = time.monotonic()
    lines = history.order_lines(progress=(8, 28))
    timings["read_lines"] = time.monotonic() - started
    product_lines = history.product_lines()

    t0 = time.monotonic()
    customers = history.customers()
    timings["read_customers"] = time.monotonic() - t0

    t0 = time.monotonic()
    # only the engagement window of the features is read (90 days), and only the
    # business's events: what Segmenta itself did to a customer (a campaign sent or
    # opened, an offer redeemed, a survey answered) must not move them between segments
    events = history.events(days=91, segmenta_events=False)
    timings["read_events"] = time.monotonic() - t0
    return LoadedData(
        lines=lines,
        customers=customers,
        events=events if len(events) else None,
        product_lines=product_lines,
        erased=history.erased_ids(),
        seconds=timings,
    )


# --- the run -------------------------------------------------------------------------
@dataclass
class Computed:
    """Everything a run found, before it is written."""

    as_of: dt.date
    params: dict[str, Any]
    customer_ids: np.ndarray
    labels: np.ndarray
    centroids: np.ndarray
    model_columns: list[str]
    excluded: dict[str, str]
    quality: dict[str, Any]
    cluster_profiles: list[dict[str, Any]]
    cluster_personas: list[dict[str, Any]]
    rfm_groups: np.ndarray  # group name per customer
    rfm_profiles: dict[str, dict[str, Any]]
    rfm_summary: list[dict[str, Any]]
    projection: dict[str, Any]
    n_without_orders: int
    timings: dict[str, float]
    # one level of drill-down: [{"parent": label, "label": j, "customer_ids",
    # "centroid", "profile", "persona"}] (see _drill_down)
    sub_segments: list[dict[str, Any]] = field(default_factory=list)


def _settings_params(organization) -> dict[str, Any]:
    settings_row = SegmentationSettings.objects.first() or SegmentationSettings()
    sensitive = sorted(
        {str(s).strip() for s in (organization.sensitive_attributes or []) if str(s).strip()}
        | set(DEFAULT_SENSITIVE)
    )
    return {**settings_row.as_params(), "sensitive": sensitive}


def segmentation_compute(
    *, organization, as_of: dt.date, job: JobHandle = NULL_JOB, params: dict[str, Any]
) -> Computed:
    """Read and model; writes nothing."""
    from segmentation.ml.clustering import ClusteringError, cluster_customers
    from segmentation.ml.features import build_features
    from segmentation.ml.personas import write_personas
    from segmentation.ml.profiles import build_profiles
    from segmentation.ml.rfm import rfm_scores

    timings: dict[str, float] = {}
    t0 = time.monotonic()
    job.progress(2, "Reading customers and orders")
    data = load_data(organization_id=organization.pk, as_of=as_of, job=job)
    timings.update(data.seconds)
    timings["load"] = time.monotonic() - t0
    if len(data.lines) == 0:
        raise ApplicationError(
            f"There are no orders up to {as_of:%d %b %Y}: import orders before running a "
            "segmentation."
        )

    t0 = time.monotonic()
    job.progress(38, "Computing customer features")
    # attribute columns are prefixed "attr:"; the owner names them without it
    sensitive = set(params["sensitive"]) | {f"attr:{s}" for s in params["sensitive"]}
    try:
        features = build_features(
            lines=data.lines,
            customers=data.customers,
            events=data.events,
            as_of=as_of,
            sensitive=sensitive,
            timezone=organization.time_zone or "UTC",
        )
    except ValueError as exc:
        raise ApplicationError(f"The customer features could not be computed: {exc}.") from exc
    timings["features"] = time.monotonic() - t0

    t0 = time.monotonic()
    job.progress(45, f"Finding segments among {len(features.raw):,} customers")
    try:
        clustering = cluster_customers(
            matrix=features.matrix,
            k_min=params["k_min"],
            k_max=params["k_max"],
            min_share=params["min_share"],
            min_count=params["min_count"],
            seed=params["seed"],
        )
    except ClusteringError as exc:
        raise ApplicationError(f"Segments could not be found: {exc}.") from exc
    timings["clustering"] = time.monotonic() - t0

    t0 = time.monotonic()
    job.progress(72, f"Describing {clustering.k} segments and writing personas")
    currency = _currency_symbol(organization.currency)
    profiles = build_profiles(
        features=features,
        labels=clustering.labels,
        product_lines=data.product_lines,
        currency=currency,
    )
    personas = write_personas(profiles=profiles)
    rfm = rfm_scores(features=features.raw)
    rfm_groups = rfm.scores["group"].astype(str).to_numpy()
    rfm_profile_set = build_profiles(
        features=features, labels=rfm_groups, product_lines=data.product_lines, currency=currency
    )
    timings["profiles"] = time.monotonic() - t0

    t0 = time.monotonic()
    job.progress(76, "Looking for groups within each segment")
    sub_segments, drill_quality = _drill_down(
        features=features,
        clustering=clustering,
        product_lines=data.product_lines,
        currency=currency,
        seed=params["seed"],
        taken_names={p.name for p in personas},
        parent_names={p.segment_key: p.name for p in personas},
    )
    timings["drill_down"] = time.monotonic() - t0

    t0 = time.monotonic()
    job.progress(80, "Drawing the customer map")
    projection = _projection(features, clustering.labels, seed=params["seed"])
    timings["projection"] = time.monotonic() - t0

    quality = clustering.to_dict()
    quality.pop("centroids", None)
    quality["n_features"] = len(features.model_columns)
    quality["drill_down"] = drill_quality
    cluster_profiles = [p.to_dict() for p in profiles.profiles]
    # each segment's page says whether it was split, and why (not)
    for entry in drill_quality:
        cluster_profiles[entry["parent"]]["drill_down"] = {
            key: entry.get(key)
            for key in ("split", "reason", "k", "silhouette", "stability", "explanation")
            if key in entry
        }
    return Computed(
        as_of=as_of,
        params=params,
        customer_ids=features.customer_ids.astype(np.int64),
        labels=np.asarray(clustering.labels, dtype=np.int64),
        centroids=np.asarray(clustering.centroids, dtype=np.float64),
        model_columns=list(features.model_columns),
        excluded=dict(features.exclusion_reasons),
        quality=quality,
        cluster_profiles=cluster_profiles,
        cluster_personas=[p.to_dict() for p in personas],
        rfm_groups=rfm_groups,
        rfm_profiles={p.key: p.to_dict() for p in rfm_profile_set.profiles},
        rfm_summary=rfm.summary(),
        projection=projection,
        n_without_orders=int(len(features.customers_without_orders)),
        timings=timings,
        sub_segments=sub_segments,
    )


def _drill_down(
    *,
    features,
    clustering,
    product_lines: pd.DataFrame | None,
    currency: str,
    seed: int,
    taken_names: set[str],
    parent_names: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One level of sub-segments: each segment clustered on its own members the
    same way, with the same minimum size (segmentation/ml/clustering.py,
    `drill_down`), then profiled against the whole base and given personas."""
    from segmentation.ml.clustering import drill_down
    from segmentation.ml.personas import sub_segment_names, write_personas
    from segmentation.ml.profiles import ProfileSet, build_profiles

    drills = drill_down(
        matrix=features.matrix, labels=clustering.labels, min_size=clustering.min_size, seed=seed
    )
    quality = [d.to_dict() for d in drills]
    customer_ids = features.customer_ids.astype(np.int64)
    n_total = len(customer_ids)
    split = [(d, d.result) for d in drills if d.result is not None]
    if not split:
        return [], quality
    # one profiling pass for every sub-segment, against the whole base (a name
    # must stay true of the customers whatever segment they sit in); customers
    # of unsplit segments get a placeholder label whose profile is dropped
    keys = np.full(n_total, "-", dtype=object)
    for d, result in split:
        keys[d.rows] = [f"{d.parent}.{j}" for j in result.labels]
    profile_set = build_profiles(
        features=features, labels=keys, product_lines=product_lines, currency=currency
    )
    profile_set = ProfileSet(
        profiles=[p for p in profile_set.profiles if p.key != "-"], base=profile_set.base
    )
    personas = dict(
        zip(
            [p.key for p in profile_set.profiles],
            write_personas(profiles=profile_set),
            strict=True,
        )
    )
    taken = set(taken_names)
    out = []
    for d, result in split:
        # named by what sets each group apart from its siblings, within the
        # parent (against the whole base they all read like the parent)
        parent_name = (parent_names or {}).get(str(d.parent)) or personas[f"{d.parent}.0"].name
        names = sub_segment_names(
            parent_name=parent_name,
            matrix=features.matrix.iloc[d.rows],
            labels=result.labels,
            info=features.info,
            taken=taken,
        )
        for j in range(result.k):
            key = f"{d.parent}.{j}"
            persona = personas[key]
            first_name = persona.name
            persona.name = names[j][:120]
            persona.portrait = persona.portrait.replace(first_name, persona.name, 1)
            taken.add(persona.name)
            members = d.rows[result.labels == j]
            profile = profile_set.get(key).to_dict()
            profile["share_of_parent"] = len(members) / len(d.rows)
            profile["drill_down"] = {
                "silhouette": result.silhouette,
                "stability": result.stability,
                "explanation": result.explanation,
            }
            out.append(
                {
                    "parent": int(d.parent),
                    "label": j,
                    "customer_ids": customer_ids[members],
                    "centroid": np.asarray(result.centroids[j], dtype=np.float64),
                    "profile": profile,
                    "persona": persona.to_dict(),
                }
            )
    return out, quality


def _currency_symbol(code: str) -> str:
    return {"GBP": "£", "USD": "$", "EUR": "€", "JPY": "¥"}.get((code or "").upper(), "")


def _projection(features, labels: np.ndarray, *, seed: int) -> dict[str, Any]:
    """A 2-D linear map (PCA) of a seeded sample of customers, for the segments page."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    from segmentation.ml.projection import project_2d

    # one BLAS thread: the covariance is small work, and threads spinning on a
    # busy two-core machine made it take seconds
    with threadpool_limits(limits=1):
        result = project_2d(
            matrix=features.matrix, labels=labels, max_points=PROJECTION_SAMPLE, seed=seed
        )
    describe = {name: info.description for name, info in features.info.items()}
    return {
        "method": "pca",
        "explained": [round(v, 4) for v in result.explained_variance_ratio],
        "n_total": int(len(labels)),
        "x": [round(float(v), 3) for v in result.x],
        "y": [round(float(v), 3) for v in result.y],
        "labels": [int(v) for v in result.label],
        "axes": [
            [{**a, "description": describe.get(a["feature"], a["feature"])} for a in axis]
            for axis in result.axes
        ],
    }


# --- matching ------------------------------------------------------------------------
def _match_clusters(
    *,
    customer_ids: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray,
    columns: list[str],
    previous: pd.Series,
    previous_centroids: dict[int, dict],
) -> dict[int, int]:
    """{new label: previous segment id} for the clusters that are the same group
    (member overlap first, then centroid distance in the model space)."""
    from segmentation.ml.matching import match_segments

    if previous.empty:
        return {}
    old_centroids = pd.DataFrame(
        {
            sid: pd.Series(c.get("values", []), index=c.get("columns", []), dtype=np.float64)
            for sid, c in previous_centroids.items()
            if c and c.get("columns")
        }
    ).T
    result = match_segments(
        old=previous,
        new=pd.Series(labels, index=customer_ids),
        old_centroids=old_centroids if len(old_centroids) else None,
        new_centroids=pd.DataFrame(centroids, columns=columns),
    )
    # Every label and segment key is an integer here (numpy's or Python's); the
    # matcher takes any hashable.
    return {
        int(cast(SupportsInt, k)): int(cast(SupportsInt, v))
        for k, v in result.mapping.items()
        if v is not None
    }


# --- writing -------------------------------------------------------------------------
def _next_cluster_number() -> int:
    keys = Segment.objects.filter(kind=SegmentKind.CLUSTER).values_list("key", flat=True)
    numbers = [int(k.split("-", 1)[1]) for k in keys if k.split("-", 1)[-1].isdigit()]
    return max(numbers, default=0) + 1


def segmentation_write(
    *, organization, computed: Computed, job_id: int | None = None, seconds: float = 0.0
) -> SegmentationRun:
    """Write a computed run and make it live, in one transaction."""
    org_id = organization.pk
    with transaction.atomic():
        previous = SegmentationRun.objects.select_for_update().filter(is_live=True).first()
        prev_members = pd.Series(dtype=np.int64)
        prev_centroids: dict[int, dict] = {}
        if previous is not None:
            rows = np.array(
                list(
                    SegmentMembership.objects.filter(
                        run=previous,
                        segment__kind=SegmentKind.CLUSTER,
                        segment__parent__isnull=True,
                    ).values_list("customer_id", "segment_id")
                ),
                dtype=np.int64,
            ).reshape(-1, 2)
            prev_members = pd.Series(rows[:, 1], index=rows[:, 0])
            prev_centroids = dict(
                Segment.objects.filter(pk__in=np.unique(rows[:, 1]).tolist()).values_list(
                    "pk", "centroid"
                )
            )
        mapping = _match_clusters(
            customer_ids=computed.customer_ids,
            labels=computed.labels,
            centroids=computed.centroids,
            columns=computed.model_columns,
            previous=prev_members,
            previous_centroids=prev_centroids,
        )

        run = SegmentationRun.objects.create(
            organization_id=org_id,
            as_of=computed.as_of,
            params=json_safe(computed.params),
            chosen_k=int(computed.centroids.shape[0]),
            quality=json_safe({**computed.quality, "timings": _round(computed.timings)}),
            feature_columns=computed.model_columns,
            excluded_columns=computed.excluded,
            n_customers=int(len(computed.customer_ids)),
            n_without_orders=computed.n_without_orders,
            seconds=round(seconds, 3),
            job_id=job_id,
            is_live=False,
        )

        # cluster segments: matched ones keep their row (and persona)
        existing = {s.pk: s for s in Segment.objects.filter(pk__in=list(mapping.values()))}
        personas = {p.segment_id: p for p in Persona.objects.filter(segment_id__in=list(existing))}
        next_number = _next_cluster_number()
        label_segment: dict[int, Segment] = {}
        for label, (profile, persona_ml) in enumerate(
            zip(computed.cluster_profiles, computed.cluster_personas, strict=True)
        ):
            segment = existing.get(mapping.get(label, -1))
            if segment is None:
                segment = Segment(
                    organization_id=org_id,
                    kind=SegmentKind.CLUSTER,
                    key=f"cluster-{next_number}",
                    first_run=run,
                )
                next_number += 1
            _cluster_segment_save(
                segment,
                run=run,
                profile=profile,
                persona_ml=persona_ml,
                centroid=computed.centroids[label],
                columns=computed.model_columns,
                personas=personas,
            )
            label_segment[label] = segment
        sub_segments, next_number = _write_sub_segments(
            organization_id=org_id,
            run=run,
            previous=previous,
            computed=computed,
            parents=label_segment,
            next_number=next_number,
        )
        live_cluster_ids = {s.pk for s in label_segment.values()} | {s.pk for s, _ in sub_segments}
        Segment.objects.filter(kind=SegmentKind.CLUSTER, is_active=True).exclude(
            pk__in=live_cluster_ids
        ).update(is_active=False)

        # RFM groups: one segment per named group, keyed by the group
        rfm_segments: dict[str, Segment] = {
            s.key: s for s in Segment.objects.filter(kind=SegmentKind.RFM)
        }
        rfm_by_group: dict[str, Segment] = {}
        for row in computed.rfm_summary:
            group = row["group"]
            key = f"rfm-{slugify(group)}"
            segment = rfm_segments.get(key) or Segment(
                organization_id=org_id, kind=SegmentKind.RFM, key=key, first_run=run
            )
            segment.name = group
            segment.description = row["description"]
            segment.size = int(row["size"])
            segment.revenue_share = float(row["share_of_revenue"] or 0.0)
            segment.profile = json_safe({**computed.rfm_profiles.get(group, {}), "rfm": row})
            segment.is_active = row["size"] > 0
            if segment.is_active:
                segment.last_run = run
            segment.save()
            rfm_by_group[group] = segment

        # memberships: the history
        labels_to_id = np.array(
            [label_segment[i].pk for i in range(len(label_segment))], dtype=np.int64
        )
        n_written = write_memberships(
            organization_id=org_id,
            run_id=run.pk,
            segment_ids=labels_to_id[computed.labels],
            customer_ids=computed.customer_ids,
        )
        group_names = np.array(list(rfm_by_group), dtype=object)
        group_pks = np.array([rfm_by_group[g].pk for g in group_names], dtype=np.int64)
        group_codes = pd.Index(group_names).get_indexer(computed.rfm_groups)
        n_written += write_memberships(
            organization_id=org_id,
            run_id=run.pk,
            segment_ids=group_pks[group_codes],
            customer_ids=computed.customer_ids,
        )
        for segment, members in sub_segments:
            n_written += write_memberships(
                organization_id=org_id,
                run_id=run.pk,
                segment_ids=np.full(len(members), segment.pk, dtype=np.int64),
                customer_ids=np.asarray(members, dtype=np.int64),
            )

        # rules see the new run (a rule may test segment membership)
        rule_members = rule_segments_refresh_all(
            context=RuleContext(reference_date=computed.as_of, live_run_id=run.pk)
        )
        for sid, member_ids in rule_members.items():
            n_written += write_memberships(
                organization_id=org_id,
                run_id=run.pk,
                segment_ids=np.full(len(member_ids), sid, dtype=np.int64),
                customer_ids=np.asarray(member_ids, dtype=np.int64),
            )
            Segment.objects.filter(pk=sid).update(size=len(member_ids), last_run=run)

        summary_segments = {
            str(s.pk): {
                "size": s.size,
                "revenue_share": round(s.revenue_share, 6),
                "kind": s.kind,
                "name": s.name,
            }
            for s in [*label_segment.values(), *rfm_by_group.values()]
        }
        for s, _ in sub_segments:
            summary_segments[str(s.pk)] = {
                "size": s.size,
                "revenue_share": round(s.revenue_share, 6),
                "kind": s.kind,
                "name": s.name,
                "parent_id": s.parent_id,
            }
        for sid, member_ids in rule_members.items():
            summary_segments[str(sid)] = {"size": len(member_ids), "kind": SegmentKind.RULE}
        projection = dict(computed.projection)
        projection["segments"] = [
            {"id": label_segment[i].pk, "name": label_segment[i].name}
            for i in range(len(label_segment))
        ]
        projection["segment_ids"] = [int(labels_to_id[v]) for v in projection.pop("labels", [])]
        run.projection = json_safe(projection)
        run.summary = json_safe(
            {
                "segments": summary_segments,
                "memberships": n_written,
                "matched": {str(k): v for k, v in mapping.items()},
                "rfm": computed.rfm_summary,
            }
        )
        if previous is not None:
            SegmentationRun.objects.filter(pk=previous.pk).update(is_live=False)
        run.is_live = True
        run.save(update_fields=["projection", "summary", "is_live"])
        _touch_moved_customers(previous=previous, run=run)
    return run


def _touch_moved_customers(*, previous: SegmentationRun | None, run: SegmentationRun) -> None:
    """Customers who joined or left a segment with this run have changed
    (`updated_at`), for integrations reading `customers/?updated_since=`.

    One statement: the customers of the (segment, customer) pairs in one run and
    not the other, found by the database (`EXCEPT`), never read into Python."""
    from customers.history import table_name
    from customers.services.stats import customers_touch_where_runs_differ

    customers_touch_where_runs_differ(
        table=table_name(SegmentMembership),
        columns=("customer_id", "segment_id"),
        organization_id=run.organization_id,
        run_id=run.pk,
        previous_run_id=previous.pk if previous is not None else None,
    )


def _write_sub_segments(
    *,
    organization_id: int,
    run: SegmentationRun,
    previous: SegmentationRun | None,
    computed: Computed,
    parents: dict[int, Segment],
    next_number: int,
) -> tuple[list[tuple[Segment, np.ndarray]], int]:
    """Save the drill-down: sub-segments keep their row (and persona) while they
    are the same group under the same parent, matched like top-level segments
    (member overlap, then centroid distance; segmentation/ml/matching.py)."""
    from segmentation.ml.matching import match_segments

    if not computed.sub_segments:
        return [], next_number
    # previous sub-segments, matched per parent: a group that moved to another
    # parent is a different sub-segment
    prev_rows = np.empty((0, 3), dtype=np.int64)
    if previous is not None:
        prev_rows = np.array(
            list(
                SegmentMembership.objects.filter(
                    run=previous, segment__kind=SegmentKind.CLUSTER, segment__parent__isnull=False
                ).values_list("customer_id", "segment_id", "segment__parent_id")
            ),
            dtype=np.int64,
        ).reshape(-1, 3)
    prev_segments = {
        s.pk: s for s in Segment.objects.filter(pk__in=np.unique(prev_rows[:, 1]).tolist())
    }
    personas = {p.segment_id: p for p in Persona.objects.filter(segment_id__in=list(prev_segments))}
    out: list[tuple[Segment, np.ndarray]] = []
    by_parent: dict[int, list[dict[str, Any]]] = {}
    for sub in computed.sub_segments:
        by_parent.setdefault(sub["parent"], []).append(sub)
    for parent_label, subs in by_parent.items():
        parent = parents[parent_label]
        mine = prev_rows[prev_rows[:, 2] == parent.pk]
        mapping: dict[Any, Any] = {}
        if len(mine):
            old_centroids = pd.DataFrame(
                {
                    sid: pd.Series(c.get("values", []), index=c.get("columns", []), dtype=float)
                    for sid, c in (
                        (sid, prev_segments[sid].centroid) for sid in np.unique(mine[:, 1])
                    )
                    if c and c.get("columns")
                }
            ).T
            mapping = match_segments(
                old=pd.Series(mine[:, 1], index=mine[:, 0]),
                new=pd.concat([pd.Series(sub["label"], index=sub["customer_ids"]) for sub in subs]),
                old_centroids=old_centroids if len(old_centroids) else None,
                new_centroids=pd.DataFrame(
                    [sub["centroid"] for sub in subs],
                    index=[sub["label"] for sub in subs],
                    columns=computed.model_columns,
                ),
            ).mapping
        for sub in subs:
            segment = prev_segments.get(mapping.get(sub["label"]) or -1)
            if segment is None:
                segment = Segment(
                    organization_id=organization_id,
                    kind=SegmentKind.CLUSTER,
                    key=f"cluster-{next_number}",
                    first_run=run,
                )
                next_number += 1
            profile, persona_ml = sub["profile"], sub["persona"]
            segment.parent = parent
            _cluster_segment_save(
                segment,
                run=run,
                profile=profile,
                persona_ml=persona_ml,
                centroid=sub["centroid"],
                columns=computed.model_columns,
                personas=personas,
            )
            out.append((segment, sub["customer_ids"]))
    return out, next_number


def _round(values: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 3) for k, v in values.items()}


def segmentation_prune_history(*, keep_runs: int = MEMBERSHIP_HISTORY_RUNS) -> int:
    """Delete membership rows of runs older than the newest `keep_runs`."""
    old = list(
        SegmentationRun.objects.filter(is_live=False)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)[keep_runs - 1 :]
    )
    if not old:
        return 0
    deleted, _ = SegmentMembership.objects.filter(run_id__in=old).delete()
    return deleted


def segmentation_run(
    *, organization, as_of: dt.date | None = None, job: JobHandle = NULL_JOB
) -> SegmentationRun:
    """Segment the organisation's customers as of `as_of` (default: its latest data
    date) and make the result live. Raises ApplicationError with a readable reason."""
    scope_check(organization=organization)
    started = time.monotonic()
    if as_of is None:
        as_of = latest_data_date()
        if as_of is None:
            raise ApplicationError(
                "There is no data yet: import customers and orders, then run the segmentation."
            )
    params = _settings_params(organization)
    pipeline_wait_for_imports()
    computed = segmentation_compute(organization=organization, as_of=as_of, job=job, params=params)
    pipeline_wait_for_imports()  # an import that began while this step read is not mixed in
    job.progress(88, "Saving segments, personas and memberships", force=True)
    run = segmentation_write(
        organization=organization,
        computed=computed,
        job_id=job.job_id,
        seconds=time.monotonic() - started,
    )
    try:
        segmentation_prune_history()
    except Exception:  # pruning is housekeeping; the run itself is committed
        log.exception("segments.prune_failed org_id=%s", organization.pk)
    seconds = time.monotonic() - started
    SegmentationRun.objects.filter(pk=run.pk).update(seconds=round(seconds, 3))
    log.info(
        "segments.run_done org_id=%s run_id=%s k=%s customers=%s seconds=%.2f",
        organization.pk,
        run.pk,
        run.chosen_k,
        run.n_customers,
        seconds,
    )
    return run


def segmentation_run_start(*, organization, user=None, as_of: dt.date | None = None):
    """Start a segmentation job, or return the one already waiting or running."""
    scope_check(organization=organization)
    from segmentation.pipeline import pipeline_step_start

    return pipeline_step_start(organization=organization, step="segments", user=user, as_of=as_of)


def segmentation_settings_update(*, organization, data: dict[str, Any], user=None):
    """Save the owner's clustering bounds (validated)."""
    scope_check(organization=organization)
    row = SegmentationSettings.objects.first() or SegmentationSettings(organization=organization)
    errors: dict[str, str] = {}

    def number(name: str, cast, low, high):
        raw = data.get(name, getattr(row, name))
        try:
            value = cast(raw)
        except (TypeError, ValueError):
            errors[name] = "Enter a number."
            return getattr(row, name)
        if not (low <= value <= high):
            errors[name] = f"Must be between {low} and {high}."
        return value

    k_min = number("k_min", int, 2, 20)
    k_max = number("k_max", int, 2, 20)
    min_size = number("min_segment_size", int, 1, 1_000_000)
    min_share = number("min_segment_share", float, 0.0, 0.5)
    if not errors and k_max < k_min:
        errors["k_max"] = "Must be at least the fewest segments."
    if errors:
        raise ApplicationError(
            "Please correct the settings: "
            + "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in errors.items()),
            {"fields": errors},
        )
    row.k_min, row.k_max = k_min, k_max
    row.min_segment_size, row.min_segment_share = min_size, min_share
    if Actor.person(user) is not None:
        row.updated_by = Actor.person(user)
    row.save()
    return row


def segmentation_status_now() -> dict[str, Any]:
    """Small facts for the page header."""
    run = SegmentationRun.objects.filter(is_live=True).first()
    return {"run": run, "as_of": run.as_of if run else None, "now": timezone.now()}


def _cluster_segment_save(
    segment: Segment, *, run, profile: dict, persona_ml: dict, centroid, columns, personas: dict
) -> None:
    """Fill a machine-learning segment (top level or a group within one) from its
    profile, save it live in `run`, and write its generated persona; the segment
    takes the persona's name, which a person may have edited."""
    segment.size = int(profile["size"])
    segment.revenue_share = float(profile["share_of_revenue"] or 0.0)
    segment.profile = json_safe(profile)
    segment.centroid = json_safe(
        {"columns": columns, "values": [round(float(v), 6) for v in centroid]}
    )
    segment.is_active = True
    segment.last_run = run
    segment.name = (segment.name or persona_ml["name"])[:120]
    segment.save()
    persona = persona_apply_generated(
        segment=segment,
        generated=persona_fields_from_ml(persona_ml),
        levels={
            "value_level": persona_ml.get("value_level", ""),
            "risk_level": persona_ml.get("risk_level", ""),
        },
        persona=personas.get(segment.pk),
    )
    if segment.name != persona.name:
        segment.name = persona.name
        Segment.objects.filter(pk=segment.pk).update(name=persona.name)
