"""Import benchmark: a synthetic orders file through the real import engine.

    .venv/bin/python bench/bench_import.py --lines 1000000 --db both

Generates a realistic orders file (Online Retail layout: power-law customers and
products, seasonality with a Q4 peak and quiet weekends, multi-line orders,
cancellation invoices with negative lines, guest orders), then for each database:
creates a throwaway database and migrates it (PostgreSQL: on 127.0.0.1:5432 as
`postgres`, importing as a separate application role bound by row-level
security), and runs, each in its own process so peak memory is the importer's:

- the import itself (`customers.services.imports.run_file`, the engine behind the
  site, the API and `import_data`), then the same file again (nothing changes);
- baseline 1: plain `csv.reader` over the same file (the cost of reading it);
- baseline 2: a naive per-row ORM import (get_or_create per customer, product and
  order, one INSERT per line) of the first `--naive-lines` lines.

Prints rows/s, peak RSS and the ratios against both baselines, and writes the
results to bench/out/import-<db>.json. Timings are not asserted anywhere.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PG_HOST, PG_PORT, PG_SUPER = "127.0.0.1", 5432, "postgres"
PG_DB, PG_APP_ROLE, PG_APP_PASSWORD = "segmenta_bench_import", "segmenta_bench_app", "bench"
HEADER = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
]
WORDS = (
    "RED WHITE BLUE VINTAGE HEART LANTERN MUG TEA SET GARDEN KITCHEN PAPER CHAIN "
    "CANDLE HOLDER BAG JUMBO STAR BIRD ROSE SPOTTY RETRO WOODEN BOX CLOCK LUNCH "
    "CERAMIC GLASS HANGING DOOR SIGN CAKE TIN BOTTLE NAPKINS ZINC HOOK FRAME"
).split()
COUNTRIES = ["United Kingdom"] * 16 + [
    "Germany",
    "France",
    "EIRE",
    "Spain",
    "Netherlands",
    "Belgium",
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --- the synthetic file ----------------------------------------------------------------------


def generate(path: Path, lines: int, seed: int = 7) -> dict:
    import numpy as np

    rng = np.random.default_rng(seed)
    n_customers = max(200, lines // 60)
    n_products = max(100, min(6000, lines // 150))
    # Power laws: a few customers and products account for most lines.
    cust_w = 1.0 / np.arange(1, n_customers + 1) ** 0.85
    cust_w /= cust_w.sum()
    prod_w = 1.0 / np.arange(1, n_products + 1) ** 1.05
    prod_w /= prod_w.sum()
    prod_price = np.round(np.exp(rng.normal(1.0, 0.8, n_products)), 2).clip(0.19, 300)
    prod_name = [
        " ".join(rng.choice(WORDS, size=rng.integers(2, 5), replace=False))
        for _ in range(n_products)
    ]
    cust_country = rng.choice(COUNTRIES, size=n_customers)
    # Seasonality: a Q4 peak, quieter weekends, two years of days.
    start = dt.date(2023, 1, 1)
    days = np.arange(730)
    dates = [start + dt.timedelta(days=int(d)) for d in days]
    month = np.array([d.month for d in dates])
    weekday = np.array([d.weekday() for d in dates])
    day_w = (1 + 0.9 * np.isin(month, [11, 12]) + 0.3 * (month == 10)) * np.where(
        weekday >= 5, 0.6, 1.0
    )
    day_w *= 1 + 0.25 * days / 730  # growth
    day_w /= day_w.sum()
    # Orders: sizes geometric around 10 lines, until the line count is reached.
    est = int(lines / 9) + 100
    sizes = rng.geometric(0.11, size=est).clip(1, 120)
    while sizes.sum() < lines:
        sizes = np.concatenate([sizes, rng.geometric(0.11, size=est).clip(1, 120)])
    cut = int(np.searchsorted(np.cumsum(sizes), lines)) + 1
    sizes = sizes[:cut]
    sizes[-1] -= int(sizes.sum() - lines)
    n_orders = len(sizes)
    order_day = np.sort(rng.choice(days, size=n_orders, p=day_w))
    order_minute = np.clip(rng.normal(13 * 60, 170, n_orders), 7 * 60, 21 * 60).astype(int)
    order_cust = rng.choice(n_customers, size=n_orders, p=cust_w)
    guest = rng.random(n_orders) < 0.04
    cancel = rng.random(n_orders) < 0.025
    line_prod = rng.choice(n_products, size=lines, p=prod_w)
    line_qty = (rng.geometric(0.35, size=lines) * np.where(rng.random(lines) < 0.08, 12, 1)).astype(
        int
    )
    rows = 0
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        pos = 0
        for i in range(n_orders):
            day = dates[int(order_day[i])]
            minute = int(order_minute[i])
            stamp = f"{day.isoformat()} {minute // 60:02d}:{minute % 60:02d}:00"
            number = 500000 + i
            invoice = f"C{number}" if cancel[i] else str(number)
            cust = "" if guest[i] else str(10000 + int(order_cust[i]))
            country = cust_country[int(order_cust[i])]
            sign = -1 if cancel[i] else 1
            for j in range(int(sizes[i])):
                p = int(line_prod[pos + j])
                w.writerow(
                    [invoice, f"P{p:05d}", prod_name[p], sign * int(line_qty[pos + j]), stamp,
                     f"{prod_price[p]:.2f}", cust, country]
                )  # fmt: skip
                rows += 1
            pos += int(sizes[i])
    return {
        "lines": rows,
        "orders": n_orders,
        "customers": n_customers,
        "products": n_products,
        "bytes": path.stat().st_size,
    }


# --- databases -------------------------------------------------------------------------------


def _pg(sql: str, dbname: str = "postgres") -> None:
    import psycopg

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_SUPER, dbname=dbname, autocommit=True
    ) as conn:
        conn.execute(sql)


def setup_database(db: str, work: Path) -> dict[str, str]:
    """A fresh, migrated database; returns the environment the workers use."""
    env = {**os.environ, "SEGMENTA_VAR_DIR": str(work / f"var-{db}"), "LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_OWNER_URL", None)
    env.pop("DATABASE_PLATFORM_URL", None)  # the throwaway database has no platform role
    if db == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{work / 'bench.sqlite3'}"
        migrate_env = env
    else:
        _pg(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        _pg(f'CREATE DATABASE "{PG_DB}"')
        _pg(
            f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_APP_ROLE}') THEN "
            f"CREATE ROLE {PG_APP_ROLE} LOGIN PASSWORD '{PG_APP_PASSWORD}' NOSUPERUSER NOBYPASSRLS; END IF; END$$"
        )
        owner = f"postgres://{PG_SUPER}@{PG_HOST}:{PG_PORT}/{PG_DB}"
        env["DATABASE_URL"] = (
            f"postgres://{PG_APP_ROLE}:{PG_APP_PASSWORD}@{PG_HOST}:{PG_PORT}/{PG_DB}"
        )
        migrate_env = {**env, "DATABASE_OWNER_URL": owner}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=migrate_env, check=True
    )
    return env


def teardown_database(db: str) -> None:
    if db == "postgresql":
        _pg(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')


def run_worker(env: dict, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"worker {args[0]} failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- workers (each in its own process) ------------------------------------------------------------


def _django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _organization(slug: str):
    from accounts.models import Organization

    org, _ = Organization.objects.get_or_create(
        slug=slug, defaults={"name": slug, "time_zone": "Europe/London", "currency": "GBP"}
    )
    return org


def worker_import(path: str) -> dict:
    _django()
    from django.db import connection

    from accounts.tenancy import tenant_context
    from customers.services.imports import run_file

    org = _organization("bench")
    results = {"vendor": connection.vendor}
    with tenant_context(org):
        for label in ("first", "again"):
            started = time.perf_counter()
            out = run_file(organization=org, path=path, kind="orders")
            seconds = time.perf_counter() - started
            c = out.counts
            results[label] = {
                "seconds": round(seconds, 2),
                "rows": c.rows,
                "rows_per_s": round(c.rows / seconds),
                "created": c.created,
                "unchanged": c.unchanged,
                "rejected": c.rejected,
                "customers_created": c.customers_created,
                "products_created": c.products_created,
            }
            if label == "first":
                results["peak_rss_mb_first"] = round(peak_rss_mb(), 1)
        from customers.models import Order, OrderLine

        results["stored"] = {"orders": Order.objects.count(), "lines": OrderLine.objects.count()}
    results["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return results


def worker_csv(path: str) -> dict:
    started = time.perf_counter()
    opener = gzip.open if path.endswith(".gz") else open
    rows = 0
    with opener(path, "rt", newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        for _ in reader:
            rows += 1
    seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def worker_naive(path: str, limit: int) -> dict:
    """What one would write first: the ORM, row by row."""
    _django()
    import zoneinfo
    from decimal import Decimal

    from django.db import transaction

    from accounts.tenancy import tenant_context
    from customers.models import Customer, Order, OrderLine, Product

    org = _organization("naive")
    tz = zoneinfo.ZoneInfo("Europe/London")
    rows = 0
    opener = gzip.open if path.endswith(".gz") else open
    started = time.perf_counter()
    with (
        tenant_context(org),
        opener(path, "rt", newline="", encoding="utf-8") as f,
        transaction.atomic(),
    ):
        for row in csv.DictReader(f):
            customer = None
            if row["CustomerID"]:
                customer, _ = Customer.objects.get_or_create(external_id=row["CustomerID"])
            product, _ = Product.objects.get_or_create(
                sku=row["StockCode"], defaults={"name": row["Description"]}
            )
            when = dt.datetime.fromisoformat(row["InvoiceDate"]).replace(tzinfo=tz)
            order, _ = Order.objects.get_or_create(
                external_id=row["InvoiceNo"], defaults={"customer": customer, "ordered_at": when}
            )
            qty, price = int(row["Quantity"]), Decimal(row["UnitPrice"])
            OrderLine.objects.create(
                order=order, product=product, sku=product.sku, product_name=row["Description"],
                quantity=qty, unit_price=price, amount=qty * price,
            )  # fmt: skip
            rows += 1
            if rows >= limit:
                break
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds)}


# --- the run ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--gzip", action="store_true", help="write and import a .csv.gz file")
    parser.add_argument("--naive-lines", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        kind, *rest = args.worker
        if kind == "import":
            result = worker_import(rest[0])
        elif kind == "csv":
            result = worker_csv(rest[0])
        else:
            result = worker_naive(rest[0], int(rest[1]))
        print(json.dumps(result))
        return

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"orders-{args.lines}-{args.seed}.csv{'.gz' if args.gzip else ''}"
    if not path.exists():
        print(f"Generating {args.lines:,} order lines → {path.relative_to(ROOT)} …", flush=True)
        started = time.perf_counter()
        info = generate(path, args.lines, args.seed)
        info["seconds"] = round(time.perf_counter() - started, 1)
        path.with_suffix(".json").write_text(json.dumps(info))
    info = json.loads(path.with_suffix(".json").read_text())
    print(
        f"File: {info['lines']:,} lines, {info['orders']:,} orders, {info['customers']:,} customers, "
        f"{info['products']:,} products, {info['bytes'] / 1e6:.1f} MB",
        flush=True,
    )
    baseline_csv = run_worker(dict(os.environ), "csv", str(path))
    print(f"Baseline, csv.reader only: {baseline_csv['rows_per_s']:,} rows/s", flush=True)
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    summary = []
    for db in dbs:
        with tempfile.TemporaryDirectory(prefix=f"segmenta-bench-{db}-") as tmp:
            env = setup_database(db, Path(tmp))
            try:
                naive = run_worker(env, "naive", str(path), str(args.naive_lines))
                result = run_worker(env, "import", str(path))
            finally:
                teardown_database(db)
        first, again = result["first"], result["again"]
        record = {
            "db": db,
            "file": info,
            "import": first,
            "reimport": again,
            "peak_rss_mb": result["peak_rss_mb"],
            "stored": result["stored"],
            "baseline_csv": baseline_csv,
            "baseline_naive_orm": naive,
            "ratio_vs_naive_orm": round(first["rows_per_s"] / naive["rows_per_s"], 1),
            "share_of_csv_speed": round(first["rows_per_s"] / baseline_csv["rows_per_s"], 3),
        }
        (OUT / f"import-{db}.json").write_text(json.dumps(record, indent=2))
        summary.append(record)
        print(
            f"{db:>10}: {first['rows']:,} lines in {first['seconds']} s = {first['rows_per_s']:,} rows/s; "
            f"again (unchanged) {again['seconds']} s = {again['rows_per_s']:,} rows/s; "
            f"peak RSS {result['peak_rss_mb']} MB; naive ORM {naive['rows_per_s']:,} rows/s "
            f"(×{record['ratio_vs_naive_orm']} faster); {record['share_of_csv_speed']:.1%} of csv.reader speed",
            flush=True,
        )
    print(
        json.dumps(
            {
                r["db"]: {
                    "rows_per_s": r["import"]["rows_per_s"],
                    "seconds": r["import"]["seconds"],
                    "peak_rss_mb": r["peak_rss_mb"],
                }
                for r in summary
            }
        )
    )


if __name__ == "__main__":
    main()
