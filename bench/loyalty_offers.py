"""Benchmark: the loyalty step, an offer's build, redemptions, nearest stores and the
offer's results on one generated organisation, against one plain SQL aggregation of
net spend per customer measured in the same run.

    .venv/bin/python bench/loyalty_offers.py [--customers 20000] [--json out.json]

Database: the embedded SQLite in a temporary directory (the default), or PostgreSQL
as the application role when DATABASE_URL is a postgres URL (with
DATABASE_OWNER_URL set: the script migrates with it first, as
``manage.py migrate`` does; ``pgenv`` of /work/hx.sh sets both). On PostgreSQL the
generated organisation stays in that database (slug ``bench-loyalty-<time>``).

Generated (not timed): `--customers` customers, about 4 orders each over two years
ending yesterday (one in 12 a return with a negative total, one line each), 30%
with coordinates, another 30% with a postcode only, the rest a city only; 5 stores
with coordinates and postcode beginnings; a loyalty programme (Bronze 0, Silver
250, Gold 1,000 of spend over 365 days, 1 point per unit); an audience of 20% of
the customers (the offer's target, as a segment's members would be); one offer
(10% off, unique codes, 10% hold-out, starting 120 days ago). After the build, 5%
of the orders are given a recipient's code in `discount_code` (their own code for
recipients' orders, some on other people's orders, before and after the start).

Timed, each once:
 1. `loyalty.services.loyalty_refresh` (what the `loyalty` step's task calls), the
    first run: everyone placed (quiet, no events).
 2. The same again with nothing changed (writes nothing).
 3. The same after adding a day of new orders (about 4 × customers / 730 orders today).
 4. `offers.services.offer_build` (the `offer` job: target, hold-out, nearest
    stores, fairness, codes, then its own redemptions refresh of no codes yet).
 5. `offers.redemption.redemptions_refresh` (the `offers` step) with the codes in.
 6. `stores.promotions.nearest_stores` for every customer.
 7. `offers.stats.offer_stats(offer)` (the offer page's results).
Baseline (1.0x): `Order.objects.filter(status="paid").values("customer_id")
.annotate(Sum("total"))` evaluated to a list (net spend per customer).

Prints a table (seconds, ratio to the baseline, milliseconds per 1,000 customers)
and one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHUNK = 5_000
STORES = (  # name, latitude, longitude, postcode beginnings
    ("Camden", 51.539, -0.142, ["NW1"]),
    ("Clapham", 51.462, -0.138, ["SW4"]),
    ("Brighton", 50.822, -0.137, ["BN1", "BN2"]),
    ("Oxford", 51.752, -1.258, ["OX1"]),
    ("Bristol", 51.454, -2.588, ["BS1"]),
)
PREFIXES = ("NW1", "SW4", "BN1", "BN2", "OX1", "BS1", "M1", "EH1")
CITIES = ("London", "Brighton", "Oxford", "Bristol", "Manchester", "Leeds")


def _setup() -> str:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        if not os.environ.get("DATABASE_OWNER_URL"):
            sys.exit("PostgreSQL needs DATABASE_OWNER_URL (the schema owner) to migrate")
        os.environ["SEGMENTA_VAR_DIR"] = tempfile.mkdtemp(prefix="bench-loyalty-")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=os.environ, check=True
        )
        engine = "postgresql"
    else:
        os.environ.pop("DATABASE_URL", None)  # the embedded SQLite default
        os.environ["SEGMENTA_VAR_DIR"] = tempfile.mkdtemp(prefix="bench-loyalty-")
        engine = "sqlite"
    import django

    django.setup()
    import logging

    if engine == "sqlite":
        from django.apps import apps
        from django.conf import settings
        from django.core.management import call_command

        # tables straight from the models (as `pytest --nomigrations` does)
        settings.MIGRATION_MODULES = {a.label: None for a in apps.get_app_configs()}
        call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
        call_command("createcachetable", verbosity=0)
    for name in ("segmenta.jobs", "segmenta.loyalty", "segmenta.offers", "segmenta.stores"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return engine


def _timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def generate(n: int, seed: int = 0):
    """The organisation and its data (see the module docstring)."""
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from accounts.services import organization_create
    from accounts.tenancy import tenant_context
    from audiences.models import Audience, AudienceMember
    from customers.models import Customer, Order, OrderLine
    from loyalty.models import LoyaltyProgram, LoyaltyTier
    from stores.models import Store

    rng = np.random.default_rng(seed)
    stamp = time.strftime("%Y%m%d%H%M%S")
    user = get_user_model().objects.create_user(email=f"bench-{stamp}@example.com", password=None)
    org = organization_create(
        name="Loyalty bench", owner=user, slug=f"bench-loyalty-{stamp}", currency="GBP"
    )
    now = timezone.now()
    end = now.replace(hour=0, minute=0, second=0, microsecond=0)  # yesterday's end
    with tenant_context(org):
        for name, lat, lon, prefixes in STORES:
            Store.objects.create(
                organization=org, name=name, latitude=lat, longitude=lon,
                postal_prefixes=prefixes,
            )  # fmt: skip
        kind = rng.random(n)  # < 0.3 coordinates, < 0.6 postcode only, else city only
        lat = 50.8 + rng.random(n) * 2.0
        lon = -2.8 + rng.random(n) * 2.8
        genders = ("female", "male", "")
        births = [
            dt.date(1950, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 20000, n)
        ]
        customers = []
        for i in range(n):
            customers.append(
                Customer(
                    organization=org,
                    external_id=f"C{i:07d}",
                    email=f"c{i}@example.com",
                    first_name=f"Name{i % 97}",
                    gender=genders[i % 3],
                    birth_date=births[i],
                    city=CITIES[i % len(CITIES)],
                    country="United Kingdom",
                    postal_code=(
                        f"{PREFIXES[i % len(PREFIXES)]} {i % 9}AB" if kind[i] < 0.6 else ""
                    ),
                    latitude=float(lat[i]) if kind[i] < 0.3 else None,
                    longitude=float(lon[i]) if kind[i] < 0.3 else None,
                    accepts_email=bool(i % 4),
                )
            )
        ids: list[int] = []
        for start in range(0, n, CHUNK):
            Customer.objects.bulk_create(customers[start : start + CHUNK])
        ids = list(Customer.objects.order_by("pk").values_list("pk", flat=True))
        del customers
        per = 1 + rng.poisson(3.0, n)  # about 4 orders each
        owner = np.repeat(np.arange(n), per)
        m = owner.size
        seconds = rng.integers(60, 730 * 86400, m)
        is_return = rng.random(m) < 1 / 12
        amount = np.round(rng.gamma(2.0, 40.0, m), 2)
        amount[is_return] = -np.round(amount[is_return] * 0.5, 2)
        _orders_insert(org, ids, owner, end, seconds, is_return, amount, prefix="O")

        program = LoyaltyProgram.objects.create(organization=org, metric="spend", period_days=365)
        for position, (name, threshold) in enumerate(
            (("Bronze", 0), ("Silver", 250), ("Gold", 1000))
        ):
            LoyaltyTier.objects.create(
                organization=org, program=program, name=name, threshold=threshold,
                position=position,
            )  # fmt: skip
        chosen = sorted(rng.choice(n, size=n // 5, replace=False).tolist())
        audience = Audience.objects.create(
            organization=org, name="Bench target (20%)", status="ready",
            definition={"kind": "rules"}, size=len(chosen), refreshed_at=now,
        )  # fmt: skip
        members = [
            AudienceMember(organization=org, audience=audience, customer_id=ids[k], rank=r + 1)
            for r, k in enumerate(chosen)
        ]
        AudienceMember.objects.bulk_create(members, batch_size=CHUNK)
        orders = Order.objects.count()
        lines = OrderLine.objects.count()
    return (
        org,
        ids,
        audience,
        end,
        {"orders": orders, "lines": lines, "returns": int(is_return.sum())},
    )


def _orders_insert(org, ids, owner, end, seconds, is_return, amount, *, prefix: str) -> None:
    from decimal import Decimal

    from customers.models import Order, OrderLine

    m = owner.size
    for start in range(0, m, CHUNK):
        part = range(start, min(start + CHUNK, m))
        orders = Order.objects.bulk_create(
            [
                Order(
                    organization=org,
                    external_id=f"{prefix}{j:08d}",
                    customer_id=ids[int(owner[j])],
                    ordered_at=end - dt.timedelta(seconds=int(seconds[j])),
                    currency="GBP",
                    total=Decimal(str(amount[j])),
                    is_return=bool(is_return[j]),
                    status="paid",
                    lines_count=1,
                )
                for j in part
            ]
        )
        OrderLine.objects.bulk_create(
            [
                OrderLine(
                    organization=org,
                    order=o,
                    sku=f"SKU{j % 300}",
                    product_name=f"Product {j % 300}",
                    category=("Tea", "Ceramics", "Linen")[j % 3],
                    quantity=-1 if is_return[j] else 1,
                    amount=o.total,
                )
                for o, j in zip(orders, part, strict=True)
            ]
        )


def _codes_in(org, offer, rng, share: float = 0.05) -> int:
    """Put a recipient's code on `share` of the orders' lines: most on the
    recipient's own orders, one in ten on somebody else's. Returns lines changed."""
    from django.db import connection

    from customers.history import table_name
    from customers.models import Order, OrderLine
    from offers.models import OfferRecipient

    codes = dict(
        OfferRecipient.objects.filter(offer=offer, holdout=False)
        .exclude(code="")
        .values_list("customer_id", "code")
    )
    orders = list(Order.objects.values_list("pk", "customer_id"))
    want = int(share * len(orders))
    own = [(pk, codes[c]) for pk, c in orders if c in codes]
    others = [pk for pk, c in orders if c not in codes]
    pick_own = rng.choice(len(own), size=min(len(own), want - want // 10), replace=False)
    pick_other = rng.choice(len(others), size=min(len(others), want // 10), replace=False)
    all_codes = list(codes.values())
    chosen = {own[int(k)][0]: own[int(k)][1] for k in pick_own}
    for k in pick_other:
        chosen[others[int(k)]] = all_codes[int(rng.integers(0, len(all_codes)))]
    line_of = dict(
        OrderLine.objects.filter(order_id__in=list(chosen)).values_list("order_id", "pk")
    )
    table = table_name(OrderLine)
    rows = [(code, line_of[o], org.pk) for o, code in chosen.items() if o in line_of]
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET discount_code = %s WHERE id = %s AND organization_id = %s",  # noqa: S608 - model table
            rows,
        )
    return len(rows)


def run(n: int) -> dict:
    import numpy as np
    from django.db import connection
    from django.db.models import Sum
    from django.utils import timezone

    from accounts.tenancy import tenant_context
    from customers.models import Order
    from loyalty.services import loyalty_refresh
    from offers.models import Offer
    from offers.redemption import redemptions_refresh
    from offers.services import offer_build
    from offers.stats import offer_stats
    from stores.promotions import nearest_stores

    started = time.perf_counter()
    org, ids, audience, end, counts = generate(n)
    generate_seconds = time.perf_counter() - started
    rng = np.random.default_rng(1)
    steps: dict[str, float] = {}
    notes: dict[str, object] = {}
    with tenant_context(org):
        # baseline first and last; the smaller of the two counts
        def baseline():
            return list(
                Order.objects.filter(status="paid").values("customer_id").annotate(s=Sum("total"))
            )

        base_1, rows = _timed(baseline)
        notes["baseline_rows"] = len(rows)

        steps["loyalty_first"], out = _timed(lambda: loyalty_refresh(organization=org))
        notes["loyalty_first"] = {
            k: out.get(k) for k in ("accounts", "changes", "events", "members", "seconds")
        }
        steps["loyalty_unchanged"], out = _timed(lambda: loyalty_refresh(organization=org))
        notes["loyalty_unchanged"] = {
            k: out.get(k) for k in ("accounts", "changes", "events", "seconds")
        }

        k = max(1, round(4 * n / 730))
        owner = rng.integers(0, n, k)
        _orders_insert(
            org, ids, owner, timezone.now().replace(minute=0, second=0, microsecond=0),
            rng.integers(60, 3600, k), np.zeros(k, dtype=bool),
            np.round(rng.gamma(2.0, 60.0, k), 2), prefix="N",
        )  # fmt: skip
        notes["new_orders"] = k
        steps["loyalty_new_day"], out = _timed(lambda: loyalty_refresh(organization=org))
        notes["loyalty_new_day"] = {
            k: out.get(k) for k in ("accounts", "changes", "events", "seconds")
        }

        offer = Offer.objects.create(
            organization=org, name="Bench 10% off", kind="percent", value="10",
            audience=audience, code_mode="unique", holdout_share=0.1,
            starts_at=end - dt.timedelta(days=120), status="building",
        )  # fmt: skip
        steps["offer_build"], offer = _timed(lambda: offer_build(offer_id=offer.pk))
        notes["offer"] = {"recipients": offer.recipients_count, "holdout": offer.holdout_count}
        notes["codes_on_lines"] = _codes_in(org, offer, rng)
        steps["redemptions_refresh"], out = _timed(lambda: redemptions_refresh(organization=org))
        notes["redemptions"] = out
        steps["nearest_stores"], out = _timed(
            lambda: nearest_stores(organization=org, customer_ids=ids)
        )
        notes["placed_at_a_store"] = sum(1 for v in out.values() if v)
        offer = Offer.objects.select_related("organization").get(pk=offer.pk)
        steps["offer_stats"], out = _timed(lambda: offer_stats(offer))

        base_2, _ = _timed(baseline)
    base = min(base_1, base_2)
    return {
        "customers": n,
        "database": connection.vendor,
        **counts,
        "generate_seconds": round(generate_seconds, 1),
        "baseline_seconds": round(base, 4),
        "baseline_runs": [round(base_1, 4), round(base_2, 4)],
        "steps": {
            name: {
                "seconds": round(s, 3),
                "ratio": round(s / base, 1) if base else None,
                "ms_per_1000_customers": round(1000 * s / (n / 1000), 1),
            }
            for name, s in steps.items()
        },
        "notes": notes,
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    engine = _setup()
    result = run(args.customers)
    print(f"{result['customers']:,} customers, {result['orders']:,} orders on {engine} "
          f"(generated in {result['generate_seconds']} s); baseline "
          f"{result['baseline_seconds']} s", file=sys.stderr)  # fmt: skip
    print(f"{'step':<22}{'seconds':>10}{'ratio':>10}{'ms/1k cust':>12}", file=sys.stderr)
    print(f"{'baseline (SQL sum)':<22}{result['baseline_seconds']:>10}{1.0:>10}"
          f"{round(1e6 * result['baseline_seconds'] / result['customers'], 1):>12}",
          file=sys.stderr)  # fmt: skip
    for name, row in result["steps"].items():
        print(f"{name:<22}{row['seconds']:>10}{row['ratio']:>10}{row['ms_per_1000_customers']:>12}",
              file=sys.stderr)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
