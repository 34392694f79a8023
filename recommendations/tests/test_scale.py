"""Recommendations at scale (issue 15): the comparison on a fixed sample of customers
still picks the model the data were planted for, ALS fitted on a sample recovers
the planted pairs for customers outside it, the packed SQL read gives exactly the
lines `History.order_lines()` gives, and the step says in its notes that it
compared on a sample."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from accounts.tenancy import tenant_context
from recommendations import ml
from recommendations.tests.test_ml import noise, planted_pairs


def _sampled(c, i, d, size, seed=0):
    n = int(c.max()) + 1
    sample = ml.customer_sample(n, size, seed=seed)
    assert sample is not None and sample.size == size
    keep, renumbered = ml.restrict(c, sample, n)
    return renumbered, i[keep], d[keep]


def test_customer_sample_is_fixed_and_bounded():
    first = ml.customer_sample(10_000, 500)
    assert first.size == 500 and np.unique(first).size == 500
    assert (np.diff(first) > 0).all() and first.max() < 10_000
    assert (ml.customer_sample(10_000, 500) == first).all()  # same shop, same sample
    assert ml.customer_sample(400, 500) is None  # small shops: everyone
    keep, renumbered = ml.restrict(np.array([5, 1, 5, 7]), np.array([1, 5]), 10)
    assert keep.tolist() == [True, True, True, False]
    assert renumbered.tolist() == [1, 0, 1]


def test_a_sampled_comparison_still_finds_the_planted_pairs():
    c, i, d, n_items = planted_pairs(n_customers=3000, n_pairs=20)
    sc, si, sd = _sampled(c, i, d, 800)
    evaluation = {
        e["kind"]: e
        for e in ml.evaluate_candidates(
            sc, si, sd, n_items=n_items, kinds=("popularity", "item_knn", "ease")
        )
    }
    assert evaluation["popularity"]["customers"] < 800  # scored on the sample only
    for kind in ("item_knn", "ease"):
        assert evaluation[kind]["recall_at_10"] > 0.95
    assert evaluation["popularity"]["recall_at_10"] < 0.5
    assert ml.choose(list(evaluation.values()))["kind"] in ("item_knn", "ease")


def test_a_sampled_comparison_on_noise_still_serves_best_sellers():
    c, i, d, n_items = noise(n_customers=3000)
    sc, si, sd = _sampled(c, i, d, 800)
    evaluation = ml.evaluate_candidates(sc, si, sd, n_items=n_items)
    assert ml.choose(evaluation)["kind"] in ("popularity", "segment_popularity")


@pytest.mark.skipif(not ml.implicit_available(), reason="implicit not installed")
def test_als_fitted_on_a_sample_recovers_the_pairs_for_everyone():
    c, i, d, n_items = planted_pairs(n_customers=1200, n_pairs=20)
    split = ml.holdout_split(c, i, d)
    n = int(c.max()) + 1
    x = ml.interaction_matrix(split.train_customers, split.train_items, n, n_items)
    model = ml.fit_als(x, max_customers=600)
    assert model.params["fitted_on"] == 600
    sample = set(ml.customer_sample(n, 600).tolist())
    outside = [cust for cust in split.truth if cust not in sample]
    assert len(outside) > 200
    items, _ = ml.top_n(model, np.array(outside), 1, exclude_seen=True)
    partner_found = np.mean(
        [int(items[k, 0]) in split.truth[cust].tolist() for k, cust in enumerate(outside)]
    )
    assert partner_found > 0.95  # best-sellers alone: about 1 in 40


@pytest.mark.django_db
def test_the_packed_read_gives_the_lines_history_gives(org):
    import pandas as pd

    from customers.history import History
    from customers.models import Customer
    from predictions.tests.factories import write_world
    from recommendations.reads import purchase_lines
    from recommendations.tests.factories import planted_world

    world = planted_world(n_customers=120)
    # a returned product: a return order is no purchase
    returned = pd.DataFrame(
        [(10_000, 0, np.datetime64(world.as_of, "s") - np.timedelta64(5 * 86400, "s"), True,
          "SKU-5", 1, -10.0)],
        columns=world.lines.columns,
    )  # fmt: skip
    world.lines = pd.concat([world.lines, returned], ignore_index=True)
    pk_of = write_world(org, world)
    with tenant_context(org):
        erased = Customer.objects.get(pk=pk_of[5])
        Customer.objects.filter(pk=erased.pk).update(
            erased_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        )
        for as_of in (world.as_of, world.as_of - dt.timedelta(days=100)):
            history = History(org, as_of)
            lines = history.order_lines()
            bought = lines[(lines["product_id"] >= 0) & (lines["quantity"] > 0)]
            days = (
                bought["ordered_at"].dt.tz_convert(None).to_numpy().astype("datetime64[D]")
            ).astype(np.int64)
            want = sorted(
                zip(bought["customer_id"].tolist(), bought["product_id"].tolist(), days.tolist(),
                    strict=True)
            )  # fmt: skip
            got = sorted(
                zip(*(a.tolist() for a in purchase_lines(History(org, as_of))), strict=True)
            )
            assert got == want
            assert got and all(row[0] != erased.pk for row in got)


@pytest.mark.django_db
def test_the_step_compares_on_a_sample_and_says_so(org, monkeypatch):
    from customers.models import Customer, Product
    from predictions.tests.factories import write_world
    from recommendations import services
    from recommendations.models import CustomerRecommendation
    from recommendations.tests.factories import planted_world

    pk_of = write_world(org, planted_world())
    monkeypatch.setattr(services, "EVALUATION_SAMPLE", 150)
    monkeypatch.setattr(services, "SERVE_BLOCK", 70)  # several blocks
    with tenant_context(org):
        run = services.recommendations_run(organization=org)
        assert any("sample of 150 of your 300 customers" in note for note in run.notes)
        assert run.served not in ("popularity", "segment_popularity")
        assert max(e["customers"] for e in run.evaluation) <= 150
        # every customer got a list, the lone buyers their product's partner first
        assert (
            CustomerRecommendation.objects.filter(run=run).values("customer").distinct().count()
            == 300
        )
        for c in (3, 7, 11, 15):
            lone = Customer.objects.get(pk=pk_of[c])
            sku = Product.objects.get(lines__order__customer=lone).sku
            top = CustomerRecommendation.objects.get(run=run, customer=lone, rank=1)
            assert top.product.sku == f"SKU-{int(sku.split('-')[1]) ^ 1}"
            assert top.reason == f"Bought with Product {sku}"
