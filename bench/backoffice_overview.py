"""Benchmark: the back office's organisations overview (`backoffice.usage`:
`organizations_with_usage` and `usage_totals`, and the admin page
`/admin/accounts/organization/` through Django's test client as a staff
superuser) against a plain list of organisations measured in the same run.

    .venv/bin/python bench/backoffice_overview.py [--orgs 200] [--customers 200000] [--lines 1000000] [--runs 7]

Database: the embedded SQLite in a temporary directory (the default), or
PostgreSQL when DATABASE_URL is a postgres URL (with DATABASE_OWNER_URL: the
script migrates with it first; DATABASE_PLATFORM_URL: the back office's role,
which the admin runs as inside `unscoped_context()`; ``pgenv`` of /work/hx.sh
sets all three). On PostgreSQL the generated organisations (slug
``bench-bo-<time>-<n>``) and their rows are deleted at the end.

Generated (not timed), bulk-created as the platform: `--orgs` organisations
sharing `--customers` customers and `--lines` order lines (8 a order) unevenly —
the first ("big") organisation has 40 %, the others a Zipf-like share (exponent
0.8) of the rest; for each organisation 5–100 jobs over the last 14 days (one in
eight failed, run times of seconds to minutes), one email campaign with a
delivery to up to a fifth of its customers (sent over the last 40 days), a daily
`ApiUsage` row for the last 45 days, 3 sign-ins and 2 imports in the audit log.
PostgreSQL gets a VACUUM ANALYZE as the owner role (autovacuum would, soon after
such a load; it also marks the pages all-visible, which index-only counts need). `--keep` leaves
the rows in the database (to explain the queries afterwards).

Timed, the median of `--runs` runs each after one warm-up (every query counted,
on every database connection; on PostgreSQL each statement also comes with the
row-level security wrapper's BEGIN, set_config and COMMIT, counted apart):
- **functions**: the first 100 of `organizations_with_usage()` by name, and by
  order lines (the costliest column, sorted in the database); `usage_totals()`;
  baseline (1.0x): the first 100 of `Organization.objects.order_by("name")`.
- **pages** (`GET` through the test client, as a superuser, in the back office's
  escape hatch as in production): the overview as it is, sorted by order lines
  (`?o=-4`), and searched for the big organisation (`?q=…`); baseline (1.0x):
  the same admin page with Django's default list (name, slug, status; no usage
  columns, no totals) — `Organization.objects.all()`, paginated by the admin.

Prints a table and one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _django_setup import cleanup, setup_django  # noqa: E402

CHUNK = 5_000
LINES_PER_ORDER = 8


def _setup() -> str:
    return setup_django("bench-backoffice-")


def shares(n_orgs: int, big: float = 0.4, exponent: float = 0.8) -> list[float]:
    """The big organisation's share, then a Zipf-like spread of the rest."""
    weights = [1 / (i + 1) ** exponent for i in range(n_orgs - 1)]
    total = sum(weights)
    return [big] + [(1 - big) * w / total for w in weights]


def split(total: int, parts: list[float]) -> list[int]:
    counts = [max(1, int(total * p)) for p in parts]
    counts[0] += total - sum(counts)
    return counts


