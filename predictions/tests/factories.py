"""Test data for predictions: customers whose orders follow a BG/NBD process with
known parameters (and Gamma-Gamma spend), written straight into the database with
multi-row INSERTs (tests and `bench/bench_predictions.py`), and `build_world` for
the tenant isolation sweep."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from accounts.tenancy import tenant_context
from core.tests.bulk import insert_rows
from predictions.ml.clv import simulate_bgnbd

# Per-day parameters: about one order a month while active for the typical buyer.
TRUE_BGNBD = {"r": 0.5, "alpha": 20.0, "a": 0.8, "b": 2.5}
TRUE_SPEND = {"p": 6.0, "q": 3.7, "gamma": 15.0}


@dataclass
class World:
    """Generated orders: one row per order line, with the order's customer (or -1 for
    a guest), time, return flag, sku, quantity and amount."""

    n_customers: int
    lines: pd.DataFrame  # order, customer, ordered_at, is_return, sku, quantity, amount
    as_of: dt.date


def simulate_world(
    *,
    n_customers: int,
    as_of: dt.date,
    history_days: int = 730,
    bgnbd: dict | None = None,
    spend: dict | None = None,
    lines_per_order: float = 1.0,
    n_products: int = 50,
    return_share: float = 0.0,
    guest_share: float = 0.0,
    seed: int = 0,
) -> World:
    """Customers arriving evenly over `history_days` before `as_of`, each buying as a
    BG/NBD process with `bgnbd` (per day) and spending as Gamma-Gamma with `spend`.

    Each purchase is one order on its own day (so the fitted model sees exactly the
    simulated process); `lines_per_order` > 1 splits orders into 1 + Poisson lines
    whose amounts add up to the order's value. `return_share` adds that share of
    extra return orders and `guest_share` extra guest orders, neither of which may
    change the customer models.
    """
    bg = {**TRUE_BGNBD, **(bgnbd or {})}
    sp = {**TRUE_SPEND, **(spend or {})}
    rng = np.random.default_rng(seed)
    end = np.datetime64(as_of, "D").astype(np.int64)
    birth = end - rng.integers(0, history_days, size=n_customers)
    big_t = (end - birth).astype(np.float64)
    x, recency, _ = simulate_bgnbd(n=n_customers, T=big_t, rng=rng, **bg)

    # purchase times: the first at birth, the last repeat at t_x, the others uniform
    # before it (given the Poisson process); on distinct days as in the model
    customers, days = [], []
    for i in range(n_customers):
        customers.append(i)
        days.append(birth[i])
        if x[i] > 0:
            last = int(np.floor(recency[i]))
            span = max(last - 1, 0)
            k = int(x[i]) - 1
            others = 1 + rng.choice(span, size=min(k, span), replace=False) if span and k else []
            for d in sorted({*(int(o) for o in others), max(last, 1)}):
                customers.append(i)
                days.append(birth[i] + min(d, int(big_t[i])))
    customers_a = np.asarray(customers, dtype=np.int64)
    days_a = np.asarray(days, dtype=np.int64)
    nu = rng.gamma(sp["q"], 1.0 / sp["gamma"], size=n_customers)
    values = np.round(rng.gamma(sp["p"], 1.0 / nu[customers_a]), 2) + 0.01
    is_return = np.zeros(customers_a.size, dtype=bool)

    extra = []
    n_returns = int(round(return_share * customers_a.size))
    if n_returns:
        pick = rng.choice(customers_a.size, size=n_returns, replace=False)
        extra.append((customers_a[pick], days_a[pick], -values[pick] / 2, np.ones(n_returns, bool)))
    n_guests = int(round(guest_share * customers_a.size))
    if n_guests:
        extra.append(
            (
                np.full(n_guests, -1),
                end - rng.integers(0, history_days, size=n_guests),
                np.round(rng.gamma(2.0, 10.0, size=n_guests), 2) + 0.01,
                np.zeros(n_guests, bool),
            )
        )
    for c, d, v, r in extra:
        customers_a = np.concatenate([customers_a, c])
        days_a = np.concatenate([days_a, d])
        values = np.concatenate([values, v])
        is_return = np.concatenate([is_return, r])

    n_orders = customers_a.size
    n_lines = 1 + (rng.poisson(lines_per_order - 1, size=n_orders) if lines_per_order > 1 else 0)
    n_lines = np.broadcast_to(n_lines, (n_orders,))
    order_of_line = np.repeat(np.arange(n_orders), n_lines)
    weights = rng.random(order_of_line.size) + 0.1
    share = weights / np.bincount(order_of_line, weights=weights)[order_of_line]
    amount = np.round(values[order_of_line] * share, 2)
    # popular products sell more (Zipf-like), so demand has both busy and quiet items
    popularity = 1.0 / np.arange(1, n_products + 1)
    sku_idx = rng.choice(n_products, size=order_of_line.size, p=popularity / popularity.sum())
    quantity = np.where(is_return[order_of_line], -1, 1 + rng.poisson(0.5, order_of_line.size))
    seconds = rng.integers(0, 86_400, size=n_orders)
    ordered_at = days_a.astype("datetime64[D]").astype("datetime64[s]") + seconds.astype(
        "timedelta64[s]"
    )
    lines = pd.DataFrame(
        {
            "order": order_of_line,
            "customer": customers_a[order_of_line],
            "ordered_at": ordered_at[order_of_line],
            "is_return": is_return[order_of_line],
            "sku": np.char.add("SKU-", sku_idx.astype(str)).astype(object),
            "quantity": quantity,
            "amount": amount,
        }
    )
    return World(n_customers=n_customers, lines=lines, as_of=as_of)


def write_world(organization, world: World, *, prefix: str = "") -> dict[int, int]:
    """Write a simulated world as Customer, Product, Order and OrderLine rows, with the
    customers' order statistics as the importer keeps them. Returns {index: pk}."""
    from customers.models import Customer, Order, OrderLine, Product

    org_id = organization.pk
    ops = connection.ops
    now = ops.adapt_datetimefield_value(timezone.now())
    lines = world.lines

    def stamp(values: np.ndarray) -> list:
        seconds = values.astype("datetime64[s]").astype(np.int64)
        return [
            ops.adapt_datetimefield_value(dt.datetime.fromtimestamp(int(s), tz=dt.UTC))
            for s in seconds
        ]

    orders = lines.groupby("order", sort=True).agg(
        customer=("customer", "first"),
        ordered_at=("ordered_at", "first"),
        is_return=("is_return", "first"),
        total=("amount", "sum"),
        n=("amount", "size"),
    )
    purchases = orders[(~orders["is_return"]) & (orders["customer"] >= 0)]
    by_customer = purchases.groupby("customer")
    first = by_customer["ordered_at"].min()
    last = by_customer["ordered_at"].max()
    count = by_customer.size()
    spent = orders[orders["customer"] >= 0].groupby("customer")["total"].sum()

    with transaction.atomic(), tenant_context(organization):
        first_s = dict(zip(first.index, stamp(first.to_numpy()), strict=True))
        last_s = dict(zip(last.index, stamp(last.to_numpy()), strict=True))
        customer_rows = [
            (
                org_id, f"{prefix}C{i:07d}", f"c{i}@example.com", "", "Test", f"Customer {i}",
                "", "", "", "United Kingdom", "", i % 3 == 0, False, "", "", "{}",
                first_s.get(i), last_s.get(i), int(count.get(i, 0)),
                float(round(spent.get(i, 0.0), 2)), now, now,
            )
            for i in range(world.n_customers)
        ]  # fmt: skip
        insert_rows(
            Customer,
            [
                "organization_id", "external_id", "email", "phone", "first_name", "last_name",
                "gender", "city", "region", "country", "postal_code", "accepts_email",
                "accepts_sms", "email_consent_source", "sms_consent_source", "attributes",
                "first_order_at", "last_order_at", "orders_count", "total_spent", "created_at",
                "updated_at",
            ],
            customer_rows,
        )  # fmt: skip
        pk_by_external = dict(
            Customer.objects.filter(external_id__startswith=f"{prefix}C").values_list(
                "external_id", "pk"
            )
        )
        pk_of = {i: pk_by_external[f"{prefix}C{i:07d}"] for i in range(world.n_customers)}

        skus = sorted(lines["sku"].unique())
        insert_rows(
            Product,
            [
                "organization_id", "sku", "name", "category", "price", "url", "image_url",
                "merchandise", "merchandise_source", "hidden", "attributes", "created_at",
                "updated_at",
            ],
            [
                (
                    org_id, f"{prefix}{s}", f"Product {s}", "Gifts", 9.99, "", "", True,
                    "detected", False, "{}", now, now,
                )
                for s in skus
            ],
        )  # fmt: skip
        product_pk = dict(
            Product.objects.filter(sku__in=[f"{prefix}{s}" for s in skus]).values_list("sku", "pk")
        )

        order_rows = [
            (
                org_id, f"{prefix}O{o:09d}", None if c < 0 else pk_of[int(c)], when, "", "web",
                "", float(round(t, 2)), bool(r), "{}", "", int(n), now, now,
            )
            for o, c, when, r, t, n in zip(
                orders.index, orders["customer"].to_numpy(), stamp(orders["ordered_at"].to_numpy()),
                orders["is_return"].to_numpy(), orders["total"].to_numpy(), orders["n"].to_numpy(),
                strict=True,
            )
        ]  # fmt: skip
        insert_rows(
            Order,
            [
                "organization_id", "external_id", "customer_id", "ordered_at", "currency",
                "channel", "location", "total", "is_return", "properties", "content_hash",
                "lines_count", "created_at", "updated_at",
            ],
            order_rows,
        )  # fmt: skip
        order_pk = dict(
            Order.objects.filter(external_id__startswith=f"{prefix}O").values_list(
                "external_id", "pk"
            )
        )
        qty = lines["quantity"].to_numpy()
        amount = lines["amount"].to_numpy()
        line_rows = [
            (
                org_id, order_pk[f"{prefix}O{int(o):09d}"], product_pk[f"{prefix}{s}"],
                f"{prefix}{s}", f"Product {s}", "Gifts", int(q),
                float(round(a / q, 4)) if q else None, float(a), i,
            )
            for i, (o, s, q, a) in enumerate(
                zip(lines["order"].to_numpy(), lines["sku"].to_numpy(), qty, amount, strict=True)
            )
        ]  # fmt: skip
        insert_rows(
            OrderLine,
            [
                "organization_id", "order_id", "product_id", "sku", "product_name", "category",
                "quantity", "unit_price", "amount", "position",
            ],
            line_rows,
        )  # fmt: skip
    return pk_of


