"""Recommendation models and their hold-out evaluation (issue 10): numpy and
scipy.sparse only, no Django.

Purchases are given as parallel arrays (customer index, item index, UTC day
number), one entry per bought line; returns are left out by the caller. The
candidates:

- ``popularity``: the items with the most distinct buyers;
- ``segment_popularity``: the same within the customer's segment (when segments
  are known), else overall;
- ``item_knn``: item-to-item cosine similarity of co-purchase (who bought both),
  each item keeping its ``neighbours`` most similar items, scored as the sum of
  the similarities to what the customer bought;
- ``ease``: EASE (Steck 2019), a closed-form linear item-item model on the
  ``max_items`` items with the most buyers;
- ``als``: implicit-feedback matrix factorisation (alternating least squares of
  the ``implicit`` package, one thread) when that package is installed.

Hold-out protocol (issue 10, used for every figure): for each customer with
purchases on at least two distinct days, the items bought on their last purchase
day are the truth and everything before is training; customers with one purchase
day are training only. Precision, recall and MAP at 10 are averaged over the
evaluated customers; coverage is the share of training items recommended to
anyone. Items bought before may be recommended again (repeat purchases count);
each candidate is also evaluated without them, and the better variant is kept
(both are returned, so an owner's "always" or "never" reads its own figures).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

K = 10
KINDS = ("popularity", "segment_popularity", "item_knn", "ease", "als")

# Words for owners (the "about this model" section names the kinds).
KIND_LABELS = {
    "popularity": "best-sellers",
    "segment_popularity": "best-sellers in the customer's segment",
    "item_knn": "products bought together (item-to-item similarity)",
    "ease": "products bought together (EASE item model)",
    "als": "shopping patterns (matrix factorisation, ALS)",
}


def implicit_available() -> bool:
    try:
        import implicit  # noqa: F401
    except ImportError:
        return False
    return True


def interaction_matrix(
    customers: np.ndarray, items: np.ndarray, n_customers: int, n_items: int
) -> sp.csr_matrix:
    """Customers × items, 1 where the customer bought the item (distinct buyers)."""
    x = sp.csr_matrix(
        (np.ones(len(customers), dtype=np.float32), (customers, items)),
        shape=(n_customers, n_items),
    )
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


@dataclass
class Split:
    train_customers: np.ndarray
    train_items: np.ndarray
    truth: dict[int, np.ndarray]  # customer index -> items bought on their last day


def holdout_split(customers: np.ndarray, items: np.ndarray, days: np.ndarray) -> Split:
    """The issue's protocol: the last purchase day of customers with two or more
    distinct purchase days is the truth; everything else is training."""
    customers = np.asarray(customers, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    days = np.asarray(days, dtype=np.int64)
    n = int(customers.max()) + 1 if customers.size else 0
    last = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(last, customers, days)
    first = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first, customers, days)
    evaluated = last > first  # two or more distinct days
    is_truth = evaluated[customers] & (days == last[customers])
    truth: dict[int, np.ndarray] = {}
    tc, ti = customers[is_truth], items[is_truth]
    order = np.argsort(tc, kind="stable")
    tc, ti = tc[order], ti[order]
    bounds = np.flatnonzero(np.diff(tc)) + 1
    for group_c, group_i in zip(np.split(tc, bounds), np.split(ti, bounds), strict=True):
        if group_c.size:
            truth[int(group_c[0])] = np.unique(group_i)
    return Split(customers[~is_truth], items[~is_truth], truth)


# --- models ---------------------------------------------------------------------------


@dataclass
class Model:
    """A fitted candidate: `scores(rows)` gives dense scores (len(rows) × items)."""

    kind: str
    n_items: int
    x: sp.csr_matrix  # training interactions (customers × items)
    params: dict = field(default_factory=dict)
    _scores: Callable[[np.ndarray], np.ndarray] | None = None
    similarity: sp.csr_matrix | None = None  # item × item, for "bought with" reasons
    same_for_all: np.ndarray | None = None  # scores that do not depend on the customer
    # scores shared by groups of customers (popularity: one group; segment
    # popularity: one per segment plus the shop's): groups × items, and each
    # training row's group (None: everyone is group 0). top_n ranks each group once.
    group_scores: np.ndarray | None = None
    group_of: np.ndarray | None = None
    # scores that are zero for most items (item-kNN): rows -> sparse scores; top_n
    # ranks the non-zero ones and fills a short list with the best-sellers
    sparse_scores: Callable[[np.ndarray], sp.csr_matrix] | None = None

    def scores(self, rows: np.ndarray) -> np.ndarray:
        return self._scores(rows)


def fit_popularity(x: sp.csr_matrix) -> Model:
    buyers = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    model = Model("popularity", x.shape[1], x)
    model._scores = lambda rows: np.broadcast_to(buyers, (len(rows), buyers.size)).copy()
    model.same_for_all = buyers
    model.group_scores = buyers[None, :]
    model.params = {"buyers": buyers}
    return model


def fit_segment_popularity(x: sp.csr_matrix, groups: np.ndarray | None) -> Model:
    """Buyers per item within each group (segment); a customer without a group, or a
    group without buyers, gets the overall counts. Ties break by overall buyers."""
    overall = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    model = Model("segment_popularity", x.shape[1], x)
    if groups is None:  # no segments: the shop's best-sellers, ranked once
        model._scores = lambda rows: np.broadcast_to(overall, (len(rows), overall.size)).copy()
        model.group_scores = overall[None, :]
        return model
    groups = np.asarray(groups, dtype=np.int64)
    known = groups >= 0
    labels = np.unique(groups[known])
    index = {int(g): i for i, g in enumerate(labels)}
    membership = sp.csr_matrix(
        (
            np.ones(int(known.sum())),
            (np.searchsorted(labels, groups[known]), np.flatnonzero(known)),
        ),
        shape=(len(labels), x.shape[0]),
    )
    per_group = np.asarray((membership @ x).todense(), dtype=np.float64)
    tiebreak = overall / (overall.max() + 1.0)
    # one row per group (a group without buyers reads the shop's), then the shop's
    table = np.vstack([*(g if g.any() else overall for g in per_group), overall]) + tiebreak
    group_of = np.full(x.shape[0], len(labels), dtype=np.int64)
    mine = np.flatnonzero(known[: x.shape[0]])
    group_of[mine] = [index[int(g)] for g in groups[mine]]

    model._scores = lambda rows: table[group_of[np.asarray(rows)]]
    model.group_scores = table
    model.group_of = group_of
    model.params = {"groups": len(labels)}
    return model


def cooccurrence(x: sp.csr_matrix) -> sp.csr_matrix:
    """Item × item: how many customers bought both (diagonal: buyers of the item)."""
    xt = x.T.tocsr()
    return (xt @ x).tocsr()


def _keep_top(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row keeps its k largest entries."""
    matrix = matrix.tocsr()
    rows, cols, vals = [], [], []
    for i in range(matrix.shape[0]):
        start, end = matrix.indptr[i], matrix.indptr[i + 1]
        if end == start:
            continue
        data = matrix.data[start:end]
        idx = matrix.indices[start:end]
        if data.size > k:
            keep = np.argpartition(-data, k)[:k]
            data, idx = data[keep], idx[keep]
        rows.append(np.full(data.size, i))
        cols.append(idx)
        vals.append(data)
    if not rows:
        return sp.csr_matrix(matrix.shape, dtype=np.float64)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=matrix.shape
    )


