"""Profiles against hand-computed figures; personas that follow the data, with
unique, repeatable names."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from segmentation.ml.clustering import cluster_customers
from segmentation.ml.features import build_features
from segmentation.ml.personas import (
    DeterministicTextGenerator,
    Persona,
    TextGenerator,
    write_personas,
)
from segmentation.ml.profiles import build_profiles
from segmentation.tests.ml.test_features import AS_OF, planted_data


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture
def two_segments():
    """Customers 1 and 2: five 100-orders each, Tuesdays 19:00, garden, via web,
    last on 2024-06-25. Customers 3 and 4: one 50-order, a Saturday morning in
    January, books, in the shop."""
    rows = []
    order = 0
    for customer in (1, 2):
        for day in ("2024-05-28", "2024-06-04", "2024-06-11", "2024-06-18", "2024-06-25"):
            order += 1
            rows.append((customer, order, ts(f"{day} 19:00"), 2, 100.0, "garden", "web", "rake"))
    for customer in (3, 4):
        order += 1
        rows.append((customer, order, ts("2024-01-06 10:00"), 1, 50.0, "books", "shop", "atlas"))
    lines = pd.DataFrame(
        rows,
        columns=["customer_id", "order_id", "ordered_at", "quantity", "amount", "category",
                 "channel", "product"],
    )  # fmt: skip
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4],
            "signup_at": [ts("2024-01-01")] * 4,
            "gender": ["female", "male", "female", "male"],
        }
    )
    fs = build_features(lines=lines, customers=customers, events=None, as_of=AS_OF, sensitive=set())
    labels = np.array(["regulars", "regulars", "once", "once"])
    profiles = build_profiles(
        features=fs,
        labels=labels,
        product_lines=lines[["customer_id", "product", "amount", "ordered_at"]],
        currency="£",
        # four customers: two buyers are enough support for this hand-made case
        favourite_min_buyers=2,
    )
    return fs, profiles


def test_size_and_revenue_shares_by_hand(two_segments):
    _, profiles = two_segments
    regulars = profiles.get("regulars")
    assert regulars.size == 2
    assert regulars.share_of_customers == pytest.approx(0.5)
    assert regulars.revenue == pytest.approx(1000.0)
    assert regulars.share_of_revenue == pytest.approx(1000 / 1100)
    assert regulars.value_index == pytest.approx((1000 / 1100) / 0.5)
    assert [p.key for p in profiles.profiles] == ["once", "regulars"]
    assert profiles.base.size == 4


def test_feature_comparisons_and_sentences_by_hand(two_segments):
    _, profiles = two_segments
    regulars = profiles.get("regulars")
    freq = regulars.feature("frequency")
    assert (freq.segment_mean, freq.base_mean) == (5.0, 3.0)
    assert freq.ratio == pytest.approx(5 / 3)
    assert freq.index == pytest.approx(500 / 3)
    assert freq.sentence == "buys 1.7× more often than average (5.0 orders vs 3.0)"
    # last order 2024-06-25 19:00 -> 5.2 days before the cut-off; the others 176.6
    rec = regulars.feature("recency_days")
    assert rec.sentence == "last ordered 5 days ago on average (base: 91)"
    once = profiles.get("once")
    assert once.feature("frequency").sentence == (
        "buys 3.0× less often than average (1.0 orders vs 3.0)"
    )
    assert once.feature("monetary").sentence == (
        "spends 5.5× less than average in total (£50.00 vs £275)"
    )
    assert once.one_order_share == 1.0
    assert once.silent_over_180_days == 0.0  # 176.6 days
    assert regulars.ordered_last_30_days == 1.0


def test_categories_channels_time_and_products(two_segments):
    _, profiles = two_segments
    regulars = profiles.get("regulars")
    garden = regulars.top_categories[0]
    assert garden["name"] == "garden"
    assert garden["share_of_spend"] == pytest.approx(1.0)
    assert garden["base_share_of_spend"] == pytest.approx(1000 / 1100)
    assert regulars.channels[0]["name"] == "web"
    assert regulars.channels[0]["share_of_orders"] == pytest.approx(1.0)
    assert regulars.favourite_weekday == "Tuesday"
    assert regulars.favourite_hour == 19
    assert profiles.get("once").favourite_weekday == "Saturday"
    assert regulars.top_products[0]["name"] == "rake"
    assert regulars.top_products[0]["buyers_share"] == 1.0
    assert regulars.top_products[0]["index"] == pytest.approx(200.0)
    # bought by every regular and by half the base: index 200, distinctive
    assert [p["name"] for p in regulars.distinctive_products] == ["rake"]
    assert [p["name"] for p in profiles.get("once").distinctive_products] == ["atlas"]
    assert profiles.base.distinctive_products == []


def test_sensitive_attributes_stay_out_of_profiles(two_segments):
    fs, profiles = two_segments
    assert "gender:female" in fs.raw.columns
    shown = {c.feature for p in profiles.profiles for c in p.features}
    assert not shown & set(fs.excluded)
    with_sensitive = build_profiles(features=fs, labels=fs.raw.index % 2, include_sensitive=True)
    assert "gender:female" in {c.feature for c in with_sensitive.profiles[0].features}


def test_profile_dict_is_json_and_chart_friendly(two_segments):
    _, profiles = two_segments
    data = profiles.to_dict()
    json.dumps(data, allow_nan=False)
    chart = data["segments"][1]["chart"]
    row = next(r for r in chart if r["feature"] == "frequency")
    assert row == {
        "feature": "frequency",
        "label": "orders",
        "segment": 5.0,
        "base": 3.0,
        "index": pytest.approx(500 / 3),
    }


def test_persona_from_hand_made_profile(two_segments):
    _, profiles = two_segments
    personas = {p.segment_key: p for p in write_personas(profiles=profiles)}
    regulars = personas["regulars"]
    # garden is 100% of their spend but also 91% of all spend: not distinctive
    assert regulars.name == "Loyal Regulars"
    assert regulars.value == "High: 91% of revenue from 50% of customers"
    assert regulars.value_level == "high"
    assert regulars.risk == "Low: most ordered in the last month (100%)"
    assert regulars.preferred_channel == "web (100% of orders)"
    assert regulars.preferred_time == "Tuesdays, in the evening (around 19:00)"
    assert regulars.favourite_categories[0] == "garden"
    assert regulars.favourite_products == ["rake"]
    assert any(a.startswith("Reward with early access") for a in regulars.suggested_actions)
    once = personas["once"]
    assert once.value_level == "low"
    assert "only once" in once.portrait
    json.dumps([p.to_dict() for p in personas.values()], allow_nan=False)


@pytest.fixture(scope="module")
def planted_profiles():
    lines, customers, events, truth = planted_data(n_customers=3000, seed=4)
    fs = build_features(
        lines=lines, customers=customers, events=events, as_of=AS_OF, sensitive=set()
    )
    result = cluster_customers(matrix=fs.matrix, seed=0)
    truth = truth.loc[fs.raw.index].to_numpy()
    # which planted group each segment mostly holds
    majority = {
        str(k): int(np.bincount(truth[result.labels == k]).argmax()) for k in range(result.k)
    }
    profiles = build_profiles(features=fs, labels=result.labels)
    return profiles, majority


def test_personas_follow_the_planted_groups(planted_profiles):
    profiles, majority = planted_profiles
    by_group = {majority[p.segment_key]: p for p in write_personas(profiles=profiles)}
    vip, lapsed, new, garden = (by_group[i] for i in range(4))
    assert vip.value_level == "high" and vip.risk_level == "low"
    assert vip.name == "Loyal Big-Basket Regulars"
    assert lapsed.risk_level == "high" and lapsed.value_level == "low"
    assert lapsed.name == "Lapsed Home One-Timers"
    assert new.name == "Fashion Newcomers"
    assert any("Welcome series" in a for a in new.suggested_actions)
    assert garden.name == "Loyal Garden Regulars"
    assert garden.preferred_channel.startswith("shop")
    assert any(a.startswith("Win back") or a.startswith("Send a low-cost") for a in
               lapsed.suggested_actions)  # fmt: skip


def test_persona_names_are_unique_and_repeatable(planted_profiles):
    profiles, _ = planted_profiles
    first = [p.to_dict() for p in write_personas(profiles=profiles)]
    second = [p.to_dict() for p in write_personas(profiles=profiles)]
    assert first == second
    names = [p["name"] for p in first]
    assert len(set(names)) == len(names)


def test_look_alike_segments_get_different_names():
    lines, customers, events, truth = planted_data(n_customers=2000, seed=9)
    fs = build_features(
        lines=lines, customers=customers, events=events, as_of=AS_OF, sensitive=set()
    )
    # split every planted group in two at random: pairs of near-identical segments
    halves = np.random.default_rng(0).integers(0, 2, len(fs.raw))
    labels = truth.loc[fs.raw.index].to_numpy() * 2 + halves
    names = [p.name for p in write_personas(profiles=build_profiles(features=fs, labels=labels))]
    assert len(names) == 8
    assert len(set(names)) == 8


def test_a_pluggable_generator_is_used_and_names_are_still_made_unique(two_segments):
    _, profiles = two_segments

    class Fixed:
        name = "fixed"

        def write(self, *, profile, base, taken_names):
            persona = DeterministicTextGenerator().write(
                profile=profile, base=base, taken_names=taken_names
            )
            persona.name = "Everyone"
            persona.generator = self.name
            return persona

    assert isinstance(Fixed(), TextGenerator)
    personas = write_personas(profiles=profiles, generator=Fixed())
    assert all(isinstance(p, Persona) and p.generator == "fixed" for p in personas)
    assert sorted(p.name for p in personas) == ["Everyone", "Everyone 2"]
