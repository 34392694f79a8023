"""The recommendations step (issue 10): evaluate every candidate on the hold-out,
serve the best for this organisation, write each customer's top products and each
product's "bought together" products, and make the run live.

Business rules applied when serving: hidden, non-merchandise and out-of-stock
(`in_stock` false) products are never recommended; at most `PER_CATEGORY` of one
category in a customer's list while other categories have candidates; items
bought before are recommended again when the hold-out says it helps, or as the
owner's setting (`RecommendationSettings.repeats`: always / never) says — read
when a run serves, so a change shows from the next run. Each recommendation
carries a reason in plain words.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
from django.db import connection, transaction

from accounts.tenancy import scope_check
from core.exceptions import ApplicationError
from core.jobs import NULL_JOB, JobHandle
from core.jsonsafe import json_safe
from customers.history import History

from . import ml
from .models import (
    CustomerRecommendation,
    ProductRelation,
    RecommendationRun,
    RecommendationSettings,
    Repeats,
)

log = logging.getLogger("segmenta.recommendations")

TOP_N = 10
RELATED_N = 10
PER_CATEGORY = 4
POPULAR_N = 20
KEEP_RUNS_WITH_ROWS = 2


# --- the owner's settings ---------------------------------------------------------------
def recommendation_settings_get() -> RecommendationSettings:
    """The organisation's settings, or unsaved defaults."""
    found = RecommendationSettings.objects.first()
    return found if found is not None else RecommendationSettings()


def recommendation_settings_update(
    *, organization, repeats: object, user=None, request=None
) -> RecommendationSettings:
    """Set whether products bought before are recommended again ("auto": as the
    hold-out says, "always", "never"); used from the next run. A change is written
    to the audit log."""
    from accounts.actor import Actor
    from accounts.services import audit_log

    scope_check(organization=organization)
    value = str(repeats if repeats is not None else "").strip().lower()
    if value not in Repeats.values:
        raise ApplicationError(
            f"repeats must be one of auto, always or never, not '{repeats}'.",
            {"fields": {"repeats": "One of auto, always, never."}},
        )
    with transaction.atomic():
        row = RecommendationSettings.objects.select_for_update().first() or RecommendationSettings(
            organization=organization
        )
        before = row.repeats if row.pk else Repeats.AUTO
        row.repeats = value
        person = Actor.person(user)
        if person is not None:
            row.updated_by = person
        row.save()
        if before != value:
            audit_log(
                organization=organization,
                action="recommendations.settings_changed",
                actor=user,
                request=request,
                target="recommendation settings",
                details={"repeats": {"from": before, "to": value}},
            )
    log.info("recommendations.settings_updated org_id=%s repeats=%s", organization.pk, value)
    return row


def recommendations_run_start(*, organization, user=None, as_of: dt.date | None = None):
    """Start the recommendations step as a job, or return the one already waiting
    or running (repeated clicks queue one)."""
    from segmentation.pipeline import pipeline_step_start

    scope_check(organization=organization)
    return pipeline_step_start(
        organization=organization, step="recommendations", user=user, as_of=as_of
    )


def _segments_of(customer_ids: np.ndarray) -> dict[int, dict]:
    """{customer id: {"id", "name"}} of each customer's live cluster segment."""
    from segmentation.selectors import customer_segments

    out: dict[int, dict] = {}
    ids = [int(c) for c in customer_ids]
    for start in range(0, len(ids), 5000):
        for cid, info in customer_segments(customer_ids=ids[start : start + 5000]).items():
            if info.get("segment"):
                out[cid] = info["segment"]
    return out


def _popular(buyers: np.ndarray, allowed: np.ndarray, n: int) -> list[int]:
    """Indices of the n allowed items with the most buyers (ties: lower index)."""
    candidates = np.flatnonzero(allowed & (buyers > 0))
    order = np.argsort(-buyers[candidates], kind="stable")
    return [int(i) for i in candidates[order][:n]]


