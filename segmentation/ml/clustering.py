"""k-means segmentation that picks its own k, with a minimum segment size.

Candidates k_min..k_max are fitted with KMeans on a seeded sample of at most
``fit_sample`` rows (k-means centroids settle long before every row is seen),
then every customer is assigned to the nearest centroid. A candidate is
rejected when its smallest segment is below the minimum size. Every accepted
candidate gets two scores:

- silhouette (on a seeded sample of ``silhouette_sample`` rows): how distinct
  the groups are;
- stability: the candidate is refitted ``STABILITY_ROUNDS`` times on random
  subsamples of ``STABILITY_SAMPLE`` rows and each refit's grouping of the
  silhouette sample is compared with the candidate's by the adjusted Rand index
  (1 = the same groups, 0 = no better than chance); it is measured only for
  candidates within ``SILHOUETTE_TOLERANCE`` of the best silhouette, the only
  ones it can decide between. Groups that come out
  differently from sample to sample are an artefact of the sample, not
  something an owner can act on.

The rule (``choose_k``): candidates whose silhouette is within
``SILHOUETTE_TOLERANCE`` of the best are "as distinct"; among them the most
stable wins (stabilities within ``STABILITY_TIE`` count as equal, then the
higher silhouette, then fewer groups). Stability therefore decides only
between candidates silhouette cannot tell apart. The winner is then refined
on all rows: MiniBatchKMeans above ``minibatch_above`` rows, KMeans below,
started from the sample centroids. Same input and seed give the same labels.
``explain_choice`` says in plain words why this k was chosen.

``drill_down`` splits each segment the same way (same minimum size, k from 2
to ``DRILL_K_MAX``) into sub-segments; a segment is left whole when no split
gives groups of the minimum size or the split is unstable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import adjusted_rand_score, pairwise_distances_argmin
from threadpoolctl import threadpool_limits


class ClusteringError(ValueError):
    """The data cannot be split as asked (for example too few customers)."""


# k choice (see the module docstring); measured on planted groups and CDNOW
SILHOUETTE_TOLERANCE = 0.03
STABILITY_TIE = 0.02
STABILITY_ROUNDS = 3
STABILITY_SAMPLE = 2_000
# a split whose groups agree less than this between subsamples is not shown
STABLE_ENOUGH = 0.6
# drill-down: a few sub-segments per segment, on smaller samples (it runs once
# per segment, and a sub-segment needs fewer points to place its centre)
DRILL_K_MAX = 4
DRILL_FIT_SAMPLE = 8_000
DRILL_SILHOUETTE_SAMPLE = 2_000


@dataclass(frozen=True)
class Candidate:
    k: int
    silhouette: float | None
    sizes: list[int]
    accepted: bool
    reason: str = ""
    stability: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "silhouette": self.silhouette,
            "stability": self.stability,
            "sizes": list(self.sizes),
            "accepted": self.accepted,
            "reason": self.reason,
        }


@dataclass
class ClusteringResult:
    """Labels 0..k-1 are ordered by segment size, largest first."""

    labels: np.ndarray
    centroids: np.ndarray
    k: int
    silhouette: float | None
    silhouette_by_k: dict[int, float | None]
    sizes: list[int]
    min_size: int
    candidates: list[Candidate]
    algorithm: str
    seed: int
    merged_small_segments: bool = False
    warnings: list[str] = field(default_factory=list)
    stability: float | None = None
    explanation: str = ""

    @property
    def stability_by_k(self) -> dict[int, float | None]:
        return {c.k: c.stability for c in self.candidates}

    def to_dict(self) -> dict[str, Any]:
        """Quality figures for storing with the run (labels are stored as memberships)."""
        return {
            "k": self.k,
            "silhouette": self.silhouette,
            "silhouette_by_k": {str(k): v for k, v in self.silhouette_by_k.items()},
            "stability": self.stability,
            "stability_by_k": {str(k): v for k, v in self.stability_by_k.items()},
            "choice_rule": CHOICE_RULE,
            "explanation": self.explanation,
            "sizes": [int(s) for s in self.sizes],
            "min_size": int(self.min_size),
            "candidates": [c.to_dict() for c in self.candidates],
            "algorithm": self.algorithm,
            "seed": int(self.seed),
            "merged_small_segments": self.merged_small_segments,
            "warnings": list(self.warnings),
            "centroids": [[float(v) for v in row] for row in self.centroids],
        }


def minimum_segment_size(*, n: int, min_share: float, min_count: int) -> int:
    return max(int(min_count), int(math.ceil(min_share * n)))


def cluster_customers(
    *,
    matrix: np.ndarray | pd.DataFrame,
    k_min: int = 2,
    k_max: int = 8,
    min_share: float = 0.02,
    min_count: int = 10,
    seed: int = 0,
    silhouette_sample: int = 5_000,
    fit_sample: int = 20_000,
    minibatch_above: int = 50_000,
    n_init: int = 4,
    n_threads: int = 1,
    stability_sample: int = STABILITY_SAMPLE,
) -> ClusteringResult:
    """Cluster standardised rows (one per customer) into k_min..k_max segments.

    ``matrix`` is the model matrix (e.g. ``FeatureSet.matrix``); rows keep their
    order in ``labels``. The minimum segment size is ``max(min_count,
    ceil(min_share * n))``. If every k in the bounds leaves a segment below it
    (outliers), the best candidate's small segments are merged into their nearest
    neighbours and a warning says so.
    """
    # k-means runs on OpenMP threads and distances on OpenBLAS threads; on a
    # small or busy machine threads of one pool spin while the other works
    # (measured 3-5x slower on 2 cores shared with another job). One thread per
    # job is predictable; a worker runs several jobs side by side instead.
    with threadpool_limits(limits=n_threads):
        return _cluster(
            matrix=matrix,
            k_min=k_min,
            k_max=k_max,
            min_share=min_share,
            min_count=min_count,
            seed=seed,
            silhouette_sample=silhouette_sample,
            fit_sample=fit_sample,
            minibatch_above=minibatch_above,
            n_init=n_init,
            stability_sample=stability_sample,
        )


def _cluster(
    *,
    matrix: np.ndarray | pd.DataFrame,
    k_min: int,
    k_max: int,
    min_share: float,
    min_count: int,
    seed: int,
    silhouette_sample: int,
    fit_sample: int,
    minibatch_above: int,
    n_init: int,
    stability_sample: int = STABILITY_SAMPLE,
) -> ClusteringResult:
    X = np.ascontiguousarray(np.asarray(matrix, dtype=np.float64))
    if X.ndim != 2 or X.shape[1] == 0:
        raise ClusteringError("the model matrix has no feature columns")
    if not np.isfinite(X).all():
        raise ClusteringError("the model matrix contains missing or infinite values")
    if k_min < 2 or k_max < k_min:
        raise ClusteringError(
            f"segment bounds must satisfy 2 <= k_min <= k_max (got {k_min}, {k_max})"
        )
    n = X.shape[0]
    min_size = minimum_segment_size(n=n, min_share=min_share, min_count=min_count)
    if n < k_min * min_size:
        raise ClusteringError(
            f"{n} customers are too few for {k_min} segments of at least {min_size} customers"
        )
    k_hi = min(k_max, n // min_size)

    rng = np.random.default_rng(seed)
    fit_idx = np.sort(rng.choice(n, fit_sample, replace=False)) if n > fit_sample else None
    sil_idx = (
        np.sort(rng.choice(n, silhouette_sample, replace=False)) if n > silhouette_sample else None
    )
    X_fit = X if fit_idx is None else X[fit_idx]

    fitted: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for k in range(k_min, k_hi + 1):
        model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(X_fit)
        centroids = model.cluster_centers_
        labels = model.labels_.astype(np.int64) if fit_idx is None else _assign(X, centroids)
        fitted[k] = (labels, centroids)

    # one distance matrix serves the silhouette of every candidate
    sil = _Silhouette(X if sil_idx is None else X[sil_idx])
    candidates: list[Candidate] = []
    for k, (labels, _) in fitted.items():
        sizes = np.bincount(labels, minlength=k)
        score = sil.score(labels if sil_idx is None else labels[sil_idx])
        ok = int(sizes.min()) >= min_size
        reason = "" if ok else f"smallest segment has {int(sizes.min())} < {min_size} customers"
        candidates.append(Candidate(k, score, sizes.tolist(), ok, reason))

    warnings: list[str] = []
    merged = False
    if not any(c.accepted for c in candidates):
        # Every k isolates some far-out customers. Set the members of too-small
        # segments aside, refit on the rest, then attach them to the nearest
        # segment: k stays within bounds and nobody is left unassigned.
        for i, c in enumerate(candidates):
            repaired = _refit_without_small(
                X, X_fit, fit_idx, k=c.k, seed=seed, n_init=n_init, min_size=min_size
            )
            if repaired is None:
                continue
            labels, centroids, n_aside = repaired
            fitted[c.k] = (labels, centroids)
            score = sil.score(labels if sil_idx is None else labels[sil_idx])
            sizes = np.bincount(labels, minlength=c.k).tolist()
            reason = f"{c.reason}; refitted with {n_aside} outlying customers set aside"
            candidates[i] = Candidate(c.k, score, sizes, True, reason)
        if any(c.accepted for c in candidates):
            warnings.append(
                f"every k from {k_min} to {k_hi} left a segment under {min_size} customers; "
                "outlying customers were set aside while fitting and then attached to the "
                "nearest segment"
            )

    # stability only decides between candidates silhouette cannot tell apart,
    # so only those are refitted (the others keep stability None: not needed)
    X_sil = X if sil_idx is None else X[sil_idx]
    best_sil = max((_score(c.silhouette) for c in candidates if c.accepted), default=None)
    for i, c in enumerate(candidates):
        if c.accepted and _score(c.silhouette) >= best_sil - SILHOUETTE_TOLERANCE:
            ref = fitted[c.k][0]
            stab = _stability(
                X_fit,
                X_sil,
                ref if sil_idx is None else ref[sil_idx],
                k=c.k,
                seed=seed,
                sample=stability_sample,
            )
            candidates[i] = replace(c, stability=stab)

    accepted = [c for c in candidates if c.accepted]
    if accepted:
        best = choose_k(accepted)
        labels, centroids = fitted[best.k]
        if fit_idx is not None:
            labels, centroids = _refine(
                X, centroids, labels, seed=seed, min_size=min_size, minibatch_above=minibatch_above
            )
    else:
        best = max(candidates, key=lambda c: (_score(c.silhouette), -c.k))
        labels, centroids = _merge_small(X, *fitted[best.k], min_size=min_size)
        merged = True
        warnings.append(
            f"no k from {k_min} to {k_hi} gives segments of at least {min_size} customers; "
            f"small segments of k={best.k} were merged into their nearest neighbours"
        )
        if centroids.shape[0] < k_min:
            warnings.append(f"only {centroids.shape[0]} segments remain, below k_min={k_min}")

    labels, centroids = _canonical(labels, centroids)
    k = centroids.shape[0]
    sizes = np.bincount(labels, minlength=k).tolist()
    final_sil = sil.score(labels if sil_idx is None else labels[sil_idx])
    algorithm = "kmeans"
    if fit_idx is not None:
        algorithm = "minibatch-kmeans" if n > minibatch_above else "kmeans"
    stability = best.stability if best.k == k and not merged else None
    return ClusteringResult(
        labels=labels,
        centroids=centroids,
        k=k,
        stability=stability,
        explanation=explain_choice(candidates=candidates, chosen=best, min_size=min_size)
        if not merged
        else (
            f"We found {k} groups. Every way of splitting left a group smaller than "
            f"{min_size} customers, so the smallest groups were joined to their nearest "
            "neighbours."
        ),
        silhouette=final_sil,
        silhouette_by_k={c.k: c.silhouette for c in candidates},
        sizes=sizes,
        min_size=min_size,
        candidates=candidates,
        algorithm=algorithm,
        seed=seed,
        merged_small_segments=merged,
        warnings=warnings,
    )


def _score(sil: float | None) -> float:
    return -1.0 if sil is None else sil


CHOICE_RULE = (
    f"accepted candidates (every segment at least the minimum size) whose silhouette is "
    f"within {SILHOUETTE_TOLERANCE} of the best; among them the highest stability (adjusted "
    f"Rand index of {STABILITY_ROUNDS} subsample refits; within {STABILITY_TIE} counts as "
    "equal), then the higher silhouette, then fewer segments"
)


def choose_k(accepted: list[Candidate]) -> Candidate:
    """The documented rule (``CHOICE_RULE``) over accepted candidates."""
    best_sil = max(_score(c.silhouette) for c in accepted)
    near = [c for c in accepted if _score(c.silhouette) >= best_sil - SILHOUETTE_TOLERANCE]
    top_stab = max(_score(c.stability) for c in near)
    stable = [c for c in near if _score(c.stability) >= top_stab - STABILITY_TIE]
    return max(stable, key=lambda c: (_score(c.silhouette), -c.k))


def _stability(
    X_fit: np.ndarray,
    X_eval: np.ndarray,
    ref_eval: np.ndarray,
    *,
    k: int,
    seed: int,
    sample: int = STABILITY_SAMPLE,
    rounds: int = STABILITY_ROUNDS,
) -> float | None:
    """Mean adjusted Rand index between the candidate's grouping of ``X_eval``
    and the groupings of k-means refits on random subsamples (80% at most) of
    ``X_fit``. Each refit starts from scratch (one k-means++ start), so an
    answer that depends on the sample or the start scores low."""
    m = X_fit.shape[0]
    size = min(sample, int(0.8 * m))
    if size < 2 * k:
        return None
    rng = np.random.default_rng([seed, k, 7919])
    scores = []
    for r in range(rounds):
        idx = rng.choice(m, size, replace=False)
        model = KMeans(n_clusters=k, n_init=1, random_state=seed + 1 + r).fit(X_fit[idx])
        scores.append(adjusted_rand_score(ref_eval, _assign(X_eval, model.cluster_centers_)))
    return round(float(np.mean(scores)), 4)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def explain_choice(*, candidates: list[Candidate], chosen: Candidate, min_size: int) -> str:
    """Why ``chosen.k`` groups, in plain words (the figures in brackets are for
    those who want them: silhouette = how distinct, stability = how alike the
    groups come out on different samples of customers)."""
    k = chosen.k
    parts = [
        f"We found {k} groups (distinctness {_fmt(chosen.silhouette)}, "
        f"stability {_fmt(chosen.stability)})."
    ]
    if chosen.stability is not None:
        if chosen.stability >= 0.9:
            parts.append("Fitting again on different samples of customers gave the same groups.")
        elif chosen.stability >= STABLE_ENOUGH:
            parts.append(
                "Fitting again on different samples of customers gave mostly the same groups."
            )
        else:
            parts.append(
                "The groups change noticeably from sample to sample: treat them as a rough guide."
            )
    more = [c for c in candidates if c.k > k]
    fewer = [c for c in candidates if c.k < k]
    too_small = [c.k for c in more if not c.accepted]
    # the same line choose_k draws: stability was measured (and decided) only for
    # candidates within the tolerance of the best silhouette; the rest were less distinct
    best_sil = max((_score(c.silhouette) for c in candidates if c.accepted), default=-1.0)
    less_distinct = [
        c
        for c in more
        if c.accepted
        and (c.stability is None or _score(c.silhouette) < best_sil - SILHOUETTE_TOLERANCE)
    ]
    less_stable = [c for c in more if c.accepted and c not in less_distinct]
    if less_distinct:
        best = max(less_distinct, key=lambda c: _score(c.silhouette))
        parts.append(
            f"Splitting into more groups made groups that overlapped more "
            f"(distinctness {_fmt(best.silhouette)} at best, with {best.k})."
        )
    if less_stable:
        worst = min(less_stable, key=lambda c: _score(c.stability))
        parts.append(
            f"Splitting into {', '.join(str(c.k) for c in less_stable)} groups made groups "
            f"that changed from sample to sample (stability down to {_fmt(worst.stability)})."
        )
    if too_small:
        parts.append(
            f"Splitting into {_ranges(too_small)} groups left a group smaller than the minimum "
            f"of {min_size} customers."
        )
    if fewer:
        parts.append(
            "Fewer groups would have put together customers who behave differently."
            if all(_score(c.silhouette) < _score(chosen.silhouette) for c in fewer if c.accepted)
            else "Fewer groups would have been as distinct but less stable."
        )
    return " ".join(parts)


def _ranges(values: list[int]) -> str:
    values = sorted(values)
    if len(values) > 2 and values[-1] - values[0] == len(values) - 1:
        return f"{values[0]} to {values[-1]}"
    return (
        ", ".join(str(v) for v in values[:-1])
        + (" or " if len(values) > 1 else "")
        + str(values[-1])
    )


def _assign(X: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return pairwise_distances_argmin(X, centroids).astype(np.int64)


class _Silhouette:
    """Silhouette coefficient (Rousseeuw 1987) for many labellings of one sample.

    sklearn's ``silhouette_score`` recomputes all pairwise distances on every
    call; here they are computed once (float32, in chunks) and each labelling
    costs one matrix product: mean distance of every point to every cluster.
    """

    def __init__(self, X: np.ndarray, chunk: int = 1024) -> None:
        m = X.shape[0]
        self.dist = np.empty((m, m), dtype=np.float32)
        sq = np.einsum("ij,ij->i", X, X)
        for start in range(0, m, chunk):
            block = X[start : start + chunk]
            d2 = sq[start : start + chunk, None] + sq[None, :] - 2.0 * (block @ X.T)
            self.dist[start : start + chunk] = np.sqrt(np.maximum(d2, 0.0))
        np.fill_diagonal(self.dist, 0.0)

    def score(self, labels: np.ndarray) -> float | None:
        labels = np.asarray(labels)
        uniq, codes = np.unique(labels, return_inverse=True)
        k, m = len(uniq), len(labels)
        if k < 2 or k >= m:
            return None
        onehot = np.zeros((m, k), dtype=np.float32)
        onehot[np.arange(m), codes] = 1.0
        sums = (self.dist @ onehot).astype(np.float64)
        counts = onehot.sum(axis=0).astype(np.float64)
        own = counts[codes]
        with np.errstate(divide="ignore", invalid="ignore"):
            a = sums[np.arange(m), codes] / (own - 1)
            means = sums / counts
        means[np.arange(m), codes] = np.inf
        b = means.min(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (b - a) / np.maximum(a, b)
        # a point alone in its cluster scores 0 by definition
        s = np.where(own > 1, np.nan_to_num(s), 0.0)
        return round(float(s.mean()), 6)


def _refit_without_small(
    X: np.ndarray,
    X_fit: np.ndarray,
    fit_idx: np.ndarray | None,
    *,
    k: int,
    seed: int,
    n_init: int,
    min_size: int,
    rounds: int = 5,
) -> tuple[np.ndarray, np.ndarray, int] | None:
    keep = np.ones(X_fit.shape[0], dtype=bool)
    for _ in range(rounds):
        labels_fit = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(X_fit[keep])
        centroids = labels_fit.cluster_centers_
        labels = _assign(X, centroids)
        sizes = np.bincount(labels, minlength=k)
        if sizes.min() >= min_size:
            return labels, centroids, int((~keep).sum())
        on_fit = labels if fit_idx is None else labels[fit_idx]
        keep &= ~np.isin(on_fit, np.flatnonzero(sizes < min_size))
        if keep.sum() < k * 2:
            return None
    return None


def _refine(
    X: np.ndarray,
    centroids: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int,
    min_size: int,
    minibatch_above: int,
) -> tuple[np.ndarray, np.ndarray]:
    k = centroids.shape[0]
    if X.shape[0] > minibatch_above:
        model = MiniBatchKMeans(
            n_clusters=k,
            init=centroids,
            n_init=1,
            random_state=seed,
            batch_size=4096,
            max_no_improvement=10,
        ).fit(X)
        new_centroids = model.cluster_centers_
        new_labels = _assign(X, new_centroids)
    else:
        model = KMeans(n_clusters=k, init=centroids, n_init=1, random_state=seed).fit(X)
        new_centroids, new_labels = model.cluster_centers_, model.labels_.astype(np.int64)
    # refinement must not undo the size rule the candidate was chosen under
    if np.bincount(new_labels, minlength=k).min() < min_size:
        return labels, centroids
    return new_labels, new_centroids


def _merge_small(
    X: np.ndarray, labels: np.ndarray, centroids: np.ndarray, *, min_size: int
) -> tuple[np.ndarray, np.ndarray]:
    labels = labels.copy()
    alive = list(range(centroids.shape[0]))
    cents = {j: centroids[j] for j in alive}
    while len(alive) > 1:
        sizes = {j: int((labels == j).sum()) for j in alive}
        smallest = min(alive, key=lambda j: (sizes[j], j))
        if sizes[smallest] >= min_size:
            break
        others = [j for j in alive if j != smallest]
        dist = [float(np.sum((cents[j] - cents[smallest]) ** 2)) for j in others]
        target = others[int(np.argmin(dist))]
        labels[labels == smallest] = target
        alive.remove(smallest)
        cents[target] = X[labels == target].mean(axis=0)
    remap = np.full(centroids.shape[0], -1, dtype=np.int64)
    remap[alive] = np.arange(len(alive))
    return remap[labels], np.vstack([cents[j] for j in alive])


def _canonical(labels: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number segments by size (largest first), ties by centroid, so that equal
    clusterings get equal labels whatever order k-means found them in."""
    k = centroids.shape[0]
    sizes = np.bincount(labels, minlength=k)
    order = sorted(range(k), key=lambda j: (-sizes[j], tuple(np.round(centroids[j], 9))))
    remap = np.empty(k, dtype=np.int64)
    remap[order] = np.arange(k)
    return remap[labels], centroids[order]