def generate(n_orgs: int, n_customers: int, n_lines: int, seed: int = 0):
    """Organisations and their rows (see the module docstring); returns the orgs."""
    from django.utils import timezone

    from accounts.models import ApiUsage, AuditAction, AuditLogEntry, Organization
    from campaigns.models import Campaign, Channel, Delivery, DeliveryStatus
    from core.models import Job, JobStatus
    from customers.models import Customer, Import, ImportStatus, Order, OrderLine

    rng = random.Random(seed)
    now = timezone.now()
    stamp = time.strftime("%Y%m%d%H%M%S")
    orgs = Organization.objects.bulk_create(
        [
            Organization(name=f"Bench organisation {i:03d}", slug=f"bench-bo-{stamp}-{i:03d}")
            for i in range(n_orgs)
        ]
    )
    orgs[0].name = "Bench big organisation"
    orgs[0].save(update_fields=["name"])
    part = shares(n_orgs)
    customers_of = split(n_customers, part)
    lines_of = split(n_lines, part)

    def flush(model, rows):
        model.all_objects.bulk_create(rows, batch_size=CHUNK)
        rows.clear()

    jobs, deliveries, usage, audit, imports = [], [], [], [], []
    token = 0
    for org, n_cust, n_line in zip(orgs, customers_of, lines_of, strict=True):
        ids = []
        for start in range(0, n_cust, CHUNK):
            made = Customer.all_objects.bulk_create(
                [
                    Customer(organization=org, external_id=f"C{i:07d}", email=f"c{i}@example.com")
                    for i in range(start, min(n_cust, start + CHUNK))
                ]
            )
            ids += [c.pk for c in made]
        n_orders = max(1, n_line // LINES_PER_ORDER)
        for start in range(0, n_orders, CHUNK):
            stop = min(n_orders, start + CHUNK)
            orders = Order.all_objects.bulk_create(
                [
                    Order(
                        organization=org,
                        external_id=f"O{i:08d}",
                        customer_id=ids[i % len(ids)],
                        ordered_at=now - dt.timedelta(days=rng.uniform(0, 700)),
                    )
                    for i in range(start, stop)
                ]
            )
            lines = []
            for k, order in enumerate(orders):
                per = LINES_PER_ORDER if start + k < n_orders - 1 else n_line - (n_orders - 1) * 8
                lines += [
                    OrderLine(organization=org, order=order, sku=f"P{j}", amount=9, position=j)
                    for j in range(max(1, per))
                ]
            OrderLine.all_objects.bulk_create(lines, batch_size=CHUNK)
        for _ in range(rng.randint(5, 100)):
            created = now - dt.timedelta(hours=rng.uniform(0, 14 * 24))
            run = dt.timedelta(seconds=rng.uniform(1, 600))
            jobs.append(
                Job(
                    organization=org,
                    kind=rng.choice(["segmentation", "predictions", "import"]),
                    status=JobStatus.FAILED if rng.random() < 1 / 8 else JobStatus.SUCCEEDED,
                    created_at=created,
                    started_at=created,
                    finished_at=created + run,
                )
            )
        campaign = Campaign.all_objects.create(organization=org, name="Bench", channel="email")
        for cid in ids[: max(1, len(ids) // 5)]:
            token += 1
            deliveries.append(
                Delivery(
                    organization=org,
                    campaign=campaign,
                    customer_id=cid,
                    channel=Channel.EMAIL,
                    status=DeliveryStatus.SENT,
                    token=f"bench{stamp}{token}",
                    sent_at=now - dt.timedelta(hours=rng.uniform(0, 40 * 24)),
                )
            )
        today = now.date()
        usage += [
            ApiUsage(
                organization=org, day=today - dt.timedelta(days=d), requests=rng.randint(0, 5000)
            )
            for d in range(45)
        ]
        audit += [
            AuditLogEntry(
                organization=org,
                action=AuditAction.SIGN_IN,
                created_at=now - dt.timedelta(days=rng.uniform(0, 60)),
            )
            for _ in range(3)
        ]
        imports += [
            Import(
                organization=org,
                kind="orders",
                status=ImportStatus.SUCCEEDED,
                created_at=now - dt.timedelta(days=rng.uniform(0, 90)),
            )
            for _ in range(2)
        ]
        if len(deliveries) >= CHUNK:
            flush(Delivery, deliveries)
    for model, rows in (
        (Job, jobs),
        (Delivery, deliveries),
        (ApiUsage, usage),
        (AuditLogEntry, audit),
        (Import, imports),
    ):
        flush(model, rows)
    return orgs


def remove(orgs) -> None:
    """Delete the generated rows (PostgreSQL keeps them otherwise), table by table."""
    from django.db import connections

    from accounts.models import ApiUsage, AuditLogEntry, Organization
    from accounts.tenancy import platform_alias
    from campaigns.models import Campaign, Delivery
    from core.models import Job
    from customers.models import Customer, Import, Order, OrderLine

    ids = [o.pk for o in orgs]
    with connections[platform_alias()].cursor() as cursor:
        for model in (OrderLine, Order, Delivery, Campaign, Customer, Job, Import, ApiUsage,
                      AuditLogEntry):  # fmt: skip
            cursor.execute(
                f'DELETE FROM "{model._meta.db_table}" WHERE organization_id = ANY(%s)', [ids]
            )
        cursor.execute(f'DELETE FROM "{Organization._meta.db_table}" WHERE id = ANY(%s)', [ids])


class Queries:
    """Every query on every connection while the block runs."""

    def __enter__(self):
        from django.db import connections, reset_queries
        from django.test.utils import CaptureQueriesContext

        reset_queries()  # the log keeps 9,000 queries; count from an empty one
        self._stack = ExitStack()
        self._contexts = [
            self._stack.enter_context(CaptureQueriesContext(connections[alias]))
            for alias in connections
        ]
        return self

    def __exit__(self, *exc):
        self._stack.__exit__(*exc)
        sql = [q["sql"] for c in self._contexts for q in c.captured_queries]
        # on PostgreSQL every statement comes wrapped (BEGIN, set_config of the
        # organisation, COMMIT: accounts.rls): counted apart
        self.wrapper = sum(1 for s in sql if s in _WRAPPER or s.startswith("SELECT set_config("))
        self.count = len(sql) - self.wrapper


_WRAPPER = {"BEGIN", "COMMIT", "ROLLBACK"}


def measure(fn, runs: int) -> dict:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        with Queries() as q:
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return {
        "median_ms": round(statistics.median(times) * 1000, 1),
        "min_ms": round(min(times) * 1000, 1),
        "queries": q.count,
        "wrapper_statements": q.wrapper,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=200)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="PostgreSQL: keep the rows")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    engine = _setup()

    from accounts.tenancy import unscoped_context

    print(
        f"Generating {args.orgs} organisations, {args.customers:,} customers, "
        f"{args.lines:,} order lines ({engine}) …",
        file=sys.stderr,
    )
    t = time.perf_counter()
    with unscoped_context():
        orgs = generate(args.orgs, args.customers, args.lines)
    if engine == "postgresql":
        import psycopg

        # as the tables' owner (the platform role may not vacuum them)
        with psycopg.connect(os.environ["DATABASE_OWNER_URL"], autocommit=True) as owner:
            owner.execute("VACUUM ANALYZE")
    print(f"  generated in {time.perf_counter() - t:.0f} s", file=sys.stderr)

    try:
        figures = run(args, orgs)
    finally:
        if engine == "postgresql" and not args.keep:
            with unscoped_context():
                remove(orgs)

    base_fn = figures["functions"]["Organization.objects first 100 (baseline)"]
    base_page = figures["pages"]["default admin list (baseline)"]
    print(
        f"\n{engine}: {args.orgs} organisations, {args.customers:,} customers, "
        f"{args.lines:,} order lines (big organisation: 40 %); median of {args.runs} runs\n"
    )
    print(
        f"{'what':48} {'median ms':>10} {'min ms':>8} {'queries':>8} {'wrapper':>8} {'× base':>8}"
    )
    for group, base in (("functions", base_fn), ("pages", base_page)):
        for name, f in figures[group].items():
            print(
                f"{name:48} {f['median_ms']:10.1f} {f['min_ms']:8.1f} {f['queries']:8d} "
                f"{f['wrapper_statements']:8d} "
                f"{f['median_ms'] / base['median_ms']:7.1f}×"
            )
    out = {
        "engine": engine,
        "orgs": args.orgs,
        "customers": args.customers,
        "lines": args.lines,
        "runs": args.runs,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        **figures,
    }
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


def run(args, orgs) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client, override_settings

    from accounts.models import Organization
    from accounts.tenancy import unscoped_context
    from backoffice.usage import organizations_with_usage, usage_totals

    def first_100(qs):
        return lambda: list(qs[:100])

    with unscoped_context():
        functions = {
            "Organization.objects first 100 (baseline)": measure(
                first_100(Organization.objects.order_by("name")), args.runs
            ),
            "organizations_with_usage first 100 by name": measure(
                first_100(organizations_with_usage().order_by("name")), args.runs
            ),
            "organizations_with_usage first 100 by lines": measure(
                first_100(organizations_with_usage().order_by("-order_lines")), args.runs
            ),
            "usage_totals()": measure(usage_totals, args.runs),
        }

    user = get_user_model().objects.create_user(
        email=f"bench-bo-{time.time_ns()}@segmenta.test",
        password=None,
        is_staff=True,
        is_superuser=True,
    )
    client = Client()
    client.force_login(user)

    def page(query: str = "", prefix: str = "/admin/"):
        def get():
            response = client.get(prefix + "accounts/organization/" + query)
            assert response.status_code == 200, response.status_code

        return get

    pages = {}
    with override_settings(ROOT_URLCONF=_plain_admin_urls()):
        pages["default admin list (baseline)"] = measure(page("", "/admin/plain/"), args.runs)
    pages["overview, by name"] = measure(page(), args.runs)
    pages["overview, sorted by order lines"] = measure(page("?o=-4"), args.runs)
    pages["overview, searched for the big one"] = measure(page("?q=big"), args.runs)
    user.delete()
    return {"functions": functions, "pages": pages}


def _plain_admin_urls() -> str:
    """A URL configuration with Django's default admin of organisations (name,
    slug, status; no usage columns, no totals) under /admin/plain/, in front of
    the project's: the baseline page, with the same middleware and escape hatch."""
    import importlib
    import types

    from django.conf import settings
    from django.contrib import admin
    from django.urls import path

    from accounts.models import Organization

    site = admin.AdminSite(name="plainadmin")

    class PlainOrganizationAdmin(admin.ModelAdmin):
        list_display = ["name", "slug", "status"]
        search_fields = ["name", "slug"]

    site.register(Organization, PlainOrganizationAdmin)
    module = types.ModuleType("bench_plain_admin_urls")
    root = importlib.import_module(settings.ROOT_URLCONF)
    module.urlpatterns = [path("admin/plain/", site.urls), *root.urlpatterns]  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    return module.__name__


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()  # the temporary var directory (its SQLite database: hundreds of MB)
