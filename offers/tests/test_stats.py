"""An offer's results on planted data: the hold-out comparison recovers a known
effect (incremental revenue and an interval covering it), the interval matches a
hand-computed case, orders outside the window are left out, results by store put
unplaced recipients under "Not placed"."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from accounts.tenancy import tenant_context
from offers.models import OfferRecipient
from offers.redemption import redemptions_refresh
from offers.services import offer_create
from offers.stats import incremental_interval, offer_stats
from offers.tests.factories import make_order, segment_world

START = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)
END = dt.datetime(2025, 5, 31, tzinfo=dt.UTC)


def test_the_interval_by_hand():
    # means 20 and 5, variances 100 and 50: (15 ± 1.959964 × √(100/3 + 50/2)) × 3
    effect, interval = incremental_interval([10, 20, 30], [0, 10])
    assert effect == 45.0
    assert interval == [0.09, 89.91]
    assert incremental_interval([10, 20], []) == (None, None)
    assert incremental_interval([], [10]) == (None, None)
    assert incremental_interval([10, 20], [5]) == (20.0, None)  # one hold-out member


def test_a_planted_effect_is_recovered_on_random_data():
    rng = random.Random(12)
    treated = [max(0.0, rng.gauss(60, 20)) for _ in range(2000)]
    held = [max(0.0, rng.gauss(50, 20)) for _ in range(500)]
    effect, (lo, hi) = incremental_interval(treated, held)
    planted = 10 * 2000
    assert lo < planted < hi
    assert abs(effect - planted) < 0.25 * planted
    # about ±1.96 × √(400/2000 + 400/500) × 2000 wide
    assert 6500 < hi - lo < 9000


@pytest.fixture
def planted(org):
    """200 customers, a quarter kept back. In May 70% of recipients and 40% of the
    hold-out place one order of 40; so the offer adds exactly (28 − 16) × 150 = 1,800.
    Half the buying recipients use their code. Orders outside May are noise."""
    world = segment_world(org, n=200)
    with tenant_context(org):
        offer = offer_create(
            organization=org,
            data={
                "name": "May 10%",
                "kind": "percent",
                "value": 10,
                "segment_ids": [world["segment"].pk],
                "holdout_share": 0.25,
                "starts_at": START,
                "ends_at": END,
            },  # fmt: skip
            sync=True,
        )
        given = list(
            OfferRecipient.objects.filter(offer=offer, holdout=False)
            .select_related("customer")
            .order_by("customer_id")
        )
        held = list(
            OfferRecipient.objects.filter(offer=offer, holdout=True)
            .select_related("customer")
            .order_by("customer_id")
        )
        when = START + dt.timedelta(days=3)
        for i, r in enumerate(given[:105]):
            make_order(org, r.customer, code=r.code if i % 2 == 0 else "", when=when, amount=40)
        for r in held[:20]:
            make_order(org, r.customer, when=when, amount=40)
        # before the offer: big spenders in the hold-out, which must not count
        for r in held[20:]:
            make_order(org, r.customer, when=START - dt.timedelta(days=10), amount=500)
        redemptions_refresh(organization=org)
    return offer


def test_holdout_incrementality_on_planted_data(org, planted):
    with tenant_context(org):
        result = offer_stats(planted)
    assert (result["recipients"], result["holdout"]) == (150, 50)
    assert result["conversion_rate"] == 0.7
    assert result["holdout_conversion_rate"] == 0.4
    assert result["incremental_revenue"] == 1800.0
    lo, hi = result["interval"]
    assert lo < 1800 < hi
    # by hand: √(1600·0.21·150/149 / 150 + 1600·0.24·50/49 / 50) = 3.1768; × 1.96 × 150
    assert abs((hi - lo) / 2 - 933.9) < 1
    assert result["redeemed"] == 53  # every other buyer of 105 used the code
    assert result["revenue"] == 53 * 40.0
    assert result["discount_given"] == 53 * 4.0
    # the offer runs to the end of May; the data so far ends with the last order
    last = START + dt.timedelta(days=3)
    assert result["window"] == {"start": START.isoformat(), "end": last.isoformat()}
    assert result["sample_note"] == ""
    assert set(result) >= {
        "recipients", "holdout", "redeemed", "revenue", "discount_given", "conversion_rate",
        "holdout_conversion_rate", "incremental_revenue", "interval", "by_store", "window",
        "sample_note",
    }  # fmt: skip


def test_results_by_store_and_a_small_holdout_note(org):
    from customers.models import Customer
    from stores.models import Store

    world = segment_world(org, n=20)
    with tenant_context(org):
        store = Store.objects.create(
            organization=org, name="Camden", latitude=51.539, longitude=-0.1426
        )
        placed = [c.pk for c in world["customers"][:12]]
        Customer.objects.filter(pk__in=placed).update(latitude=51.54, longitude=-0.14)
        offer = offer_create(
            organization=org,
            data={
                "name": "Local",
                "kind": "amount",
                "value": 5,
                "segment_ids": [world["segment"].pk],
                "holdout_share": 0.1,
            },  # fmt: skip
            sync=True,
        )
        stores = dict(
            OfferRecipient.objects.filter(offer=offer).values_list("customer_id", "store_id")
        )
        assert {stores[pk] for pk in placed} == {store.pk}
        result = offer_stats(offer)
    rows = {row["store"]: row for row in result["by_store"]}
    assert set(rows) == {"Camden", "Not placed"}
    assert rows["Not placed"]["store_id"] is None
    assert rows["Camden"]["recipients"] + rows["Not placed"]["recipients"] == 18
    assert "too few" in result["sample_note"]