@dataclass
class DrillDown:
    """Sub-segments of one segment: ``labels`` (0..k-1, largest first) for the
    segment's rows in their order, or ``result`` None and ``reason`` why the
    segment stays whole."""

    parent: int
    rows: np.ndarray  # positions of the segment's rows in the full matrix
    result: ClusteringResult | None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"parent": int(self.parent), "size": int(len(self.rows))}
        if self.result is None:
            out["split"] = False
            out["reason"] = self.reason
        else:
            quality = self.result.to_dict()
            quality.pop("centroids", None)
            out.update(split=True, **quality)
        return out


def drill_down(
    *,
    matrix: np.ndarray | pd.DataFrame,
    labels: np.ndarray,
    min_size: int,
    seed: int = 0,
    k_max: int = DRILL_K_MAX,
    min_stability: float = STABLE_ENOUGH,
    n_threads: int = 1,
) -> list[DrillDown]:
    """Split every segment of ``labels`` the same way as the top level, on its
    own members, with the same minimum size (an absolute number of customers):
    one ``DrillDown`` per segment, in label order. A segment smaller than twice
    the minimum, or whose best split is unstable (stability below
    ``min_stability``), or that no k can split into groups of the minimum size,
    stays whole."""
    X = np.ascontiguousarray(np.asarray(matrix, dtype=np.float64))
    labels = np.asarray(labels)
    out: list[DrillDown] = []
    for parent in range(int(labels.max()) + 1 if len(labels) else 0):
        rows = np.flatnonzero(labels == parent)
        if len(rows) < 2 * min_size:
            out.append(
                DrillDown(parent, rows, None, f"fewer than {2 * min_size} customers to split")
            )
            continue
        try:
            result = cluster_customers(
                matrix=X[rows],
                k_min=2,
                k_max=k_max,
                min_share=0.0,
                min_count=min_size,
                seed=seed,
                fit_sample=DRILL_FIT_SAMPLE,
                silhouette_sample=DRILL_SILHOUETTE_SAMPLE,
                n_threads=n_threads,
            )
        except ClusteringError as exc:
            out.append(DrillDown(parent, rows, None, str(exc)))
            continue
        if result.merged_small_segments or result.k < 2:
            out.append(
                DrillDown(parent, rows, None, f"no split gives groups of {min_size} customers")
            )
        elif result.stability is None or result.stability < min_stability:
            out.append(
                DrillDown(
                    parent,
                    rows,
                    None,
                    f"the best split changes from sample to sample "
                    f"(stability {_fmt(result.stability)} < {min_stability})",
                )
            )
        else:
            out.append(DrillDown(parent, rows, result))
    return out