def _diversified(
    top_items: np.ndarray, top_scores: np.ndarray, categories: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's best TOP_N with at most PER_CATEGORY of one category while others
    have candidates (the rest fill the list), as `ml.diversify` does one row at a
    time; -1 where fewer. Vectorised over rows."""
    codes = pd.factorize(pd.Series(categories, dtype=object))[0]
    valid = top_items >= 0
    cat = np.where(valid, codes[np.maximum(top_items, 0)], -1)
    # how many earlier candidates in the row share the category
    order = np.argsort(cat, axis=1, kind="stable")
    sorted_cat = np.take_along_axis(cat, order, axis=1)
    width = cat.shape[1]
    position = np.broadcast_to(np.arange(width), cat.shape)
    starts = np.where(
        np.concatenate(
            [np.ones((cat.shape[0], 1), bool), sorted_cat[:, 1:] != sorted_cat[:, :-1]], axis=1
        ),
        position,
        0,
    )
    earlier_sorted = position - np.maximum.accumulate(starts, axis=1)
    earlier = np.empty_like(earlier_sorted)
    np.put_along_axis(earlier, order, earlier_sorted, axis=1)
    # first the allowed ones in order, then those held back, then nothing
    priority = np.where(valid, np.where(earlier < PER_CATEGORY, 0, 1), 2)
    pick = np.argsort(priority * width + position, axis=1, kind="stable")[:, :TOP_N]
    items = np.take_along_axis(np.where(valid, top_items, -1), pick, axis=1)
    scores = np.take_along_axis(top_scores, pick, axis=1)
    return items, scores


def _lookup(
    matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray, keys: np.ndarray | None = None
) -> np.ndarray:
    """matrix[rows[k], cols[k]] for every k (0 where absent), in one search. The
    matrix's indices must be sorted; `keys` (its entries as `ml._keys` gives them)
    saves building them again when asking many times."""
    n_cols = np.int64(matrix.shape[1])
    keys = ml._keys(matrix) if keys is None else keys
    wanted = np.asarray(rows, dtype=np.int64) * n_cols + np.asarray(cols, dtype=np.int64)
    at = np.minimum(np.searchsorted(keys, wanted), max(keys.size - 1, 0))
    found = (keys[at] == wanted) if keys.size else np.zeros(wanted.size, bool)
    return np.where(found, matrix.data[at] if keys.size else 0, 0)


def _bought_with(
    x: sp.csr_matrix, co: sp.csr_matrix, rows: np.ndarray, items: np.ndarray, chunk=200_000
) -> np.ndarray:
    """For each recommendation (customer row, item): the customer's product bought
    together with the item by the most customers (the first one on ties), or -1."""
    co.sort_indices()
    keys = ml._keys(co)
    out = np.full(rows.size, -1, dtype=np.int64)
    for begin in range(0, rows.size, chunk):
        r, item = rows[begin : begin + chunk], items[begin : begin + chunk]
        counts = np.diff(x.indptr)[r]
        which = np.repeat(np.arange(r.size), counts)
        offsets = np.arange(which.size) - np.repeat(np.cumsum(counts) - counts, counts)
        history = x.indices[np.repeat(x.indptr[r], counts) + offsets]
        together = _lookup(co, history, item[which], keys)
        order = np.lexsort((-together, which))  # per recommendation, most first
        if order.size == 0:
            continue
        first = order[np.r_[0, np.flatnonzero(np.diff(which[order])) + 1]]
        has = together[first] > 0
        out[begin + which[first[has]]] = history[first[has]]
    return out


def recommendations_compute(
    *, organization, as_of: dt.date, job: JobHandle = NULL_JOB
) -> dict | None:
    """Everything a run holds, computed (nothing written); None when no order line
    names a product."""
    from customers.models import Product

    timings: dict[str, float] = {}
    started = time.perf_counter()
    history = History(organization, as_of, job=job)
    lines = history.order_lines(progress=(5, 25))
    bought = lines[(lines["product_id"] >= 0) & (lines["quantity"] > 0)]
    products = history.products()
    if bought.empty or products.empty:
        return None  # orders without products: nothing to learn from, nothing to serve
    stock = dict(Product.objects.values_list("id", "in_stock"))
    product_ids = products["product_id"].to_numpy()
    names = products["name"].fillna("").to_numpy(dtype=object)
    skus = products["sku"].to_numpy(dtype=object)
    names = np.where(names == "", skus, names)
    categories = products["category"].fillna("").astype(str).to_numpy(dtype=object)
    allowed = (
        products["merchandise"].to_numpy()
        & ~products["hidden"].to_numpy()
        & np.array([stock.get(int(p)) is not False for p in product_ids])
    )
    item_of = pd.Series(np.arange(product_ids.size), index=product_ids)
    bought = bought[bought["product_id"].isin(item_of.index)]
    customer_ids, cust_idx = np.unique(bought["customer_id"].to_numpy(), return_inverse=True)
    items = item_of.loc[bought["product_id"].to_numpy()].to_numpy()
    days = (
        pd.to_datetime(bought["ordered_at"], utc=True)
        .dt.tz_localize(None)
        .to_numpy()
        .astype("datetime64[D]")
        .astype(np.int64)
    )
    n_items = product_ids.size
    timings["read"] = round(time.perf_counter() - started, 3)

    segments = _segments_of(customer_ids)
    segment_ids = sorted({s["id"] for s in segments.values()})
    segment_names = {s["id"]: s["name"] for s in segments.values()}
    groups = np.array([segments.get(int(c), {}).get("id", -1) for c in customer_ids])
    groups = np.where(groups >= 0, np.searchsorted(segment_ids, np.maximum(groups, 0)), -1)

    job.progress(30, f"Comparing recommendation models on {customer_ids.size:,} customers")
    t = time.perf_counter()
    evaluation = ml.evaluate_candidates(
        cust_idx,
        items,
        days,
        n_items=n_items,
        groups=groups if segment_ids else None,
        progress=lambda kind: job.progress(35, f"Testing {ml.KIND_LABELS.get(kind, kind)}"),
    )
    timings["evaluate"] = round(time.perf_counter() - t, 3)
    setting = recommendation_settings_get().repeats
    if setting in (Repeats.ALWAYS, Repeats.NEVER):
        # the owner decided: every candidate is compared, and served, that way
        evaluation = ml.forced_repeats(evaluation, setting == Repeats.ALWAYS)
    best = ml.choose(evaluation)
    notes = []
    if not ml.implicit_available():
        notes.append("Matrix factorisation (ALS) was not tried: the implicit package is missing.")

    job.progress(60, f"Recommending with {ml.KIND_LABELS.get(best['kind'], best['kind'])}")
    t = time.perf_counter()
    x = ml.interaction_matrix(cust_idx, items, customer_ids.size, n_items)
    counts = sp.csr_matrix(
        (np.ones(cust_idx.size, np.float32), (cust_idx, items)), shape=(customer_ids.size, n_items)
    )
    counts.sum_duplicates()
    model = ml.fit(best["kind"], x, groups=groups if segment_ids else None, counts=counts)
    if model is None:  # only a kind that was evaluated is chosen; popularity always fits
        model = ml.fit_popularity(x)
    repeats = bool(best.get("repeats", True))
    rows = np.arange(customer_ids.size)
    top_items, top_scores = ml.top_n(
        model, rows, TOP_N * 3, exclude_seen=not repeats, allowed=allowed
    )
    co = ml.cooccurrence(x).tocsr()
    buyers = co.diagonal().astype(np.float64)

    overall = _popular(buyers, allowed, POPULAR_N)
    per_segment: dict[int, list[int]] = {}
    if segment_ids:
        member = groups >= 0
        seg_x = (
            sp.csr_matrix(
                (np.ones(int(member.sum())), (groups[member], rows[member])),
                shape=(len(segment_ids), customer_ids.size),
            )
            @ x
        )
        for g, sid in enumerate(segment_ids):
            per_segment[sid] = _popular(np.asarray(seg_x[g].todense()).ravel(), allowed, POPULAR_N)
    by_category: dict[str, list[int]] = {}
    for cat in pd.unique(categories[allowed]):
        if cat:
            by_category[cat] = _popular(buyers, allowed & (categories == cat), RELATED_N)

    # each customer's list: diversified, then a reason per product (vectorised: a
    # loop over customers with sparse look-ups took minutes for 100,000 customers)
    chosen, chosen_scores = _diversified(top_items, top_scores, categories)
    rec_r, rec_k = np.nonzero(chosen >= 0)
    rec_item = chosen[rec_r, rec_k]
    rec_score = chosen_scores[rec_r, rec_k]
    x.sort_indices()
    before = _lookup(x, rec_r, rec_item) > 0
    segment_name = [segments.get(int(c), {}).get("name") for c in customer_ids]
    personal = best["kind"] not in ("popularity", "segment_popularity")
    with_item = _bought_with(x, co, rec_r, rec_item) if personal else None
    customer_rows = []
    for n_, (r, k, item, score, again) in enumerate(
        zip(rec_r.tolist(), rec_k.tolist(), rec_item.tolist(), rec_score.tolist(),
            before.tolist(), strict=True)
    ):  # fmt: skip
        seg = segment_name[r]
        if again:
            reason = "Bought it before"
        elif best["kind"] == "segment_popularity" and seg:
            reason = f"Popular with {seg}"
        elif not personal:
            reason = "One of the best-sellers"
        elif with_item is not None and with_item[n_] >= 0:
            reason = f"Bought with {names[with_item[n_]]}"
        elif seg:
            reason = f"Popular with {seg}"
        else:
            reason = "One of the best-sellers"
        customer_rows.append(
            (int(customer_ids[r]), int(product_ids[item]), k + 1, score, reason[:200])
        )

    # the page's "most recommended": how many customers get each product (top 20)
    if rec_item.size:
        ids, n_given = np.unique(rec_item, return_counts=True)
        order = np.argsort(-n_given, kind="stable")[:POPULAR_N]
        most_recommended = [[int(product_ids[ids[i]]), int(n_given[i])] for i in order]
    else:
        most_recommended = []

    # "bought together": cosine of buyers, allowed products only, not the product itself
    similarity = ml.fit_item_knn(x, neighbours=RELATED_N * 3).similarity
    assert similarity is not None  # item-kNN always keeps its similarity matrix
    knn = similarity.tocsr()
    rel_i, rel_j, rel_rank, rel_score = [], [], [], []
    for i in range(n_items):
        start, end = knn.indptr[i], knn.indptr[i + 1]
        idx, val = knn.indices[start:end], knn.data[start:end]
        keep = (idx != i) & allowed[idx]
        idx, val = idx[keep], val[keep]
        order = np.argsort(-val, kind="stable")[:RELATED_N]
        rel_i.append(np.full(order.size, i))
        rel_j.append(idx[order])
        rel_rank.append(np.arange(1, order.size + 1))
        rel_score.append(val[order])
    if rel_i:
        rel = [np.concatenate(a) for a in (rel_i, rel_j, rel_rank, rel_score)]
        co.sort_indices()
        buyers_both = _lookup(co, rel[0], rel[1])
        relation_rows = list(
            zip(product_ids[rel[0]].tolist(), product_ids[rel[1]].tolist(), rel[2].tolist(),
                rel[3].astype(float).tolist(), buyers_both.astype(int).tolist(), strict=True)
        )  # fmt: skip
    else:
        relation_rows = []
    timings["serve"] = round(time.perf_counter() - t, 3)

    def pids(indices_: list[int]) -> list[int]:
        return [int(product_ids[i]) for i in indices_]

    return {
        "cutoff": as_of,
        "served": best["kind"],
        "repeats": repeats,
        "repeats_setting": str(setting),
        "evaluation": json_safe(evaluation),
        "popular": {
            "overall": pids(overall),
            "segments": {str(s): pids(v) for s, v in per_segment.items()},
            "segment_names": {str(s): n for s, n in segment_names.items()},
            "categories": {c: pids(v) for c, v in by_category.items()},
            "most_recommended": most_recommended,
        },
        "notes": notes,
        "timings": timings,
        "n_customers": int(customer_ids.size),
        "n_products": int(n_items),
        "customer_rows": customer_rows,
        "relation_rows": relation_rows,
    }


def _insert(model, columns: list[str], rows, per_statement: int | None = None) -> None:
    """Rows as multi-row INSERT statements (parameters bound, at most about 30,000 a
    statement). The caller is in the organisation's tenant context (row-level
    security checks organization_id)."""
    from itertools import islice

    ops = connection.ops
    table = ops.quote_name(model._meta.db_table)
    cols = ", ".join(ops.quote_name(c) for c in columns)
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    size = per_statement or max(1, 30_000 // len(columns))
    rows = iter(rows)
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":  # its executemany binds row by row in C: faster
            sql = f"INSERT INTO {table} ({cols}) VALUES {one}"  # noqa: S608 - model metadata
            while part := list(islice(rows, 20_000)):
                cursor.executemany(sql, part)
            return
        while part := list(islice(rows, size)):
            sql = f"INSERT INTO {table} ({cols}) VALUES {', '.join([one] * len(part))}"  # noqa: S608 - model metadata
            cursor.execute(sql, [v for row in part for v in row])


def recommendations_write(*, organization, computed: dict, job: JobHandle = NULL_JOB):
    job_id = getattr(job, "job_id", None)
    with transaction.atomic():
        run = RecommendationRun.objects.create(
            organization=organization,
            cutoff=computed["cutoff"],
            served=computed["served"],
            repeats=computed["repeats"],
            repeats_setting=computed.get("repeats_setting", Repeats.AUTO),
            evaluation=computed["evaluation"],
            popular=computed["popular"],
            notes=computed["notes"],
            timings=computed["timings"],
            n_customers=computed["n_customers"],
            n_products=computed["n_products"],
            job_id=job_id,
        )
        # multi-row INSERTs: a million rows through bulk_create's model instances took
        # over a minute (docs/performance.md)
        org_id, run_id = organization.pk, run.pk
        _insert(
            CustomerRecommendation,
            ["organization_id", "run_id", "customer_id", "product_id", "rank", "score", "reason"],
            (
                (org_id, run_id, c, p, rank, float(score) if np.isfinite(score) else 0.0, reason)
                for c, p, rank, score, reason in computed["customer_rows"]
            ),
        )
        _insert(
            ProductRelation,
            ["organization_id", "run_id", "product_id", "related_id", "rank", "score", "buyers"],
            (
                (org_id, run_id, p, q, rank, score, n)
                for p, q, rank, score, n in computed["relation_rows"]
            ),
        )
        RecommendationRun.objects.filter(is_live=True).update(is_live=False)
        RecommendationRun.objects.filter(pk=run.pk).update(is_live=True)
        run.is_live = True
    return run


def recommendations_prune_history(*, keep_runs: int = KEEP_RUNS_WITH_ROWS) -> None:
    old = list(
        RecommendationRun.objects.filter(is_live=False)
        .order_by("-trained_at", "-id")
        .values_list("pk", flat=True)[max(keep_runs - 1, 0) :]
    )
    if old:
        CustomerRecommendation.objects.filter(run_id__in=old).delete()
        ProductRelation.objects.filter(run_id__in=old).delete()


def recommendations_run(
    *, organization, as_of: dt.date | None = None, job: JobHandle = NULL_JOB
) -> RecommendationRun | None:
    """Train, evaluate and serve recommendations up to `as_of` (default: the latest
    data date) and make the run live; on failure the live run stays as it was. None
    (nothing written) when no order names a product: a shop whose orders carry no
    skus has nothing to recommend, and its pipeline is not failed for that."""
    from segmentation.pipeline import pipeline_wait_for_imports
    from segmentation.services.sql import latest_data_date

    scope_check(organization=organization)
    started = time.perf_counter()
    if as_of is None:
        as_of = latest_data_date()
        if as_of is None:
            raise ApplicationError(
                "There is no data yet: import customers and orders, then run the recommendations."
            )
    pipeline_wait_for_imports()
    computed = recommendations_compute(organization=organization, as_of=as_of, job=job)
    if computed is None:
        return None  # the live run (if any) stays; the pipeline goes on
    pipeline_wait_for_imports()
    job.progress(85, f"Saving recommendations for {computed['n_customers']:,} customers")
    run = recommendations_write(organization=organization, computed=computed, job=job)
    try:
        recommendations_prune_history()
    except Exception:  # housekeeping; the run itself is committed
        log.exception("recommendations.prune_failed org_id=%s", organization.pk)
    timings = {**run.timings, "total": round(time.perf_counter() - started, 3)}
    RecommendationRun.objects.filter(pk=run.pk).update(timings=timings)
    run.timings = timings
    log.info(
        "recommendations.run_done org_id=%s run_id=%s served=%s customers=%s seconds=%.2f",
        organization.pk, run.pk, run.served, run.n_customers, timings["total"],
    )  # fmt: skip
    return run


def recommendations_erase_customers(*, organization, customer_ids: list[int]) -> None:
    """Erasure handler: nothing recommended to an erased person is kept."""
    scope_check(organization=organization)
    CustomerRecommendation.objects.filter(customer_id__in=list(customer_ids)).delete()
