"""Groups within a segment are named by what sets them apart from their siblings
(issue 9: they came out as the parent's name with a number, "Loyal Regulars 2")."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from segmentation.ml.features import FeatureInfo
from segmentation.ml.personas import sub_segment_names


def _info(*names: str, category: str = "") -> dict[str, FeatureInfo]:
    out = {n: FeatureInfo(n, n.replace("_", " "), "number", "core", "orders") for n in names}
    if category:
        col = f"category:{category}"
        out[col] = FeatureInfo(
            col, f"share on {category}", "share", "category", "category", label=category
        )
    return out


def test_planted_groups_get_distinct_descriptive_names_without_numbers():
    rng = np.random.default_rng(3)
    n = 300
    # three planted groups in one segment: big baskets, frequent buyers, and
    # garden lovers; every other feature is noise around the same centre
    labels = np.repeat([0, 1, 2], n)
    cols = ["frequency", "avg_basket_value", "recency_days", "category:Garden"]
    x = rng.normal(0, 0.3, (3 * n, 4))
    x[labels == 0, 1] += 2.0  # spend per order
    x[labels == 1, 0] += 2.0  # orders
    x[labels == 2, 3] += 2.0  # share of spend on Garden
    matrix = pd.DataFrame(x, columns=cols)
    names = sub_segment_names(
        parent_name="Loyal Regulars",
        matrix=matrix,
        labels=labels,
        info=_info("frequency", "avg_basket_value", "recency_days", category="Garden"),
        taken={"Loyal Regulars", "Lapsed One-Timers"},
    )
    assert len(set(names)) == 3
    for name in names:
        assert name.startswith("Loyal Regulars: ")
        assert not re.search(r"\d+$", name), name
    assert "bigger baskets" in names[0]
    assert "more frequent" in names[1]
    assert "mostly Garden" in names[2]


def test_siblings_sharing_their_strongest_trait_get_a_second_word():
    rng = np.random.default_rng(4)
    n = 200
    labels = np.repeat([0, 1, 2], n)
    x = rng.normal(0, 0.3, (3 * n, 2))
    x[labels == 0, 0] += 2.0  # frequent
    x[labels == 1, 0] -= 1.0  # less frequent, bigger baskets
    x[labels == 1, 1] += 0.8
    x[labels == 2, 0] -= 1.0  # less frequent, smaller baskets
    x[labels == 2, 1] -= 0.8
    names = sub_segment_names(
        parent_name="Occasional Shoppers",
        matrix=pd.DataFrame(x, columns=["frequency", "avg_basket_value"]),
        labels=labels,
        info=_info("frequency", "avg_basket_value"),
    )
    assert len(set(names)) == 3
    assert not any(re.search(r"\d+$", name) for name in names)
    assert "bigger baskets" in names[1] and "smaller baskets" in names[2]


def test_groups_nothing_tells_apart_fall_back_to_numbers():
    x = np.zeros((20, 2))
    names = sub_segment_names(
        parent_name="Shoppers",
        matrix=pd.DataFrame(x, columns=["frequency", "monetary"]),
        labels=np.repeat([0, 1], 10),
        info=_info("frequency", "monetary"),
        taken={"Shoppers"},
    )
    assert len(set(names)) == 2 and all(name.startswith("Shoppers") for name in names)