def fit_item_knn(
    x: sp.csr_matrix, *, neighbours: int = 100, co: sp.csr_matrix | None = None
) -> Model:
    """Cosine similarity of items' buyer vectors; each item keeps its `neighbours`
    most similar items; a customer's score for item i is the sum over the items j
    they bought of sim(j, i). The diagonal is kept, so items bought before stay
    candidates (the evaluation decides whether to drop them). `co`: the
    co-occurrence of x when the caller has it already."""
    co = (cooccurrence(x) if co is None else co).astype(np.float64)
    buyers = co.diagonal()
    norm = np.sqrt(np.maximum(buyers, 1e-12))
    co = co.tocoo()
    sim = sp.csr_matrix((co.data / (norm[co.row] * norm[co.col]), (co.row, co.col)), shape=co.shape)
    sim = _keep_top(sim, neighbours + 1)
    model = Model("item_knn", x.shape[1], x, params={"neighbours": neighbours}, similarity=sim)
    model._scores = lambda rows: np.asarray((x[rows] @ sim).todense())
    model.sparse_scores = lambda rows: (x[rows] @ sim).tocsr()
    return model


# EASE keeps B over the whole catalogue (float32, items² × 4 bytes) up to this size
DENSE_EASE_ITEMS = 10_000


def _spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive-definite matrix through its Cholesky
    factor in single precision (LAPACK spotrf/spotri: about a fifth of the time of
    numpy's double-precision general inverse for 3,000 items; EASE's ridge keeps the
    matrix well conditioned); the double-precision general inverse if the
    factorisation fails."""
    from scipy.linalg import lapack

    factor, info = lapack.spotrf(matrix.astype(np.float32), lower=False, clean=False)
    if info == 0:
        inverse, info = lapack.spotri(factor, lower=False)
        if info == 0:
            inverse = np.triu(inverse)
            inverse += np.triu(inverse, 1).T
            return inverse
    return np.linalg.inv(matrix).astype(np.float32)


def fit_ease(
    x: sp.csr_matrix, *, l2: float = 200.0, max_items: int = 3000, co: sp.csr_matrix | None = None
) -> Model:
    """EASE: B = I - P·diag(1/diag(P)) with P = (XᵀX + λI)⁻¹ and a zero diagonal, on
    the `max_items` items with the most buyers (the others score 0). `co`: XᵀX when
    the caller has it already (the Gram matrix is its kept rows and columns)."""
    buyers = np.asarray(x.sum(axis=0)).ravel()
    kept = np.sort(np.argsort(-buyers, kind="stable")[:max_items])
    kept = kept[buyers[kept] > 0]
    xk = x[:, kept].tocsr()
    if co is not None:
        gram = np.asarray(co[kept][:, kept].todense(), dtype=np.float64)
    else:
        gram = np.asarray((xk.T @ xk).todense(), dtype=np.float64)
    gram[np.diag_indices_from(gram)] += l2
    p = _spd_inverse(gram)
    del gram
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    n_items = x.shape[1]
    model = Model("ease", n_items, x, params={"l2": l2, "items": int(kept.size)})
    if n_items <= DENSE_EASE_ITEMS:
        # B over the whole catalogue (rows and columns of items left out are 0):
        # scoring is then one sparse-times-dense product, with no column scatter
        full = np.zeros((n_items, n_items), dtype=np.float32)
        full[np.ix_(kept, kept)] = b
        del b, p

        def scores(rows):
            part = x[rows]
            out = np.asarray(part @ full)
            # an item bought before keeps a small score, so repeats remain candidates
            seen = part.tocoo()
            out[seen.row, seen.col] += 1e-6
            return out

    else:

        def scores(rows):
            out = np.zeros((len(rows), n_items), dtype=np.float32)
            out[:, kept] = np.asarray(xk[rows] @ b)  # sparse rows times dense B
            seen = x[rows].tocoo()
            out[seen.row, seen.col] += 1e-6
            return out

    model._scores = scores
    return model


def fit_als(
    x: sp.csr_matrix,
    *,
    factors: int = 64,
    regularization: float = 0.05,
    alpha: float = 20.0,
    iterations: int = 15,
    seed: int = 0,
    counts: sp.csr_matrix | None = None,
    max_customers: int | None = None,
) -> Model | None:
    """Implicit ALS (Hu, Koren & Volinsky 2008) through the `implicit` package, one
    thread (the worker's share on the 2-core machine). None when not installed.

    With more than `max_customers` customers, the item factors are fitted on a fixed
    random sample of that many customers (seed `seed`) and every customer's factors
    are then solved against them (one exact least-squares step per customer, in
    blocks, as `implicit` folds in a new user): the fit costs the same for any shop
    size."""
    if not implicit_available():
        return None
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    confidence = (counts if counts is not None else x).astype(np.float32).tocsr()
    confidence = confidence.copy()
    confidence.data = (
        np.log1p(confidence.data) * alpha + 1.0 if counts is not None else (confidence.data * alpha)
    )
    with threadpool_limits(1):
        als = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=1.0,
            iterations=iterations,
            num_threads=1,
            random_state=seed,
            calculate_training_loss=False,
        )
        sample = None
        if max_customers is not None and confidence.shape[0] > max_customers:
            sample = np.sort(
                np.random.default_rng(seed).choice(
                    confidence.shape[0], size=max_customers, replace=False
                )
            )
            als.fit(confidence[sample], show_progress=False)
        else:
            als.fit(confidence, show_progress=False)
    item_f = np.asarray(als.item_factors)
    users = np.asarray(als.user_factors) if sample is None else None

    def folded_in(rows):
        rows = np.asarray(rows)
        with threadpool_limits(1):
            return np.asarray(als.recalculate_user(np.arange(rows.size), confidence[rows]))

    model = Model(
        "als",
        x.shape[1],
        x,
        params={"factors": factors, "regularization": regularization, "alpha": alpha,
                "iterations": iterations, "seed": seed},
    )  # fmt: skip
    if users is not None:
        model._scores = lambda rows: users[rows] @ item_f.T
    else:
        model.params["fitted_on"] = int(max_customers or 0)
        model._scores = lambda rows: folded_in(rows) @ item_f.T
    return model


def fit(
    kind: str,
    x: sp.csr_matrix,
    *,
    groups=None,
    counts=None,
    seed: int = 0,
    co: sp.csr_matrix | None = None,
    max_customers: int | None = None,
) -> Model | None:
    """One candidate fitted on `x`. `co` (XᵀX) saves recomputing the item-item
    statistics; `max_customers` bounds the customers a factor model is fitted on
    (item statistics always use everyone: their cost grows with the lines only)."""
    if kind == "popularity":
        return fit_popularity(x)
    if kind == "segment_popularity":
        return fit_segment_popularity(x, groups)
    if kind == "item_knn":
        return fit_item_knn(x, co=co)
    if kind == "ease":
        return fit_ease(x, co=co)
    if kind == "als":
        return fit_als(x, counts=counts, seed=seed, max_customers=max_customers)
    raise ValueError(kind)


def customer_sample(n_customers: int, size: int, *, seed: int = 0) -> np.ndarray | None:
    """A fixed random sample of `size` customer indices out of `n_customers`, sorted
    (the same shop and size give the same sample), or None when all fit."""
    if n_customers <= size:
        return None
    return np.sort(np.random.default_rng(seed).choice(n_customers, size=size, replace=False))


def restrict(
    customers: np.ndarray, chosen: np.ndarray, n_customers: int
) -> tuple[np.ndarray, np.ndarray]:
    """(mask of the entries whose customer is in `chosen`, their customer indices
    renumbered 0..len(chosen)-1)."""
    renumber = np.full(n_customers, -1, dtype=np.int64)
    renumber[chosen] = np.arange(chosen.size)
    mine = renumber[customers]
    keep = mine >= 0
    return keep, mine[keep]


# --- ranking and evaluation -----------------------------------------------------------


def top_n(
    model: Model,
    rows: np.ndarray,
    n: int,
    *,
    exclude_seen: bool = False,
    allowed: np.ndarray | None = None,
    chunk: int = 2000,
) -> tuple[np.ndarray, np.ndarray]:
    """The n best items per row (items, scores), best first; -1 where fewer exist."""
    rows = np.asarray(rows, dtype=np.int64)
    items_out = np.full((rows.size, n), -1, dtype=np.int64)
    scores_out = np.zeros((rows.size, n))
    if model.group_scores is not None:
        _top_n_grouped(model, rows, n, exclude_seen, allowed, chunk, items_out, scores_out)
        return items_out, scores_out
    if model.sparse_scores is not None:
        _top_n_sparse(model, rows, n, exclude_seen, allowed, chunk, items_out, scores_out)
        return items_out, scores_out
    for start in range(0, rows.size, chunk):
        part = rows[start : start + chunk]
        s = np.asarray(model.scores(part))
        if s.dtype not in (np.float32, np.float64):
            s = s.astype(np.float64)
        if exclude_seen:
            seen = model.x[part]
            s[seen.nonzero()] = -np.inf
        if allowed is not None:
            s[:, ~allowed] = -np.inf
        m = min(n, s.shape[1])
        top = np.argpartition(-s, m - 1, axis=1)[:, :m]
        order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        ts = np.take_along_axis(s, top, axis=1)
        top[~np.isfinite(ts)] = -1
        items_out[start : start + part.size, :m] = top
        scores_out[start : start + part.size, :m] = np.where(np.isfinite(ts), ts, 0.0)
    return items_out, scores_out


def _top_n_grouped(model, rows, n, exclude_seen, allowed, chunk, items_out, scores_out) -> None:
    """top_n for scores shared by groups: each group's ranking is sorted once (ties:
    lower item first); without items seen, each customer walks down their group's
    ranking past what they bought (at most n + their purchases deep)."""
    table = np.array(model.group_scores, dtype=np.float64)
    if allowed is not None:
        table[:, ~allowed] = -np.inf
    group_of = model.group_of[rows] if model.group_of is not None else np.zeros(rows.size, np.int64)
    for g in np.unique(group_of):
        s = table[g]
        order = np.argsort(-s, kind="stable")
        order = order[np.isfinite(s[order])]
        members = np.flatnonzero(group_of == g)
        if not exclude_seen:
            m = min(n, order.size)
            items_out[members, :m] = order[:m]
            scores_out[members, :m] = s[order[:m]]
            continue
        for start in range(0, members.size, chunk):
            part = members[start : start + chunk]
            bought = model.x[rows[part]]
            depth = n + (int(np.diff(bought.indptr).max()) if bought.nnz else 0)
            pool = order[:depth]
            seen = bought[:, pool].toarray() > 0
            pick = np.argsort(seen, axis=1, kind="stable")[:, :n]  # unseen first, in order
            fresh = ~np.take_along_axis(seen, pick, axis=1)
            chosen = pool[pick]
            m = pick.shape[1]
            items_out[part, :m] = np.where(fresh, chosen, -1)
            scores_out[part, :m] = np.where(fresh, s[chosen], 0.0)


def _keys(x: sp.csr_matrix) -> np.ndarray:
    """Each stored (row, column) of x as one sorted integer."""
    x.sort_indices()
    keys = np.repeat(np.arange(x.shape[0], dtype=np.int64), np.diff(x.indptr))
    keys *= np.int64(x.shape[1])
    keys += x.indices
    return keys


def _seen(
    x: sp.csr_matrix, rows: np.ndarray, items: np.ndarray, keys: np.ndarray | None = None
) -> np.ndarray:
    """x[rows[k], items[k]] > 0 for every k, in one sorted search (`keys`: _keys(x),
    when the caller asks many times)."""
    keys = _keys(x) if keys is None else keys
    n_items = np.int64(x.shape[1])
    wanted = np.asarray(rows, dtype=np.int64) * n_items + np.asarray(items, dtype=np.int64)
    if keys.size == 0:
        return np.zeros(wanted.size, dtype=bool)
    at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
    return keys[at] == wanted


def _top_n_sparse(model, rows, n, exclude_seen, allowed, chunk, items_out, scores_out) -> None:
    """top_n for mostly-zero scores: rank the non-zero ones (ties: lower item first);
    a list shorter than n is filled with the best-sellers not in it (score 0) —
    where a dense ranking would take arbitrary zero-score items."""
    buyers = np.asarray(model.x.sum(axis=0)).ravel()
    fill = np.argsort(-buyers, kind="stable")
    if allowed is not None:
        fill = fill[allowed[fill]]
    keys = _keys(model.x) if exclude_seen else None
    for start in range(0, rows.size, chunk):
        part = rows[start : start + chunk]
        s = model.sparse_scores(part).tocoo()  # row by row (items unsorted within a row)
        r, c, v = s.row.astype(np.int64), s.col.astype(np.int64), s.data.astype(np.float64)
        keep = v > 0
        if allowed is not None:
            keep &= allowed[c]
        if exclude_seen:
            keep &= ~_seen(model.x, part[r], c, keys)
        r, c, v = r[keep], c[keep], v[keep]
        # keep only what can reach a row's top n: its n-th best score as a threshold,
        # from the row's scores laid side by side (sorting every score took most time)
        # (the few rows with very many scores one by one, so the others' width stays small)
        lengths = np.bincount(r, minlength=part.size)
        position = np.arange(r.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        threshold = np.full(part.size, -np.inf)
        long_rows = lengths > n
        wide = lengths > max(4 * n, int(np.percentile(lengths, 99)) if r.size else 0)
        width = int(lengths[long_rows & ~wide].max()) if (long_rows & ~wide).any() else 0
        if width:
            narrow = ~wide[r]
            side_by_side = np.full((part.size, width), -np.inf)
            side_by_side[r[narrow], position[narrow]] = v[narrow]
            threshold = np.partition(side_by_side, width - n, axis=1)[:, width - n]
        for j in np.flatnonzero(wide):
            mine = v[r == j]
            threshold[j] = np.partition(mine, mine.size - n)[mine.size - n]
        keep = v >= threshold[r]
        r, c, v = r[keep], c[keep], v[keep]
        order = np.lexsort((c, -v, r))  # per row: best first, lower item on ties
        r, c, v = r[order], c[order], v[order]
        rank = np.arange(r.size) - np.searchsorted(r, r, side="left")
        top = rank < n
        items_out[start + r[top], rank[top]] = c[top]
        scores_out[start + r[top], rank[top]] = v[top]
        have = np.bincount(r[top], minlength=part.size)
        for j in np.flatnonzero(have < n):
            taken = set(items_out[start + j, : have[j]].tolist())
            if exclude_seen:
                x = model.x
                taken.update(x.indices[x.indptr[part[j]] : x.indptr[part[j] + 1]].tolist())
            extra = [i for i in fill[: n + len(taken)].tolist() if i not in taken]
            extra = extra[: n - have[j]]
            items_out[start + j, have[j] : have[j] + len(extra)] = extra


def _metrics(model: Model, split: Split, evaluated: np.ndarray, recs: np.ndarray, k: int) -> dict:
    precision = np.empty(evaluated.size)
    recall = np.empty(evaluated.size)
    ap = np.empty(evaluated.size)
    # hits without a loop per customer: (row, item) pairs as one integer key
    n_items = np.int64(model.n_items)
    sizes = np.array([split.truth[int(c)].size for c in evaluated])
    truth_keys = np.concatenate(
        [np.int64(j) * n_items + split.truth[int(c)] for j, c in enumerate(evaluated)]
    )
    rec_keys = np.arange(evaluated.size, dtype=np.int64)[:, None] * n_items + recs
    hit = np.isin(rec_keys, truth_keys) & (recs >= 0)
    hits = hit.sum(axis=1)
    precision[:] = hits / k
    recall[:] = hits / sizes
    cum = np.cumsum(hit, axis=1)
    ap[:] = ((cum / np.arange(1, k + 1)) * hit).sum(axis=1) / np.minimum(sizes, k)
    trained = np.asarray(model.x.sum(axis=0)).ravel() > 0
    recommended = np.unique(recs[recs >= 0])
    return {
        "precision_at_10": float(precision.mean()),
        "recall_at_10": float(recall.mean()),
        "map_at_10": float(ap.mean()),
        "coverage": float(recommended.size / max(int(trained.sum()), 1)),
        "customers": int(evaluated.size),
    }


def evaluate_both(model: Model, split: Split, *, k: int = K) -> tuple[dict, dict]:
    """(with items bought before, without them) from one ranking: the best k + (most
    items any evaluated customer bought) hold each customer's best k unseen."""
    evaluated = np.fromiter(split.truth.keys(), dtype=np.int64, count=len(split.truth))
    if evaluated.size == 0 or model.group_scores is not None or model.sparse_scores is not None:
        # nothing to rank, or a cheap ranking anyway
        return (
            evaluate(model, split, exclude_seen=False, k=k),
            evaluate(model, split, exclude_seen=True, k=k),
        )
    bought = np.diff(model.x.indptr)[evaluated]
    deep, _ = top_n(model, evaluated, min(k + int(bought.max()), model.n_items))
    with_repeats = _metrics(model, split, evaluated, deep[:, :k].copy(), k)
    rows = np.repeat(evaluated, deep.shape[1])
    seen = _seen(model.x, rows, np.maximum(deep.ravel(), 0)).reshape(deep.shape) | (deep < 0)
    pick = np.argsort(seen, axis=1, kind="stable")[:, :k]
    without = np.where(
        np.take_along_axis(seen, pick, axis=1), -1, np.take_along_axis(deep, pick, axis=1)
    )
    return with_repeats, _metrics(model, split, evaluated, without, k)


