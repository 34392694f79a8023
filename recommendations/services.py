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
from core.dbstats import statistics_refresh_after_commit
from core.exceptions import ApplicationError
from core.jobs import NULL_JOB, JobHandle
from core.jsonsafe import json_safe
from customers.history import History
from segmentation.services.bulk import COPY_BINARY_HEADER, COPY_BINARY_TRAILER, copy_binary_block

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
    x: sp.csr_matrix, co, rows: np.ndarray, items: np.ndarray, chunk=200_000
) -> np.ndarray:
    """For each recommendation (customer row, item): the customer's product bought
    together with the item by the most customers (the first one, lowest item, on
    ties), or -1. `co` is the item co-occurrence, dense (an array) or sparse with
    sorted indices. x's indices must be sorted."""
    dense = isinstance(co, np.ndarray)
    keys = None if dense else ml._keys(co)
    out = np.full(rows.size, -1, dtype=np.int64)
    lengths = np.diff(x.indptr)
    for begin in range(0, rows.size, chunk):
        r, item = rows[begin : begin + chunk], items[begin : begin + chunk]
        counts = lengths[r]
        total = int(counts.sum())
        if total == 0:
            continue
        which = np.repeat(np.arange(r.size), counts)
        starts = np.cumsum(counts) - counts
        offsets = np.arange(total) - np.repeat(starts, counts)
        history = x.indices[np.repeat(x.indptr[r], counts) + offsets]
        if dense:
            together = co[history, item[which]]
        else:
            together = _lookup(co, history, item[which], keys)
        has = counts > 0
        best = np.zeros(r.size, dtype=together.dtype)
        best[has] = np.maximum.reduceat(together, starts[has])
        # the first entry (lowest item: x's indices are sorted) reaching its row's best
        at = np.flatnonzero(together == best[which])
        first_rows, first = np.unique(which[at], return_index=True)
        winner = at[first]
        good = best[first_rows] > 0
        out[begin + first_rows[good]] = history[winner[good]]
    return out


# Big shops (issue 15): the candidates are compared on a fixed random sample of this
# many customers (their whole history), and a factor model is fitted on as many;
# everyone is then ranked in blocks of SERVE_BLOCK customers.
EVALUATION_SAMPLE = 20_000
SERVE_BLOCK = 20_000
# item × item counts are kept dense (float32) up to this many products
DENSE_ITEMS = 10_000
REASON_AGAIN, REASON_BEST_SELLERS = 0, 1


