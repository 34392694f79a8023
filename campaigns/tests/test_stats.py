"""Results and their statistics, on known counts."""

from __future__ import annotations

import datetime as dt
import random
import secrets

import pytest
from django.utils import timezone

from campaigns import stats
from campaigns.models import Campaign, Delivery
from campaigns.services import sample_size_per_arm
from campaigns.tests import sendworld as w


def test_wilson_interval_matches_the_hand_computed_one():
    # 8 of 40: centre (0.2 + z²/80) / (1 + z²/40), half-width z·sqrt(pq/n + z²/4n²)/(1 + z²/40)
    lo, hi = stats.wilson_interval(8, 40)
    assert lo == pytest.approx(0.10500, abs=5e-5)
    assert hi == pytest.approx(0.34757, abs=5e-5)
    assert stats.wilson_interval(0, 10) == (
        pytest.approx(0.0, abs=1e-12),
        pytest.approx(0.27753, abs=5e-5),
    )
    assert stats.wilson_interval(0, 0) == (0.0, 0.0)


def test_two_proportion_z_test_on_known_counts():
    z, p = stats.two_proportion_z_test(120, 1000, 90, 1000)
    assert z == pytest.approx(2.18827, abs=1e-4)
    assert p == pytest.approx(0.02865, abs=1e-4)
    scipy_stats = pytest.importorskip("scipy.stats")
    assert p == pytest.approx(2 * scipy_stats.norm.sf(abs(z)), rel=1e-9)
    _, p = stats.two_proportion_z_test(105, 1000, 90, 1000)
    assert p > 0.05


def test_the_plan_sample_size_is_the_textbook_one():
    # two-sided 5%, 80% power, 10% vs 15%: 686 per group (pooled-variance formula)
    assert sample_size_per_arm(0.10, 0.15) == 686


def test_no_winner_before_the_planned_sample_size_or_without_significance():
    arms = [("a", 120, 1000), ("b", 90, 1000)]
    assert stats.pick_winner(arms, per_variant=1000)[0] == "a"
    assert stats.pick_winner(arms, per_variant=1001) == (None, None)  # no peeking
    assert stats.pick_winner([("a", 105, 1000), ("b", 90, 1000)], per_variant=1000)[0] is None
    assert stats.pick_winner([("a", 90, 1000), ("b", 120, 1000)], per_variant=500)[0] == "b"


def test_thompson_favours_the_better_arm_on_simulated_responses():
    rng = random.Random(11)
    true_rates = [0.04, 0.12]
    successes, failures = [0, 0], [0, 0]
    sent = [0, 0]
    for batch in range(40):
        for arm in stats.thompson_assign(successes, failures, 100, seed=batch):
            sent[arm] += 1
            if rng.random() < true_rates[arm]:
                successes[arm] += 1
            else:
                failures[arm] += 1
    assert sent[1] > 0.75 * sum(sent)


def test_campaign_stats_on_known_rows(in_org):
    from customers.models import Order

    org = in_org
    people = w.customers(org, 14, "st")
    segs = w.segments(org, {"S": people})
    campaign = w.campaign(org, [segs["S"].pk], status="sent", conversion_window_days=5)
    a = w.variant(org, campaign, "A")
    b = w.variant(org, campaign, "B")
    start = timezone.now() - dt.timedelta(days=10)
    Campaign.objects.filter(pk=campaign.pk).update(
        started_at=start, plan={"per_variant": 4, "baseline_rate": 0.05}
    )
    campaign.refresh_from_db()

    def row(customer, status, variant=None, **fields):
        return Delivery.objects.create(
            organization=org, campaign=campaign, customer=customer, channel="email",
            status=status, token=secrets.token_hex(16), variant=variant,
            segment_id=segs["S"].pk, **fields,
        )  # fmt: skip

    t = start + dt.timedelta(hours=1)
    # A: 5 sent, 4 opened, 3 clicked, 3 converted (30 each); B: 5 sent, 1 converted (bounce)
    for i, c in enumerate(people[:5]):
        row(c, "sent", a, sent_at=t, opened_at=t if i < 4 else None,
            clicked_at=t if i < 3 else None, converted_at=t if i < 3 else None,
            revenue=30 if i < 3 else 0)  # fmt: skip
    for i, c in enumerate(people[5:10]):
        row(c, "bounced" if i == 4 else "sent", b, sent_at=t,
            converted_at=t if i == 0 else None, revenue=20 if i == 0 else 0,
            unsubscribed_at=t if i == 1 else None)  # fmt: skip
    row(people[10], "skipped", skip_reason="no_consent")
    row(people[11], "skipped", skip_reason="frequency_cap")
    for c in people[12:14]:
        row(c, "holdout")
    # one hold-out member orders inside the window (40), one order outside it is ignored
    Order.objects.create(organization=org, customer=people[12], external_id="h1", total=40,
                         ordered_at=start + dt.timedelta(days=2))  # fmt: skip
    Order.objects.create(organization=org, customer=people[13], external_id="h2", total=99,
                         ordered_at=start + dt.timedelta(days=6))  # fmt: skip
    # recipients' orders in the window: 3 x 30 + 20
    for i, (c, total) in enumerate([(people[0], 30), (people[1], 30), (people[2], 30),
                                    (people[5], 20)]):  # fmt: skip
        Order.objects.create(organization=org, customer=c, external_id=f"r{i}", total=total,
                             ordered_at=start + dt.timedelta(days=1))  # fmt: skip

    got = stats.campaign_stats(campaign)
    assert got["audience"] == 14
    assert got["sent"] == 10 and got["delivered"] == 9 and got["bounced"] == 1
    assert got["skipped_no_consent"] == 1 and got["skipped_frequency_cap"] == 1
    assert got["opened"] == 4 and got["clicked"] == 3 and got["converted"] == 4
    assert got["revenue"] == 110.0
    assert got["unsubscribed"] == 1
    assert got["holdout"] == 2
    assert got["holdout_conversion_rate"] == 0.5
    # (110 / 10 - 40 / 2) x 10 recipients
    assert got["incremental_revenue"] == pytest.approx(-90.0)
    va, vb = got["variants"]
    assert (va["id"], va["sent"], va["converted"], va["revenue"]) == (a.pk, 5, 3, 90.0)
    assert va["conversion_rate"] == 0.6
    assert va["interval"] == [pytest.approx(x, abs=1e-6) for x in stats.wilson_interval(3, 5)]
    assert (vb["sent"], vb["converted"]) == (5, 1)
    # 3/5 vs 1/5: p ≈ 0.19, not significant
    assert got["winner"] is None
    assert got["winner_p_value"] == pytest.approx(
        stats.two_proportion_z_test(3, 5, 1, 5)[1], abs=1e-6
    )
    (segment,) = got["by_segment"]
    assert segment["segment_id"] == segs["S"].pk and segment["sent"] == 10