def evaluate(model: Model, split: Split, *, exclude_seen: bool = False, k: int = K) -> dict:
    evaluated = np.fromiter(split.truth.keys(), dtype=np.int64, count=len(split.truth))
    if evaluated.size == 0:
        return {"precision_at_10": None, "recall_at_10": None, "map_at_10": None,
                "coverage": None, "customers": 0}  # fmt: skip
    recs, _ = top_n(model, evaluated, k, exclude_seen=exclude_seen)
    return _metrics(model, split, evaluated, recs, k)


def evaluate_candidates(
    customers: np.ndarray,
    items: np.ndarray,
    days: np.ndarray,
    *,
    n_items: int,
    groups: np.ndarray | None = None,
    kinds: tuple[str, ...] = KINDS,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    max_evaluated: int = 20_000,
) -> list[dict]:
    """Every candidate on the hold-out, each with `repeats` (True: items bought
    before may be recommended, the better of the two variants)."""
    split = holdout_split(customers, items, days)
    if len(split.truth) > max_evaluated:
        # a large shop: score a fixed random sample of the evaluated customers (their
        # training rows stay); the figures' spread at 20,000 is well under 0.01
        keep = np.random.default_rng(0).choice(
            np.fromiter(split.truth, dtype=np.int64), size=max_evaluated, replace=False
        )
        split.truth = {int(c): split.truth[int(c)] for c in np.sort(keep)}
    n_customers = int(np.max(customers)) + 1 if len(customers) else 0
    x = interaction_matrix(split.train_customers, split.train_items, n_customers, n_items)
    counts = sp.csr_matrix(
        (np.ones(split.train_customers.size, np.float32),
         (split.train_customers, split.train_items)),
        shape=(n_customers, n_items),
    )  # fmt: skip
    counts.sum_duplicates()
    results = []
    for kind in kinds:
        if progress:
            progress(kind)
        model = fit(kind, x, groups=groups, counts=counts, seed=seed)
        if model is None:
            continue
        with_repeats, without = evaluate_both(model, split)

        # repeats only when they help: better precision, or as good with a better MAP
        def rank(e):
            return (e["precision_at_10"] or 0, e["map_at_10"] or 0)

        best, repeats = (
            (with_repeats, True) if rank(with_repeats) > rank(without) else (without, False)
        )
        # both variants are kept: the owner may ask for one (`forced_repeats`)
        results.append(
            {"kind": kind, **best, "repeats": repeats,
             "with_repeats": with_repeats, "without_repeats": without}
        )  # fmt: skip
    return results


