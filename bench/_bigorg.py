"""Big organisations for the scale benchmarks, written straight into PostgreSQL.

    .venv/bin/python bench/_bigorg.py --customers 1000000 [--lines-per-customer 10]
        [--products 5000] [--name "Big shop"] [--seed 7]

Creates an organisation (with an owner, `owner-<slug>@bench.local` / `bench-password`)
and fills it with customers in four planted behaviour groups, their orders and order
lines over two years, products, and recent e-mail events, then prints the
organisation's id as JSON. It needs DATABASE_URL (the application role) and
DATABASE_OWNER_URL; the rows go in with `COPY` as the PostgreSQL superuser
(BENCH_PG_SUPERUSER, default `postgres`, trust auth on loopback), because
PostgreSQL refuses `COPY FROM` into a table with row-level security for any other
role. This is the data set, not a path the product uses: imports go through
`customers/services/imports/`.

The groups (weights 0.4 / 0.3 / 0.2 / 0.1) differ in how often they buy, how much,
which categories and which channel, and one group mostly stopped buying half a year
ago, so segments, churn, recommendations and audiences all have something to find.
The denormalised statistics on each customer (orders, spend, first and last order)
are written with the rows, as imports keep them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
END = pd.Timestamp("2026-11-01", tz="UTC")
DAYS = 730
CATEGORIES = [
    "Coffee",
    "Tea",
    "Chocolate",
    "Bakery",
    "Kitchen",
    "Gifts",
    "Books",
    "Garden",
    "Toys",
    "Beauty",
    "Outdoor",
    "Stationery",
]
# group: weight, orders a year, spend factor, favourite categories, channel weights
# (online, store, app), share that stopped buying 180 days before the end
GROUPS = [
    (0.4, 1.2, 1.0, (0, 1, 3), (0.7, 0.2, 0.1), 0.15),
    (0.3, 4.0, 1.6, (2, 4, 5), (0.3, 0.6, 0.1), 0.05),
    (0.2, 0.8, 0.6, (6, 7, 11), (0.9, 0.0, 0.1), 0.70),
    (0.1, 8.0, 3.0, (8, 9, 10), (0.2, 0.2, 0.6), 0.02),
]
CHANNELS = np.array(["online", "store", "app"])
EVENT_TYPES = np.array(["email_open", "email_click", "page_view"])


def superuser_dsn() -> str:
    url = urlparse(os.environ["DATABASE_URL"])
    user = os.environ.get("BENCH_PG_SUPERUSER", "postgres")
    return f"host={url.hostname or '127.0.0.1'} port={url.port or 5432} dbname={url.path.lstrip('/')} user={user}"


def _copy(cur, table: str, frame: pd.DataFrame, chunk: int = 500_000) -> None:
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    for start in range(0, len(frame), chunk):
        buf = io.StringIO()
        frame.iloc[start : start + chunk].to_csv(buf, header=False, index=False, na_rep="\\N")
        with cur.copy(f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv, NULL '\\N')") as cp:
            cp.write(buf.getvalue().encode())


def _reserve(cur, table: str, n: int) -> int:
    """Reserve n ids of the table's sequence; returns the first."""
    cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    seq = cur.fetchone()[0]
    cur.execute("SELECT nextval(%s)", [seq])
    first = cur.fetchone()[0]
    cur.execute("SELECT setval(%s, %s)", [seq, first + n])
    return first


