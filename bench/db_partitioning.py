"""One organisation's reads on plain tables against the same data partitioned by organisation.

    source /work/hx.sh 7
    pgenv .venv/bin/python bench/db_partitioning.py --prepare --partitions 8 \
        --org SLUG [--org SLUG …] [--rounds 3] [--short] [--json]

`--prepare` copies the database DATABASE_URL names into `<name>_part` (or `--copy NAME`)
(`CREATE DATABASE … TEMPLATE`, as the owner of DATABASE_OWNER_URL; nothing may be
connected to the source meanwhile; an old copy is dropped first), converts every
large tenant table there with `manage.py db_partition --partitions N` (timed, as the
owner, printing each table's rows and seconds), then VACUUM ANALYZE. Without it the
copy must exist already. The source is never changed: the organisations are the ones
`bench/_bigorg.py` wrote into your own database (never run it against segmenta_big).

Then, as the application role (row-level security on, the organisation set as the app
sets it), each organisation's reads run on both databases, alternating
(plain, partitioned, plain, …) for `--rounds` rounds, best time kept:
History.order_lines() and History.purchases() (what every pipeline step reads), the
organisation's line count and sum (no WHERE but the policy), 50 customers' last 20
orders, and 50 orders by id (Order.objects.get). The baseline is `SELECT 1` through
the same connection and scope (50 times). Prints ms per read on each database, the
ratio partitioned / plain (`--short`: only the short reads, for more rounds), the partition each organisation's rows live in, and the load
average before and after. The machine is shared: compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
AS_OF = dt.date(2026, 11, 1)  # bench/_bigorg.py writes data up to this day


def _load() -> str:
    return open("/proc/loadavg").read().split()[:3].__str__()


def _with_db(url: str, name: str) -> str:
    parsed = urlparse(url)
    return parsed._replace(path="/" + name).geturl()


def prepare(partitions: int, target: str) -> list[dict]:
    import psycopg

    from core.partitioning import LARGE_TABLES

    owner = urlparse(os.environ["DATABASE_OWNER_URL"])
    source = owner.path.lstrip("/")
    dsn = f"host={owner.hostname} port={owner.port or 5432} user={owner.username} password={owner.password}"
    with psycopg.connect(dsn + " dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{target}"')
        started = time.monotonic()
        conn.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
        print(f"copied {source} to {target} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    env = {
        **os.environ,
        "SEGMENTA_DB_ROLE": "owner",
        **{
            k: _with_db(os.environ[k], target)
            for k in ("DATABASE_URL", "DATABASE_OWNER_URL", "DATABASE_PLATFORM_URL")
            if os.environ.get(k)
        },
    }
    done = []
    for table in LARGE_TABLES:
        out = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "db_partition",
                "--table",
                table,
                "--partitions",
                str(partitions),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if out.returncode:
            sys.exit(f"db_partition --table {table} failed: {out.stderr.strip().splitlines()[-1]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        done.append({k: result[k] for k in ("table", "rows", "seconds")})
        print(f"  {table}: {result['rows']:,} rows in {result['seconds']} s", file=sys.stderr)
    with psycopg.connect(dsn + f" dbname={target}", autocommit=True) as conn:
        started = time.monotonic()
        conn.execute("VACUUM ANALYZE")
        print(f"VACUUM ANALYZE {time.monotonic() - started:.1f} s", file=sys.stderr)
    return done


def _best(fn, rounds_times: list[float]) -> None:
    started = time.perf_counter()
    fn()
    rounds_times.append((time.perf_counter() - started) * 1000)


def measure(org, rng_seed: int) -> dict[str, callable]:
    from django.db import connection

    from customers.history import History
    from customers.models import Customer, Order

    rng = random.Random(rng_seed)
    customers = list(
        Customer.objects.filter(orders_count__gt=0).values_list("pk", flat=True)[:5000]
    )
    orders = list(Order.objects.values_list("pk", flat=True)[:5000])
    some_customers = rng.sample(customers, min(50, len(customers)))
    some_orders = rng.sample(orders, min(50, len(orders)))

    def sql(q, params=()):
        with connection.cursor() as cursor:
            cursor.execute(q, params)
            return cursor.fetchall()

    return {
        "baseline: SELECT 1 ×50": lambda: [sql("SELECT 1") for _ in range(50)],
        "History.order_lines()": lambda: History(org, AS_OF).order_lines(),
        "History.purchases()": lambda: History(org, AS_OF).purchases(),
        "lines: count + sum": lambda: sql("SELECT count(*), sum(amount) FROM customers_orderline"),
        "50 customers' last 20 orders": lambda: [
            list(Order.objects.filter(customer_id=c).order_by("-ordered_at")[:20])
            for c in some_customers
        ],
        "50 orders by id": lambda: [Order.objects.get(pk=o) for o in some_orders],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--org", action="append", required=True, help="Organisation slug (repeatable).")
    p.add_argument("--prepare", action="store_true")
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--copy", help="Name of the partitioned copy (default: <database>_part).")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--short", action="store_true", help="Only the short reads (not the two History reads)."
    )
    args = p.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("PostgreSQL only: run under pgenv (DATABASE_URL, DATABASE_OWNER_URL).")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DEBUG"] = "0"
    import django

    django.setup()
    from django.db import connections

    from accounts.models import Organization
    from accounts.tenancy import tenant_context

    load_before = _load()
    plain = connections["default"].settings_dict["NAME"]
    part = args.copy or f"{plain}_part"
    converted = prepare(args.partitions, part) if args.prepare else []

    def use(name: str) -> None:
        for alias in connections:
            connections[alias].close()
            connections[alias].settings_dict["NAME"] = name

    report: dict = {"load_before": load_before, "converted": converted, "orgs": {}}
    for slug in args.org:
        use(plain)
        org = Organization.objects.get(slug=slug)
        times: dict[str, dict[str, list[float]]] = {}
        for _ in range(args.rounds):
            for db in (plain, part):
                use(db)
                with tenant_context(org):
                    for name, fn in measure(org, 1).items():
                        if args.short and name.startswith("History"):
                            continue
                        _best(fn, times.setdefault(name, {}).setdefault(db, []))
        use(part)
        with tenant_context(org), connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT tableoid::regclass::text FROM customers_orderline "
                "WHERE organization_id = %s LIMIT 1",
                [org.pk],
            )
            where = cursor.fetchone()
        rows = {
            name: {
                "plain_ms": round(min(t[plain]), 1),
                "partitioned_ms": round(min(t[part]), 1),
                "ratio": round(min(t[part]) / min(t[plain]), 2),
            }
            for name, t in times.items()
        }
        report["orgs"][slug] = {"lines_partition": where[0] if where else None, "reads": rows}
    report["load_after"] = _load()
    if args.json:
        print(json.dumps(report))
        return
    print(f"load average before {report['load_before']} after {report['load_after']}")
    for slug, data in report["orgs"].items():
        print(f"\n{slug} (order lines in {data['lines_partition']})")
        print(f"{'read':34} {'plain ms':>10} {'partitioned ms':>15} {'ratio':>6}")
        for name, r in data["reads"].items():
            print(f"{name:34} {r['plain_ms']:>10} {r['partitioned_ms']:>15} {r['ratio']:>6}")


if __name__ == "__main__":
    main()