def recommendations_compute(
    *, organization, as_of: dt.date, job: JobHandle = NULL_JOB
) -> dict | None:
    """Everything a run holds, computed (nothing written); None when no order line
    names a product.

    Cost per customer does not grow with the shop: the purchases come from one SQL
    read (`reads.purchase_lines`), the candidates are compared on at most
    EVALUATION_SAMPLE customers, the served model learns from item-item statistics
    of everyone (or, for ALS, is fitted on the sample and solved for everyone), and
    everyone is ranked block by block. Recommendations come back as arrays
    (`recommendations`) with a table of reasons (`reasons`), not row by row."""
    from customers.models import Product

    from .reads import live_cluster_segments, purchase_lines

    timings: dict[str, float] = {}
    started = time.perf_counter()
    history = History(organization, as_of, job=job)
    products = history.products()
    if products.empty:
        return None
    raw_customers, raw_products, raw_days = purchase_lines(history, progress=(5, 20))
    product_ids = products["product_id"].to_numpy(dtype=np.int64)  # sorted by id
    at = np.minimum(np.searchsorted(product_ids, raw_products), product_ids.size - 1)
    known = product_ids[at] == raw_products
    items, days = at[known], raw_days[known].astype(np.int64)
    if items.size == 0:
        return None  # orders without products: nothing to learn from, nothing to serve
    customer_ids, cust_idx = np.unique(raw_customers[known], return_inverse=True)
    del raw_customers, raw_products, raw_days, at, known
    stock = dict(Product.objects.values_list("id", "in_stock"))
    names = products["name"].fillna("").to_numpy(dtype=object)
    skus = products["sku"].to_numpy(dtype=object)
    names = np.where(names == "", skus, names)
    categories = products["category"].fillna("").astype(str).to_numpy(dtype=object)
    allowed = (
        products["merchandise"].to_numpy()
        & ~products["hidden"].to_numpy()
        & np.array([stock.get(int(p)) is not False for p in product_ids])
    )
    n_items, n_customers = product_ids.size, customer_ids.size
    timings["read"] = round(time.perf_counter() - started, 3)

    t = time.perf_counter()
    segment_of, segment_names = live_cluster_segments(customer_ids)
    segment_ids = sorted(segment_names)
    groups = np.where(
        segment_of >= 0, np.searchsorted(segment_ids, np.maximum(segment_of, 0)), -1
    ).astype(np.int64)
    timings["segments"] = round(time.perf_counter() - t, 3)

    # the comparison: every candidate on the hold-out of a fixed sample of customers
    notes = []
    sample = ml.customer_sample(n_customers, EVALUATION_SAMPLE)
    if sample is None:
        e_customers, e_items, e_days, e_groups = cust_idx, items, days, groups
    else:
        keep, e_customers = ml.restrict(cust_idx, sample, n_customers)
        e_items, e_days, e_groups = items[keep], days[keep], groups[sample]
        del keep
        notes.append(
            f"The methods were compared on a fixed random sample of {sample.size:,} of your "
            f"{n_customers:,} customers with purchases (all of their purchases); the method "
            "chosen then learnt from every customer's purchases."
        )
    job.progress(
        30, f"Comparing recommendation models on {int(np.unique(e_customers).size):,} customers"
    )
    t = time.perf_counter()
    evaluation = ml.evaluate_candidates(
        e_customers,
        e_items,
        e_days,
        n_items=n_items,
        groups=e_groups if segment_ids else None,
        progress=lambda kind: job.progress(35, f"Testing {ml.KIND_LABELS.get(kind, kind)}"),
    )
    del e_customers, e_items, e_days, e_groups
    timings["evaluate"] = round(time.perf_counter() - t, 3)
    setting = recommendation_settings_get().repeats
    if setting in (Repeats.ALWAYS, Repeats.NEVER):
        # the owner decided: every candidate is compared, and served, that way
        evaluation = ml.forced_repeats(evaluation, setting == Repeats.ALWAYS)
    best = ml.choose(evaluation)
    if not ml.implicit_available():
        notes.append("Matrix factorisation (ALS) was not tried: the implicit package is missing.")

    job.progress(60, f"Recommending with {ml.KIND_LABELS.get(best['kind'], best['kind'])}")
    t = time.perf_counter()
    x = ml.interaction_matrix(cust_idx, items, n_customers, n_items)
    x.sort_indices()
    counts = None
    if best["kind"] == "als":
        counts = sp.csr_matrix(
            (np.ones(cust_idx.size, np.float32), (cust_idx, items)),
            shape=(n_customers, n_items),
        )
        counts.sum_duplicates()
    del cust_idx, items, days
    co = ml.cooccurrence(x).tocsr()  # item × item, of everyone (cost grows with lines)
    co.sort_indices()
    buyers = co.diagonal().astype(np.float64)
    model = ml.fit(
        best["kind"],
        x,
        groups=groups if segment_ids else None,
        counts=counts,
        co=co,
        max_customers=EVALUATION_SAMPLE,
    )
    if model is None:  # only a kind that was evaluated is chosen; popularity always fits
        model = ml.fit_popularity(x)
    if best["kind"] == "als" and sample is not None:
        notes.append(
            f"Matrix factorisation learnt its product factors from {EVALUATION_SAMPLE:,} "
            "customers; every customer's own factors come from all their purchases."
        )
    repeats = bool(best.get("repeats", True))
    timings["fit"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    overall = _popular(buyers, allowed, POPULAR_N)
    per_segment: dict[int, list[int]] = {}
    if segment_ids:
        member = groups >= 0
        seg_x = (
            sp.csr_matrix(
                (np.ones(int(member.sum())), (groups[member], np.flatnonzero(member))),
                shape=(len(segment_ids), n_customers),
            )
            @ x
        )
        for g, sid in enumerate(segment_ids):
            per_segment[sid] = _popular(np.asarray(seg_x[g].todense()).ravel(), allowed, POPULAR_N)
    by_category: dict[str, list[int]] = {}
    for cat in pd.unique(categories[allowed]):
        if cat:
            by_category[cat] = _popular(buyers, allowed & (categories == cat), RELATED_N)

    # the reasons, as a table: 0 bought before, 1 best-sellers, 2 + g popular with
    # segment g, 2 + segments + i bought with item i
    n_segments = len(segment_ids)
    reasons = [
        "Bought it before",
        "One of the best-sellers",
        *(f"Popular with {segment_names[s]}"[:200] for s in segment_ids),
        *(f"Bought with {n}"[:200] for n in names),
    ]
    personal = best["kind"] not in ("popularity", "segment_popularity")
    co_lookup = co.toarray().astype(np.float32) if n_items <= DENSE_ITEMS else co
    x_keys = ml._keys(x)
    given = np.zeros(n_items, dtype=np.int64)
    out_rows, out_items, out_rank, out_score, out_reason = [], [], [], [], []
    # each customer's list, block by block: best candidates, diversified, a reason each
    for begin in range(0, n_customers, SERVE_BLOCK):
        rows = np.arange(begin, min(begin + SERVE_BLOCK, n_customers))
        top_items, top_scores = ml.top_n(
            model, rows, TOP_N * 3, exclude_seen=not repeats, allowed=allowed
        )
        chosen, chosen_scores = _diversified(top_items, top_scores, categories)
        rec_r, rec_k = np.nonzero(chosen >= 0)
        rec_item = chosen[rec_r, rec_k]
        rec_score = chosen_scores[rec_r, rec_k]
        rec_r = rows[rec_r]
        again = _lookup(x, rec_r, rec_item, x_keys) > 0
        seg = groups[rec_r]
        reason = np.full(rec_r.size, REASON_BEST_SELLERS, dtype=np.int32)
        if personal:
            with_item = _bought_with(x, co_lookup, rec_r, rec_item)
            reason = np.where(seg >= 0, 2 + seg, reason)
            reason = np.where(with_item >= 0, 2 + n_segments + with_item, reason)
        elif best["kind"] == "segment_popularity":
            reason = np.where(seg >= 0, 2 + seg, reason)
        reason = np.where(again, REASON_AGAIN, reason).astype(np.int32)
        given += np.bincount(rec_item, minlength=n_items)
        out_rows.append(rec_r)
        out_items.append(rec_item)
        out_rank.append((rec_k + 1).astype(np.int16))
        out_score.append(np.where(np.isfinite(rec_score), rec_score, 0.0))
        out_reason.append(reason)
        job.progress(
            60 + 20 * min(rows[-1] + 1, n_customers) / n_customers,
            f"Recommended products to {int(rows[-1]) + 1:,} of {n_customers:,} customers",
        )
    del co_lookup, x_keys
    rec_rows = np.concatenate(out_rows) if out_rows else np.zeros(0, np.int64)
    recommendations = {
        "customer_id": customer_ids[rec_rows],
        "product_id": product_ids[np.concatenate(out_items)] if out_items else rec_rows,
        "rank": np.concatenate(out_rank) if out_rank else np.zeros(0, np.int16),
        "score": np.concatenate(out_score) if out_score else np.zeros(0),
        "reason": np.concatenate(out_reason) if out_reason else np.zeros(0, np.int32),
    }
    del out_rows, out_items, out_rank, out_score, out_reason, rec_rows

    # the page's "most recommended": how many customers get each product (top 20)
    ids = np.flatnonzero(given > 0)
    order = np.argsort(-given[ids], kind="stable")[:POPULAR_N]
    most_recommended = [[int(product_ids[ids[i]]), int(given[ids[i]])] for i in order]
    timings["rank"] = round(time.perf_counter() - t, 3)

    # "bought together": cosine of buyers, allowed products only, not the product itself
    t = time.perf_counter()
    similarity = ml.fit_item_knn(x, neighbours=RELATED_N * 3, co=co).similarity
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
        buyers_both = _lookup(co, rel[0], rel[1])
        relation_rows = list(
            zip(product_ids[rel[0]].tolist(), product_ids[rel[1]].tolist(), rel[2].tolist(),
                rel[3].astype(float).tolist(), buyers_both.astype(int).tolist(), strict=True)
        )  # fmt: skip
    else:
        relation_rows = []
    timings["related"] = round(time.perf_counter() - t, 3)
    timings["serve"] = round(timings["fit"] + timings["rank"] + timings["related"], 3)

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
        "n_customers": int(n_customers),
        "n_products": int(n_items),
        "compared_on": int(sample.size if sample is not None else n_customers),
        "recommendations": recommendations,
        "reasons": reasons,
        "relation_rows": relation_rows,
    }


