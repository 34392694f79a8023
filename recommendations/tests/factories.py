"""Test data for recommendations: planted co-purchase worlds written through the
predictions' fast writer, and `build_world` for the tenant isolation sweep."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from accounts.tenancy import tenant_context


def planted_world(*, n_customers: int = 300, n_pairs: int = 12, as_of=dt.date(2024, 6, 30), seed=0):
    """Products come in pairs (SKU-2k, SKU-2k+1). Half the customers buy a pair in one
    order; most others buy one product of a pair and, on a later day, its partner;
    every fourth buys one product only.
    Popularity is flat, so only the co-purchase pattern tells what comes next."""
    from predictions.tests.factories import World

    rng = np.random.default_rng(seed)
    end = np.datetime64(as_of, "s")
    rows = []
    order = 0
    for c in range(n_customers):
        pair = int(rng.integers(n_pairs))
        first, second = 2 * pair, 2 * pair + 1
        if rng.random() < 0.5:
            first, second = second, first
        if c % 4 == 3:  # bought one product only: its partner is what to recommend
            when = end - np.timedelta64(int(rng.integers(30, 300)) * 86400, "s")
            rows.append((order, c, when, False, f"SKU-{first}", 1, 10.0))
            order += 1
        elif c % 2 == 0:
            when = end - np.timedelta64(int(rng.integers(30, 300)) * 86400, "s")
            rows += [(order, c, when, False, f"SKU-{first}", 1, 10.0),
                     (order, c, when, False, f"SKU-{second}", 1, 10.0)]  # fmt: skip
            order += 1
        else:
            day1 = int(rng.integers(60, 300))
            day2 = int(rng.integers(1, day1 - 10))
            rows.append((order, c, end - np.timedelta64(day1 * 86400, "s"), False,
                         f"SKU-{first}", 1, 10.0))  # fmt: skip
            rows.append((order + 1, c, end - np.timedelta64(day2 * 86400, "s"), False,
                         f"SKU-{second}", 1, 10.0))  # fmt: skip
            order += 2
    lines = pd.DataFrame(
        rows, columns=["order", "customer", "ordered_at", "is_return", "sku", "quantity", "amount"]
    )
    return World(n_customers=n_customers, lines=lines, as_of=as_of)


def build_world(organization) -> None:
    """One of every recommendations tenant model for `organization` (isolation sweep)."""
    from customers.models import Customer, Product
    from recommendations.models import (
        CustomerRecommendation,
        ProductRelation,
        RecommendationRun,
        RecommendationSettings,
    )

    with tenant_context(organization):
        RecommendationSettings.objects.get_or_create(
            organization=organization, defaults={"repeats": "never"}
        )
        customer = Customer.objects.first() or Customer.objects.create(
            organization=organization, external_id="rec-world-1", email="rec-world@example.com"
        )
        product = Product.objects.first() or Product.objects.create(
            organization=organization, sku="REC-WORLD-1", name="World product"
        )
        other = Product.objects.exclude(pk=product.pk).first() or Product.objects.create(
            organization=organization, sku="REC-WORLD-2", name="Other world product"
        )
        run = RecommendationRun.objects.create(
            organization=organization,
            cutoff=dt.date(2024, 6, 30),
            served="item_knn",
            evaluation=[
                {
                    "kind": "popularity",
                    "precision_at_10": 0.05,
                    "recall_at_10": 0.1,
                    "map_at_10": 0.03,
                    "coverage": 0.01,
                    "customers": 10,
                    "repeats": True,
                },
                {
                    "kind": "item_knn",
                    "precision_at_10": 0.08,
                    "recall_at_10": 0.2,
                    "map_at_10": 0.05,
                    "coverage": 0.3,
                    "customers": 10,
                    "repeats": True,
                },
            ],  # fmt: skip
            popular={"overall": [other.pk], "segments": {}, "categories": {}},
            n_customers=1,
            n_products=2,
            is_live=not RecommendationRun.objects.filter(is_live=True).exists(),
        )
        CustomerRecommendation.objects.create(
            organization=organization, run=run, customer=customer, product=other, rank=1,
            score=0.5, reason=f"Bought with {product.name}",
        )  # fmt: skip
        ProductRelation.objects.create(
            organization=organization, run=run, product=product, related=other, rank=1,
            score=0.5, buyers=1,
        )  # fmt: skip
