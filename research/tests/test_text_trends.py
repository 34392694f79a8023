"""Theme trends on planted growth, and segment indexes on planted over-representation."""

from __future__ import annotations

import datetime as dt
import random

from research.tests.generated import dated
from research.text import OTHER, index_sentence, segment_index, theme_trends

AS_OF = dt.date(2026, 11, 30)
IDS = {"delivery": 0, "sizing": 1, "price": 2, "staff": 3, "other": OTHER}


def _trends(windows, **kwargs):
    dates, topics = dated(windows, as_of=AS_OF, seed=4)
    return theme_trends(dates, [IDS[t] for t in topics], AS_OF, **kwargs)


def test_planted_growth_and_decline_are_found_and_noise_is_not():
    out = _trends(
        {
            "delivery": (10, 45),  # grows 4.5×
            "sizing": (40, 12),  # shrinks
            "price": (30, 33),  # steady
            "staff": (2, 5),  # 2.5× but only 7 mentions: noise
            "other": (50, 50),
        }
    )
    assert out[0]["trend"] == "growing"
    assert out[0]["last_30d"] == 45 and out[0]["prev_30d"] == 10
    assert out[0]["change"] == 3.5
    assert out[1]["trend"] == "shrinking"
    assert out[2]["trend"] == "steady"
    assert out[3]["trend"] == "too few"
    assert OTHER not in out


def test_a_theme_that_only_follows_more_feedback_overall_is_steady():
    # Feedback doubled across the board: delivery doubled with it.
    out = _trends({"delivery": (20, 40), "sizing": (30, 60), "other": (50, 100)})
    assert out[0]["trend"] == "steady" and out[1]["trend"] == "steady"


def test_old_and_undated_items_are_left_out():
    dates = [AS_OF, AS_OF - dt.timedelta(days=200), None, "not a date", "2026-11-29"]
    out = theme_trends(dates, [0, 0, 0, 0, 0], AS_OF)
    assert out[0]["last_30d"] == 2 and out[0]["prev_30d"] == 0
    assert out[0]["change"] is None and out[0]["trend"] == "too few"
    assert theme_trends([], [], AS_OF) == {}


def test_planted_over_representation_in_a_segment():
    rng = random.Random(0)
    themes, segments = [], []
    # "fading" mentions delivery in 30% of its feedback, everyone else in 10%.
    for segment, n, delivery_share in (
        ("fading", 200, 0.30),
        ("loyal", 400, 0.10),
        (None, 200, 0.10),
    ):
        for _ in range(n):
            themes.append(0 if rng.random() < delivery_share else rng.choice([1, 2, OTHER]))
            segments.append(segment)
    out = segment_index(themes, segments)
    assert set(out) == {"fading", "loyal"}
    fading = out["fading"][0]
    assert 2.3 <= fading["index"] <= 3.8
    assert fading["notable"]
    assert not out["fading"][1]["notable"]
    assert out["loyal"][0]["index"] < 0.75  # 10% against (60 + 20) / 400 = 20%
    sentence = index_sentence("Fading Small-Basket Shoppers", "Delivery", 3.02)
    assert sentence == "Fading Small-Basket Shoppers mention delivery 3× more often than others."
    assert index_sentence("Loyal", "Sound quality", 0.5) == (
        "Loyal mention sound quality 2× less often than others."
    )


def test_a_small_segment_is_not_notable():
    themes = [0, 0, 1, 1] + [1] * 50 + [0] * 5
    segments = ["tiny"] * 4 + ["rest"] * 55
    assert not segment_index(themes, segments)["tiny"][0]["notable"]
