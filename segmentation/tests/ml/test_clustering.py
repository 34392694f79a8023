"""Clustering recovers planted groups, respects bounds and the minimum size, and
is reproducible; the 2-D map of the clusters."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from segmentation.ml.clustering import ClusteringError, cluster_customers
from segmentation.ml.features import build_features
from segmentation.ml.projection import project_2d
from segmentation.tests.ml.test_features import AS_OF, planted_data


@pytest.fixture(scope="module")
def planted():
    lines, customers, events, truth = planted_data(n_customers=4000, seed=11)
    fs = build_features(
        lines=lines, customers=customers, events=events, as_of=AS_OF, sensitive=set()
    )
    return fs, truth.loc[fs.raw.index].to_numpy()


def blobs(sizes, centres, *, seed=0, spread=0.5):
    rng = np.random.default_rng(seed)
    X = np.vstack(
        [rng.normal(c, spread, size=(s, len(c))) for s, c in zip(sizes, centres, strict=True)]
    )
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return X, truth


def test_planted_customer_groups_are_recovered_from_transactions(planted):
    fs, truth = planted
    result = cluster_customers(matrix=fs.matrix, seed=0)
    assert result.k == 4
    assert adjusted_rand_score(truth, result.labels) > 0.9
    assert len(result.labels) == len(fs.raw)
    assert result.silhouette_by_k[4] == max(c.silhouette for c in result.candidates if c.accepted)


def test_large_base_uses_a_sample_then_minibatch_and_still_recovers_groups():
    lines, customers, events, truth = planted_data(n_customers=30_000, seed=5)
    fs = build_features(
        lines=lines, customers=customers, events=events, as_of=AS_OF, sensitive=set()
    )
    result = cluster_customers(
        matrix=fs.matrix, seed=0, fit_sample=5_000, minibatch_above=20_000, silhouette_sample=2_000
    )
    assert result.algorithm == "minibatch-kmeans"
    assert adjusted_rand_score(truth.loc[fs.raw.index], result.labels) > 0.9


@pytest.mark.parametrize(("k_min", "k_max"), [(2, 3), (5, 6), (3, 3)])
def test_k_stays_within_the_owner_bounds(planted, k_min, k_max):
    fs, _ = planted
    result = cluster_customers(matrix=fs.matrix, k_min=k_min, k_max=k_max, min_share=0.01)
    assert k_min <= result.k <= k_max
    assert set(result.silhouette_by_k) <= set(range(k_min, k_max + 1))
    assert sorted(set(result.labels.tolist())) == list(range(result.k))


def test_a_better_scoring_k_with_a_tiny_segment_is_rejected():
    # three groups and a 1.5% group near them: k=4 has the best silhouette but
    # hands the owner a 30-customer segment
    X, _ = blobs([700, 650, 600, 30], [(0, 0), (6, 0), (0, 6), (3, 12)], seed=1)
    result = cluster_customers(matrix=X, min_share=0.02, min_count=10, k_max=6)
    assert result.min_size == 40
    by_k = {c.k: c for c in result.candidates}
    assert by_k[4].silhouette > by_k[3].silhouette
    assert not by_k[4].accepted and "30 < 40" in by_k[4].reason
    assert result.k == 3
    assert min(result.sizes) >= 40
    assert sum(result.sizes) == len(X)


def test_outliers_every_k_isolates_are_attached_to_the_nearest_segment():
    X, truth = blobs([500, 500], [(0, 0), (5, 0)], seed=2, spread=0.3)
    X = np.vstack([X, [[200, 200], [-200, 200], [200, -200]]])
    result = cluster_customers(matrix=X, k_min=2, k_max=4, min_count=20, min_share=0.0)
    assert result.warnings and "set aside" in result.warnings[0]
    assert result.k == 2
    assert min(result.sizes) >= 20
    assert adjusted_rand_score(truth, result.labels[:1000]) == 1.0


def test_same_seed_gives_identical_labels(planted):
    fs, _ = planted
    a = cluster_customers(matrix=fs.matrix, seed=7)
    b = cluster_customers(matrix=fs.matrix.copy(), seed=7)
    assert np.array_equal(a.labels, b.labels)
    assert a.to_dict() == b.to_dict()


def test_labels_are_numbered_largest_first():
    X, _ = blobs([300, 900, 600], [(0, 0), (8, 0), (0, 8)], seed=3)
    result = cluster_customers(matrix=X, k_max=3)
    assert result.sizes == sorted(result.sizes, reverse=True)
    assert result.sizes == [900, 600, 300]


def test_too_few_customers_is_a_clear_error():
    X, _ = blobs([10, 9], [(0, 0), (5, 5)])
    with pytest.raises(ClusteringError, match="too few"):
        cluster_customers(matrix=X, min_count=10)


# --- 2-D map (projection.py) --------------------------------------------------
def test_map_axes_follow_the_directions_of_largest_spread():
    rng = np.random.default_rng(0)
    # spread 3 along (1, 1)/sqrt(2), spread 1 across it, plus a constant column
    u, v = rng.normal(0, 3, 5000), rng.normal(0, 1, 5000)
    X = np.column_stack([(u - v) / np.sqrt(2), (u + v) / np.sqrt(2), np.zeros(5000)])
    frame = pd.DataFrame(X, columns=["a", "b", "c"], index=np.arange(100, 5100))
    proj = project_2d(matrix=frame, labels=np.zeros(5000, dtype=int), max_points=5000)
    assert proj.explained_variance_ratio[0] == pytest.approx(0.9, abs=0.01)
    assert proj.explained_variance_ratio[1] == pytest.approx(0.1, abs=0.01)
    # the first coordinate is the position along (1, 1)/sqrt(2)
    assert np.corrcoef(proj.x, u)[0, 1] > 0.999
    assert {a["feature"] for a in proj.axes[0][:2]} == {"a", "b"}
    assert proj.customer_id[0] == 100


def test_map_sample_is_bounded_seeded_and_keeps_small_segments_visible():
    X, labels = blobs([9000, 900, 30], [(0, 0), (5, 0), (0, 5)], seed=4)
    proj = project_2d(matrix=X, labels=labels, max_points=2000, seed=1)
    assert len(proj.x) <= 2000
    counts = np.bincount(proj.label, minlength=3)
    assert counts[2] == 20  # 30 members would get 6 points in proportion
    assert abs(counts[0] / counts.sum() - 9000 / 9930) < 0.02
    again = project_2d(matrix=X, labels=labels, max_points=2000, seed=1)
    assert np.array_equal(proj.row, again.row) and np.allclose(proj.x, again.x)
    data = proj.to_dict()
    assert len(data["x"]) == len(data["label"]) == len(proj.x)
    json.dumps(data)


def test_explanation_tells_less_distinct_from_unstable_candidates():
    """The demo's choice (k=2, stable) was explained as 'splitting into 3, 4, 5, 6, 7, 8
    groups made groups that changed from sample to sample (stability down to n/a)':
    4, 5, 7 and 8 were never unstable, only less distinct, and had no stability."""
    from segmentation.ml.clustering import Candidate, explain_choice

    def cand(k, sil, stab=None):
        return Candidate(k=k, silhouette=sil, sizes=[50] * k, accepted=True, stability=stab)

    candidates = [
        cand(2, 0.2139, 0.93),
        cand(3, 0.2347, 0.41),
        cand(4, 0.1925),
        cand(5, 0.2013),
        cand(6, 0.2123, 0.77),
        cand(7, 0.1899),
        cand(8, 0.1940),
    ]
    text = explain_choice(candidates=candidates, chosen=candidates[0], min_size=10)
    assert "n/a" not in text
    assert "Splitting into 3, 6 groups made groups that changed from sample to sample" in text
    assert "stability down to 0.41" in text
    assert "overlapped more" in text
