"""Choice of k by distinctness and stability, its plain explanation, and one
level of drill-down on planted nested groups (issue 9: CDNOW gave 2 groups)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score

from segmentation.ml.clustering import (
    STABLE_ENOUGH,
    Candidate,
    choose_k,
    cluster_customers,
    drill_down,
)


def nested(*, seed: int = 0, spread: float = 0.6):
    """Two coarse groups far apart; the first holds 3 planted subgroups, the
    second 2 (4 features, sizes uneven)."""
    rng = np.random.default_rng(seed)
    centres, sizes, coarse = [], [], []
    for g, (offset, subs) in enumerate([(0.0, 3), (25.0, 2)]):
        for j in range(subs):
            angle = 2 * np.pi * j / subs
            centres.append([offset, 4 * np.cos(angle), 4 * np.sin(angle), 0.0])
            sizes.append(int(rng.integers(400, 900)))
            coarse.append(g)
    X = np.vstack([rng.normal(c, spread, size=(s, 4)) for c, s in zip(centres, sizes, strict=True)])
    fine = np.repeat(np.arange(len(sizes)), sizes)
    return X, np.array(coarse)[fine], fine


def test_top_level_finds_the_coarse_groups_and_drill_down_the_planted_subgroups():
    X, coarse, fine = nested(seed=3)
    top = cluster_customers(matrix=X, seed=0)
    assert top.k == 2
    assert adjusted_rand_score(coarse, top.labels) > 0.99

    drills = drill_down(matrix=X, labels=top.labels, min_size=top.min_size, seed=0)
    assert [d.parent for d in drills] == [0, 1]
    assert all(d.result is not None for d in drills)
    combined = np.empty(len(X), dtype=np.int64)
    n_groups = 0
    for d in drills:
        combined[d.rows] = n_groups + d.result.labels
        n_groups += d.result.k
        # the same minimum size as the top level, and stable groups
        assert min(d.result.sizes) >= top.min_size
        assert d.result.stability >= STABLE_ENOUGH
    assert n_groups == 5
    assert adjusted_rand_score(fine, combined) > 0.95


def test_a_segment_without_inner_structure_is_left_whole():
    # one round cloud: any split is an accident of the sample
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0, 1, size=(3000, 4)), rng.normal(30, 1, size=(3000, 4))])
    top = cluster_customers(matrix=X, seed=0)
    assert top.k == 2
    drills = drill_down(matrix=X, labels=top.labels, min_size=top.min_size, seed=0)
    assert all(d.result is None for d in drills)
    assert all("sample to sample" in d.reason for d in drills)


def test_a_segment_below_twice_the_minimum_is_not_split():
    X, coarse, _ = nested(seed=4)
    drills = drill_down(matrix=X, labels=coarse, min_size=len(X))
    assert all(d.result is None for d in drills)
    assert "to split" in drills[0].reason


def test_stability_decides_between_equally_distinct_candidates_only():
    a = Candidate(2, 0.50, [50, 50], True, stability=0.70)
    b = Candidate(3, 0.49, [40, 30, 30], True, stability=0.95)
    c = Candidate(4, 0.30, [25] * 4, True, stability=1.0)
    # 3 is as distinct as 2 (within the tolerance) and more stable; 4 is less distinct
    assert choose_k([a, b, c]).k == 3
    # equal stability: the more distinct wins
    assert choose_k([a, Candidate(3, 0.49, [40, 30, 30], True, stability=0.71)]).k == 2


def test_the_choice_is_explained_in_plain_words_and_stored_with_the_figures():
    X, coarse, _ = nested(seed=5)
    result = cluster_customers(matrix=X, seed=0, k_max=6)
    quality = result.to_dict()
    text = quality["explanation"]
    assert text.startswith("We found 2 groups")
    assert "overlapped more" in text  # why not more groups
    assert "same groups" in text  # how stable they are
    assert set(quality["stability_by_k"]) == {str(k) for k in range(2, 7)}
    assert 0.9 <= quality["stability"] <= 1.0
    assert "stability" in quality["choice_rule"]


def test_stability_is_reproducible():
    X, _, _ = nested(seed=6)
    a = cluster_customers(matrix=X, seed=2).to_dict()
    b = cluster_customers(matrix=X, seed=2).to_dict()
    assert a["stability_by_k"] == b["stability_by_k"]
    assert a["explanation"] == b["explanation"]
