"""Persona favourites over-index against the whole base (issue 9): a product the
segment buys at three times the base rate is a favourite; a product everyone
buys, or one the segment buys less than average, is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segmentation.ml.features import build_features
from segmentation.ml.personas import write_personas
from segmentation.ml.profiles import build_profiles
from segmentation.tests.ml.test_features import AS_OF


@pytest.fixture(scope="module")
def planted():
    """200 customers: 50 crafters, 150 others. Glue: 30 of 50 crafters (60%) and
    10 of 150 others, 20% of the base, lift 3. Bag: everyone, lift 1. Mug: 10
    crafters (20%) and 60 others, 35% of the base, lift 0.57. Rare ribbon: 3
    crafters only (lift 4, too few buyers)."""
    rng = np.random.default_rng(3)
    rows, order = [], 0

    def buy(customer: int, product: str, day: int, amount: float) -> None:
        nonlocal order
        order += 1
        when = pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(days=day, hours=10)
        rows.append((customer, order, when, 1, amount, "shop", "web", product))

    crafters, others = range(50), range(50, 200)
    for c in range(200):
        buy(c, "bag", int(rng.integers(0, 60)), 20.0)
    for c in [*crafters[:30], *others[:10]]:
        buy(c, "glue", int(rng.integers(0, 60)), 5.0)
    for c in [*crafters[:10], *others[:60]]:
        buy(c, "mug", int(rng.integers(0, 60)), 8.0)
    for c in crafters[40:43]:
        buy(c, "ribbon", int(rng.integers(0, 60)), 3.0)
    lines = pd.DataFrame(
        rows,
        columns=["customer_id", "order_id", "ordered_at", "quantity", "amount", "category",
                 "channel", "product"],
    )  # fmt: skip
    customers = pd.DataFrame(
        {"customer_id": list(range(200)), "signup_at": [pd.Timestamp("2024-01-01", tz="UTC")] * 200}
    )
    fs = build_features(lines=lines, customers=customers, events=None, as_of=AS_OF, sensitive=set())
    labels = pd.Series(
        ["crafters" if c < 50 else "others" for c in fs.raw.index], index=fs.raw.index
    )
    return build_profiles(
        features=fs, labels=labels, product_lines=lines[["customer_id", "product", "amount"]]
    )


def test_a_product_bought_at_three_times_the_base_rate_is_the_favourite(planted):
    crafters = planted.get("crafters")
    favourites = crafters.distinctive_products
    assert [p["name"] for p in favourites] == ["glue"]
    assert favourites[0]["lift"] == pytest.approx(3.0)
    assert favourites[0]["buyers"] == 30
    persona = next(p for p in write_personas(profiles=planted) if p.segment_key == "crafters")
    # the bag everyone buys and the mug they buy less than average are no favourites
    assert persona.favourite_products == ["glue"]


def test_what_everyone_buys_or_few_buy_is_nobodys_favourite(planted):
    others = planted.get("others")
    # the others buy the mug at 1.14x the base rate (60/150 vs 70/200): below 1.2
    assert others.distinctive_products == []
    persona = next(p for p in write_personas(profiles=planted) if p.segment_key == "others")
    assert persona.favourite_products == []
    assert planted.base.distinctive_products == []
    # most bought is still listed, each with its lift, for the segment page
    top = {p["name"]: p["lift"] for p in planted.get("crafters").top_products}
    assert top["bag"] == pytest.approx(1.0) and top["mug"] == pytest.approx(0.2 / 0.35)