def customer_rows(computed: dict):
    """(customer id, product id, rank, score, reason) per recommendation, in order."""
    recs, reasons = computed["recommendations"], computed["reasons"]
    return zip(
        recs["customer_id"].tolist(),
        recs["product_id"].tolist(),
        recs["rank"].tolist(),
        recs["score"].tolist(),
        (reasons[i] for i in recs["reason"].tolist()),
        strict=True,
    )


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


_COPY_ROWS = 500_000


def _copy_recommendations(org_id: int, run_id: int, computed: dict) -> None:
    """PostgreSQL: the recommendations as one binary COPY into a temporary staging
    table (numbers only: the reason is an index into `computed["reasons"]`, staged
    once in a second small table), then one INSERT … SELECT into the
    row-level-secured table (COPY FROM is refused there to the application role).
    Nothing is built per row in Python."""
    recs = computed["recommendations"]
    n = int(recs["rank"].size)
    table = connection.ops.quote_name(CustomerRecommendation._meta.db_table)
    with connection.cursor() as cursor:
        raw = cursor.cursor
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _seg_stage_recs (customer_id bigint, "
            "product_id bigint, rank smallint, score double precision, reason integer) "
            "ON COMMIT DELETE ROWS; TRUNCATE _seg_stage_recs; "
            "CREATE TEMP TABLE IF NOT EXISTS _seg_stage_reasons (id integer, text "
            "varchar(200)) ON COMMIT DELETE ROWS; TRUNCATE _seg_stage_reasons"
        )
        with raw.copy("COPY _seg_stage_reasons (id, text) FROM STDIN") as copy:
            for i, text in enumerate(computed["reasons"]):
                copy.write_row((i, text))
        with raw.copy(
            "COPY _seg_stage_recs (customer_id, product_id, rank, score, reason) "
            "FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.write(COPY_BINARY_HEADER)
            for begin in range(0, n, _COPY_ROWS):
                part = slice(begin, min(begin + _COPY_ROWS, n))
                copy.write(
                    copy_binary_block(
                        [
                            (recs["customer_id"][part], ">i8"),
                            (recs["product_id"][part], ">i8"),
                            (recs["rank"][part], ">i2"),
                            (recs["score"][part], ">f8"),
                            (recs["reason"][part], ">i4"),
                        ]
                    )
                )
            copy.write(COPY_BINARY_TRAILER)
        cursor.execute(
            f"INSERT INTO {table} (organization_id, run_id, customer_id, product_id, rank, "  # noqa: S608 - model metadata
            "score, reason) SELECT %s, %s, s.customer_id, s.product_id, s.rank, s.score, r.text "
            "FROM _seg_stage_recs s JOIN _seg_stage_reasons r ON r.id = s.reason",
            [org_id, run_id],
        )
    statistics_refresh_after_commit(CustomerRecommendation, n)  # core.dbstats


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
        org_id, run_id = organization.pk, run.pk
        job.progress(85, f"Saving {computed['recommendations']['rank'].size:,} recommendations")
        if connection.vendor == "postgresql":
            _copy_recommendations(org_id, run_id, computed)
        else:
            # multi-row INSERTs: a million rows through bulk_create's model instances
            # took over a minute (docs/performance.md)
            _insert(
                CustomerRecommendation,
                ["organization_id", "run_id", "customer_id", "product_id", "rank", "score",
                 "reason"],
                ((org_id, run_id, *row) for row in customer_rows(computed)),
            )  # fmt: skip
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
    # the runs named: the unique key (organisation, run, customer, rank) serves the
    # delete (there is no index on the customer alone)
    runs = list(RecommendationRun.objects.values_list("pk", flat=True))
    CustomerRecommendation.objects.filter(
        run_id__in=runs, customer_id__in=list(customer_ids)
    ).delete()