def forced_repeats(evaluation: list[dict], repeats: bool) -> list[dict]:
    """The evaluation as if every candidate recommended products bought before
    (`repeats` True) or never did: each entry's figures become that variant's."""
    key = "with_repeats" if repeats else "without_repeats"
    return [{**e, **(e.get(key) or {}), "repeats": repeats} for e in evaluation]


def choose(evaluation: list[dict]) -> dict:
    """The served candidate: the best precision@10; popularity unless another beats
    it (so the served model is never worse than best-sellers on the hold-out)."""
    popularity = next(e for e in evaluation if e["kind"] == "popularity")
    best = popularity
    for entry in evaluation:
        if (entry["precision_at_10"] or 0) > (best["precision_at_10"] or 0):
            best = entry
    return best


# --- serving helpers ------------------------------------------------------------------


def diversify(items: np.ndarray, categories: np.ndarray, n: int, per_category: int) -> list[int]:
    """Best-first items, at most `per_category` from one category while others remain
    (the rest fill the list if too few categories exist)."""
    chosen, held, seen = [], [], {}
    for item in items:
        if item < 0:
            continue
        cat = categories[item]
        if seen.get(cat, 0) < per_category:
            chosen.append(int(item))
            seen[cat] = seen.get(cat, 0) + 1
        else:
            held.append(int(item))
        if len(chosen) >= n:
            return chosen
    return (chosen + held)[:n]