def generate(*, org_id: int, customers: int, lines_per_customer: float, products: int, seed: int):
    """The organisation's rows as data frames (ids still relative: 0..n-1)."""
    rng = np.random.default_rng(seed)
    n = customers
    now_iso = END.isoformat()
    # products: a category each, popularity Zipf-like within the category, a price
    cat = rng.integers(0, len(CATEGORIES), products)
    price = np.round(np.exp(rng.normal(2.8, 0.6, products)), 2)
    pop = 1.0 / np.arange(1, products + 1) ** 0.9
    prod = pd.DataFrame(
        {
            "sku": [f"SKU-{i:06d}" for i in range(products)],
            "name": [f"{CATEGORIES[c]} item {i}" for i, c in enumerate(cat)],
            "category": np.array(CATEGORIES)[cat],
            "price": price,
            "url": "",
            "image_url": "",
            "in_stock": True,
            "attributes": "{}",
            "created_at": now_iso,
            "updated_at": now_iso,
            "organization_id": org_id,
            "hidden": False,
            "merchandise": True,  # products that may be recommended
            "merchandise_source": "",
        }
    )
    by_cat = [np.flatnonzero(cat == c) for c in range(len(CATEGORIES))]
    cat_p = [pop[ix] / pop[ix].sum() for ix in by_cat]

    weights = np.array([g[0] for g in GROUPS])
    group = rng.choice(len(GROUPS), n, p=weights)
    rate = np.array([g[1] for g in GROUPS])[group] * rng.gamma(2.0, 0.5, n)
    signup = rng.integers(0, DAYS - 30, n)  # day index the customer joined
    stop_share = np.array([g[5] for g in GROUPS])[group]
    stopped = rng.random(n) < stop_share
    last_day = np.where(stopped, DAYS - 180 - rng.integers(0, 200, n), DAYS)
    last_day = np.maximum(last_day, signup + 1)
    span_years = (last_day - signup) / 365.0
    # scale orders so that lines per customer comes out near the target
    lines_per_order = 2.0  # 1 + Poisson(1) lines an order
    base = rate * span_years
    scale = max(0.0, lines_per_customer / lines_per_order - 1) / max(base.mean(), 1e-9)
    n_orders = 1 + rng.poisson(base * scale)
    order_cust = np.repeat(np.arange(n), n_orders)
    n_ord = len(order_cust)
    day = signup[order_cust] + rng.random(n_ord) * (last_day - signup)[order_cust]
    ordered_at = END - pd.to_timedelta(DAYS - day, unit="D")
    ch_w = np.array([g[4] for g in GROUPS])[group[order_cust]]
    channel = CHANNELS[
        (rng.random(n_ord)[:, None] > np.cumsum(ch_w, axis=1)).sum(axis=1).clip(0, 2)
    ]
    n_lines = 1 + rng.poisson(max(lines_per_order - 1, 0.1), n_ord)
    line_order = np.repeat(np.arange(n_ord), n_lines)
    n_line = len(line_order)
    fav = np.array([g[3] for g in GROUPS])[group[order_cust[line_order]]]
    use_fav = rng.random(n_line) < 0.75
    line_cat = np.where(
        use_fav,
        fav[np.arange(n_line), rng.integers(0, 3, n_line)],
        rng.integers(0, len(CATEGORIES), n_line),
    )
    line_prod = np.empty(n_line, dtype=np.int64)
    for c in range(len(CATEGORIES)):
        ix = np.flatnonzero(line_cat == c)
        line_prod[ix] = rng.choice(by_cat[c], len(ix), p=cat_p[c])
    qty = 1 + rng.poisson(0.3 * np.array([g[2] for g in GROUPS])[group[order_cust[line_order]]])
    amount = np.round(qty * price[line_prod], 2)
    position = np.arange(n_line) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines)
    total = np.bincount(line_order, weights=amount, minlength=n_ord)

    spent = np.bincount(order_cust, weights=total, minlength=n)
    first_ix = np.cumsum(n_orders) - n_orders
    o_sorted = pd.Series(ordered_at)
    firsts = o_sorted.groupby(order_cust).min().to_numpy()
    lasts = o_sorted.groupby(order_cust).max().to_numpy()
    del first_ix
    accepts_email = rng.random(n) < 0.6
    signup_at = END - pd.to_timedelta(DAYS - signup, unit="D")
    cust = pd.DataFrame(
        {
            "external_id": [f"C{i:08d}" for i in range(n)],
            "email": [f"customer{i}@example.com" for i in range(n)],
            "phone": "",
            "first_name": "Sam",
            "last_name": [f"Shopper{i}" for i in range(n)],
            "gender": "",
            "city": "",
            "region": "",
            "country": "GB",
            "postal_code": "",
            "signup_at": signup_at.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "accepts_email": accepts_email,
            "accepts_sms": False,
            "email_consent_at": np.where(accepts_email, now_iso, None),
            "email_consent_source": np.where(accepts_email, "bench", ""),
            "sms_consent_source": "",
            "attributes": "{}",
            "first_order_at": pd.DatetimeIndex(firsts).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "last_order_at": pd.DatetimeIndex(lasts).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "orders_count": n_orders,
            "total_spent": np.round(spent, 2),
            "created_at": now_iso,
            "updated_at": now_iso,
            "organization_id": org_id,
        }
    )
    orders = pd.DataFrame(
        {
            "external_id": [f"O{i:09d}" for i in range(n_ord)],
            "ordered_at": pd.DatetimeIndex(ordered_at).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "currency": "",
            "channel": channel,
            "location": "",
            "total": np.round(total, 2),
            "is_return": False,
            "properties": "{}",
            "content_hash": "",
            "lines_count": n_lines,
            "created_at": now_iso,
            "updated_at": now_iso,
            "customer_id": order_cust,  # relative
            "organization_id": org_id,
            "status": "paid",
        }
    )
    lines = pd.DataFrame(
        {
            "sku": prod["sku"].to_numpy()[line_prod],
            "product_name": prod["name"].to_numpy()[line_prod],
            "category": prod["category"].to_numpy()[line_prod],
            "quantity": qty,
            "unit_price": price[line_prod],
            "amount": amount,
            "position": position,
            "order_id": line_order,  # relative
            "organization_id": org_id,
            "product_id": line_prod,  # relative
            "discount_code": "",
            "line_id": "",
        }
    )
    # recent e-mail activity for a third of the customers
    active = np.flatnonzero(rng.random(n) < 0.33)
    per = 1 + rng.poisson(1.0, len(active))
    ev_cust = np.repeat(active, per)
    ev_at = END - pd.to_timedelta(rng.random(len(ev_cust)) * 85, unit="D")
    events = pd.DataFrame(
        {
            "type": EVENT_TYPES[rng.integers(0, 3, len(ev_cust))],
            "occurred_at": pd.DatetimeIndex(ev_at).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "properties": "{}",
            "content_hash": "",
            "created_at": now_iso,
            "customer_id": ev_cust,
            "organization_id": org_id,
            "updated_at": now_iso,
        }
    )
    return prod, cust, orders, lines, events, group


