"""Segment identity across runs, and the migration table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from segmentation.ml.clustering import cluster_customers
from segmentation.ml.features import build_features
from segmentation.ml.matching import (
    LEFT,
    NEW_CUSTOMERS,
    centroids_from_profiles,
    match_segments,
    migration_flows,
    migration_table,
)
from segmentation.ml.profiles import build_profiles
from segmentation.tests.ml.test_features import AS_OF, planted_data


def members(mapping: dict[int, str]) -> pd.Series:
    return pd.Series(mapping, name="segment").rename_axis("customer_id")


@pytest.fixture(scope="module")
def planted_run():
    lines, customers, events, _ = planted_data(n_customers=3000, seed=21)
    fs = build_features(
        lines=lines, customers=customers, events=events, as_of=AS_OF, sensitive=set()
    )
    return fs, cluster_customers(matrix=fs.matrix, seed=0)


def test_unchanged_data_keeps_every_segment(planted_run):
    fs, run = planted_run
    old = pd.Series([f"seg-{x}" for x in run.labels], index=fs.raw.index)
    again = cluster_customers(matrix=fs.matrix, seed=0)
    new = pd.Series(again.labels, index=fs.raw.index)
    result = match_segments(old=old, new=new)
    assert result.mapping == {k: f"seg-{k}" for k in range(run.k)}
    assert all(m.method == "overlap" and m.jaccard == 1.0 for m in result.matches)


def test_permuted_labels_map_back_to_the_same_groups(planted_run):
    fs, run = planted_run
    old = pd.Series(run.labels, index=fs.raw.index)
    perm = np.random.default_rng(3).permutation(run.k)
    new = pd.Series(perm[run.labels], index=fs.raw.index)
    result = match_segments(old=old, new=new)
    assert result.mapping == {int(perm[k]): k for k in range(run.k)}


def test_a_rerun_with_another_seed_maps_to_the_groups_it_shares(planted_run):
    fs, run = planted_run
    other = cluster_customers(matrix=fs.matrix, seed=99)
    assert adjusted_rand_score(run.labels, other.labels) > 0.95
    old = pd.Series(run.labels, index=fs.raw.index)
    result = match_segments(old=old, new=pd.Series(other.labels, index=fs.raw.index))
    for new_label, old_key in result.mapping.items():
        # the old segment most of the new one's members came from
        came_from = np.bincount(run.labels[other.labels == new_label]).argmax()
        assert old_key == came_from


def test_overlap_by_hand_and_threshold():
    # old A = {1,2,3,4}, B = {5,6,7,8}; new x = {1,2,3,9} (J = 3/5), y = {5,6,10,11,12} (J = 2/7)
    old = members({1: "A", 2: "A", 3: "A", 4: "A", 5: "B", 6: "B", 7: "B", 8: "B"})
    new = members({1: "x", 2: "x", 3: "x", 9: "x", 5: "y", 6: "y", 10: "y", 11: "y", 12: "y"})
    result = match_segments(old=old, new=new)
    assert result.jaccard.loc["x", "A"] == pytest.approx(3 / 5)
    assert result.jaccard.loc["y", "B"] == pytest.approx(2 / 7)
    assert result.mapping == {"x": "A", "y": None}
    json.dumps(result.to_dict())


def test_centroid_fallback_when_the_members_changed():
    old = members({1: "A", 2: "A", 3: "B", 4: "B"})
    # everyone is new: no overlap at all
    new = members({11: 0, 12: 0, 13: 1, 14: 1, 15: 2})
    old_c = pd.DataFrame({"frequency": [10.0, 1.0], "monetary": [900.0, 40.0]}, index=["A", "B"])
    new_c = pd.DataFrame(
        {"frequency": [1.2, 9.0, 4.0], "monetary": [45.0, 880.0, 5000.0]}, index=[0, 1, 2]
    )
    scale = {"frequency": 3.0, "monetary": 300.0}
    result = match_segments(old=old, new=new, old_centroids=old_c, new_centroids=new_c, scale=scale)
    assert result.mapping == {0: "B", 1: "A", 2: None}
    by_label = {m.new_label: m for m in result.matches}
    assert by_label[1].method == "centroid"
    # RMS of (1/3, 20/300) = 0.2404
    assert by_label[1].distance == pytest.approx(np.sqrt(((1 / 3) ** 2 + (20 / 300) ** 2) / 2))


def test_migration_table_by_hand():
    old = members({1: "A", 2: "A", 3: "A", 4: "B", 5: "B"})
    # 1 stays in A, 2 moves to B, 3 leaves, 4 stays in B, 5 moves to A, 6 is new in A
    new = members({1: "A", 2: "B", 4: "B", 5: "A", 6: "A"})
    table = migration_table(old=old, new=new)
    assert list(table.index) == ["A", "B", NEW_CUSTOMERS]
    assert list(table.columns) == ["A", "B", LEFT]
    assert table.to_numpy().tolist() == [[1, 1, 1], [1, 1, 0], [1, 0, 0]]
    flows = migration_flows(table)
    assert {"from": "A", "to": LEFT, "count": 1} in flows
    assert {"from": NEW_CUSTOMERS, "to": "A", "count": 1} in flows
    assert sum(f["count"] for f in flows) == 6
    json.dumps(flows)


def test_same_groups_in_a_new_population_are_matched_by_centroid():
    # two runs over entirely different customers drawn from the same planted
    # groups: no member overlap, so identity must come from the profiles
    runs = []
    for seed, id_offset in ((31, 0), (32, 1_000_000)):
        lines, customers, events, truth = planted_data(n_customers=2000, seed=seed)
        for frame in (lines, customers, events):
            frame["customer_id"] += id_offset
        truth.index += id_offset
        fs = build_features(
            lines=lines, customers=customers, events=events, as_of=AS_OF, sensitive=set()
        )
        labels = truth.loc[fs.raw.index].to_numpy()
        profiles = build_profiles(features=fs, labels=labels)
        runs.append((pd.Series(labels, index=fs.raw.index), profiles))
    (old, old_profiles), (new, new_profiles) = runs
    old_c, _ = centroids_from_profiles(json.loads(json.dumps(old_profiles.to_dict())))
    new_c, scale = centroids_from_profiles(new_profiles)
    result = match_segments(
        old=old.astype(str), new=new.astype(str), old_centroids=old_c, new_centroids=new_c,
        scale=scale,
    )  # fmt: skip
    assert result.mapping == {"0": "0", "1": "1", "2": "2", "3": "3"}
    assert all(m.method == "centroid" for m in result.matches)
