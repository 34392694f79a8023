"""RFM scores and groups against hand-worked cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segmentation.ml.rfm import GRID, GROUPS, quintile_scores, rfm_group, rfm_scores


def test_quintiles_of_ten_distinct_values_by_hand():
    # ranks 1..10 -> 1 + floor(5 * (rank - 1) / 10)
    assert quintile_scores(np.arange(10, 0, -1)).tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    # fewer days since the last order is better
    assert quintile_scores([1, 400, 30], higher_is_better=False).tolist() == [4, 1, 2]


def test_tied_values_share_a_score():
    # six one-order customers share the bottom score; the 2-order customer has
    # rank 7 of 10 -> 1 + floor(5 * 6 / 10) = 4
    scores = quintile_scores([1, 1, 1, 1, 1, 1, 2, 3, 4, 5])
    assert scores.tolist() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]


def test_grid_assigns_every_cell_to_one_of_the_eleven_groups():
    cells = [rfm_group(r=r, fm=fm) for r in range(1, 6) for fm in range(1, 6)]
    assert set(cells) == set(GROUPS)
    assert len(GROUPS) == 11
    assert rfm_group(r=5, fm=5) == "Champions"
    assert rfm_group(r=1, fm=1) == "Lost"
    assert rfm_group(r=1, fm=5) == "Can't lose them"
    assert rfm_group(r=5, fm=1) == "New"
    assert len(GRID) == 5 and all(len(row) == 5 for row in GRID)


@pytest.fixture
def ten_customers():
    # hand-made base: customer 1 is the best on all three, customer 10 the worst
    return pd.DataFrame(
        {
            "recency_days": [2, 5, 9, 20, 35, 60, 90, 150, 250, 400],
            "frequency": [25, 14, 9, 6, 4, 3, 2, 2, 1, 1],
            "monetary": [5000, 1800, 900, 600, 350, 200, 150, 80, 40, 12],
        },
        index=pd.Index(range(1, 11), name="customer_id"),
    )


def test_hand_worked_champion_and_lost_customer(ten_customers):
    scores = rfm_scores(features=ten_customers).scores
    best, worst = scores.loc[1], scores.loc[10]
    assert (best.r, best.f, best.m, best.rfm) == (5, 5, 5, "555")
    assert best.group == "Champions"
    # frequency 1 is tied by customers 9 and 10 (ranks 1-2): F = 1
    assert (worst.r, worst.f, worst.m) == (1, 1, 1)
    assert worst.group == "Lost"
    # customer 6: recency rank 5 -> R 3; frequency 3 rank 5 -> F 3; monetary rank 5 -> M 3
    assert (scores.loc[6].r, scores.loc[6].fm, scores.loc[6].group) == (3, 3, "Need attention")


def test_a_former_best_customer_gone_quiet_is_not_to_be_lost(ten_customers):
    frame = ten_customers.copy()
    frame.loc[1, "recency_days"] = 500  # the top spender has not been back for 500 days
    scores = rfm_scores(features=frame).scores
    assert scores.loc[1, "r"] == 1
    assert scores.loc[1, "group"] == "Can't lose them"


def test_summary_is_json_safe_and_covers_every_group(ten_customers):
    import json

    result = rfm_scores(features=ten_customers)
    summary = result.summary()
    assert [row["group"] for row in summary] == list(GROUPS)
    assert sum(row["size"] for row in summary) == 10
    assert sum(row["share_of_revenue"] for row in summary) == pytest.approx(1.0)
    champions = next(row for row in summary if row["group"] == "Champions")
    assert champions["description"]
    json.dumps(result.to_dict())