def build_world(organization) -> None:
    """One of every predictions tenant model for `organization` (isolation sweep)."""
    from customers.models import Customer, Product
    from predictions.models import (
        CustomerPrediction,
        PredictionRun,
        PredictionSettings,
        ProductForecast,
    )

    with tenant_context(organization):
        customer = Customer.objects.first() or Customer.objects.create(
            organization=organization,
            external_id="pred-world-1",
            email="pred-world@example.com",
            orders_count=2,
            total_spent=100,
        )
        product = Product.objects.first() or Product.objects.create(
            organization=organization, sku="PRED-WORLD", name="World product"
        )
        PredictionSettings.objects.get_or_create(organization=organization)
        run = PredictionRun.objects.create(
            organization=organization,
            as_of=dt.date(2024, 6, 30),
            method="bgnbd+gamma_gamma",
            params={"r": 0.5, "alpha": 20.0, "a": 0.8, "b": 2.5, "log_likelihood": -1.0},
            spend_params={"p": 6.0, "q": 3.7, "gamma": 15.0},
            data_check={"ok": True, "missing": [], "message": "ok"},
            n_customers=1,
            n_products=1,
            is_live=not PredictionRun.objects.filter(is_live=True).exists(),
        )
        CustomerPrediction.objects.create(
            organization=organization,
            run=run,
            customer=customer,
            p_alive=0.9,
            expected_orders_30d=0.5,
            expected_orders_90d=1.2,
            expected_orders_365d=4.0,
            expected_next_order_at=dt.date(2024, 7, 20),
            predicted_clv_365d=120.0,
            expected_order_value=30.0,
            churn_probability=0.3,
            churn_risk="low",
            reason="Last order 5 days ago, usually orders every 20 days",
            method="bgnbd+gamma_gamma",
        )
        ProductForecast.objects.create(
            organization=organization,
            run=run,
            product=product,
            sku=product.sku,
            name=product.name,
            weeks=[{"start": "2024-07-01", "units": 3.0, "lower": 1.0, "upper": 5.0}],
            total_4w=12.0,
            lower_4w=6.0,
            upper_4w=18.0,
            trend="steady",
            label="Expected 12 units in the next 4 weeks",
            method="ses_0.2",
        )