def load(*, org_id: int, prod, cust, orders, lines, events) -> dict:
    import psycopg

    counts = {}
    with psycopg.connect(superuser_dsn(), autocommit=False) as conn, conn.cursor() as cur:
        # The rows are consistent by construction: no foreign-key trigger per row (they
        # would queue tens of millions of deferred checks for the commit).
        cur.execute("SET session_replication_role = replica")
        for table, frame, refs in (
            ("customers_product", prod, {}),
            ("customers_customer", cust, {}),
            ("customers_order", orders, {"customer_id": "customers_customer"}),
            (
                "customers_orderline",
                lines,
                {"order_id": "customers_order", "product_id": "customers_product"},
            ),
            ("customers_event", events, {"customer_id": "customers_customer"}),
        ):
            for col, ref in refs.items():
                frame[col] = frame[col] + counts[ref][0]
            first = _reserve(cur, table, len(frame))
            frame.insert(0, "id", np.arange(first, first + len(frame)))
            _copy(cur, table, frame)
            counts[table] = (first, len(frame))
        conn.commit()
        cur.execute(
            "ANALYZE customers_customer; ANALYZE customers_order; ANALYZE customers_orderline"
        )
        conn.commit()
    return {t: n for t, (_, n) in counts.items()}


def make_org(
    *,
    customers: int,
    lines_per_customer: float = 10.0,
    products: int = 5000,
    name: str | None = None,
    seed: int = 7,
) -> dict:
    """Create and fill one organisation (Django must be set up). Returns its facts."""
    from django.contrib.auth import get_user_model

    from accounts.services import organization_create

    name = name or f"Bench {customers:,} customers"
    User = get_user_model()
    t0 = time.perf_counter()
    slug_hint = f"bench-{customers}-{seed}-{int(time.time())}"
    email = f"owner-{slug_hint}@bench.local"
    user = User.objects.create_user(email=email, password="bench-password", email_verified=True)
    org = organization_create(name=name, owner=user, slug=slug_hint)
    frames = generate(
        org_id=org.pk,
        customers=customers,
        lines_per_customer=lines_per_customer,
        products=products,
        seed=seed,
    )
    counts = load(
        org_id=org.pk,
        **dict(zip(["prod", "cust", "orders", "lines", "events"], frames[:5], strict=True)),
    )
    return {
        "organization_id": org.pk,
        "slug": org.slug,
        "owner": email,
        "password": "bench-password",
        "rows": counts,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, required=True)
    p.add_argument("--lines-per-customer", type=float, default=10.0)
    p.add_argument("--products", type=int, default=5000)
    p.add_argument("--name")
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("bench/_bigorg.py writes to PostgreSQL: set DATABASE_URL and DATABASE_OWNER_URL")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    print(
        json.dumps(
            make_org(
                customers=a.customers,
                lines_per_customer=a.lines_per_customer,
                products=a.products,
                name=a.name,
                seed=a.seed,
            )
        )
    )


if __name__ == "__main__":
    main()
