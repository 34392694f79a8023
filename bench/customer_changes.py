"""Marking the customers a pipeline run changed: the narrow change table against
rewriting the customer rows (issue 15).

    source /work/hx.sh big; pgenv .venv/bin/python bench/customer_changes.py --org SLUG

Against the PostgreSQL database DATABASE_URL names, as the application role, inside
the organisation (row-level security on). Every write runs in a transaction that is
rolled back, so the organisation is left as it was. Measured in the same run:

- baseline, what runs did before: `UPDATE customers_customer SET updated_at = now`
  for every customer of the organisation (each a new row version and an entry in
  each of the customers table's indexes, since `updated_at` is indexed);
- a first run now: every customer gets a row in the empty change table;
- a later run now: every customer's row moves on (the upsert's update path);
- reading `customers/?updated_since=` (the API's first cursor page of 1,000) after
  such a run (every customer changed) and when only 100 changed, old query against new.

Prints seconds and the ratio of each to the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _django_setup import Rollback, setup_django_big_org  # noqa: E402


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _in_rollback(fn):
    from django.db import transaction

    out: dict = {}
    try:
        with transaction.atomic():
            out["value"] = fn()
            raise Rollback
    except Rollback:
        pass
    return out["value"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--org", required=True, help="organisation slug")
    p.add_argument("-n", type=int, default=5, help="repeats of each read")
    args = p.parse_args()
    setup_django_big_org()

    import datetime as dt

    from django.db import connection
    from django.utils import timezone
    from rest_framework.test import APIRequestFactory

    from accounts.models import Organization
    from accounts.tenancy import tenant_context
    from core.api.params import updated_since_filter
    from customers.models import Customer, CustomerChange
    from customers.selectors import customers_active

    org = Organization.objects.get(slug=args.org)
    change_table = CustomerChange._meta.db_table

    def write_all(sql: str, params) -> float:
        with connection.cursor() as cursor:
            return _timed(lambda: cursor.execute(sql, params))

    upsert = (
        f"INSERT INTO {change_table} (organization_id, customer_id, changed_at) "  # noqa: S608
        "SELECT %s, id, %s FROM customers_customer WHERE organization_id = %s "
        "ON CONFLICT (organization_id, customer_id) DO UPDATE SET changed_at = excluded.changed_at"
    )

    def _sync_page(since: dt.datetime, new: bool) -> float:
        request = APIRequestFactory().get("/", {"updated_since": since.isoformat()})
        request.query_params = request.GET  # what DRF's Request offers
        qs = customers_active()
        if new:
            qs = updated_since_filter(request, qs)
        else:
            qs = qs.filter(updated_at__gte=since)
        return _timed(lambda: list(qs.order_by("pk").values_list("pk", flat=True)[:1000]))

    results: dict[str, float] = {}
    with tenant_context(org):
        customers = Customer.objects.count()
        now = timezone.now()
        print(f"{args.org}: {customers:,} customers", flush=True)

        def writes():
            out = {}
            out["baseline: UPDATE every customer's updated_at"] = write_all(
                "UPDATE customers_customer SET updated_at = %s WHERE organization_id = %s",
                [now, org.pk],
            )
            with connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {change_table} WHERE organization_id = %s", [org.pk])  # noqa: S608
            out["first run: a change row for every customer"] = write_all(
                upsert, [org.pk, now, org.pk]
            )
            out["later run: every customer's change row moved on"] = write_all(
                upsert, [org.pk, now + dt.timedelta(seconds=1), org.pk]
            )
            return out

        results.update(_in_rollback(writes))

        def reads():
            out = {}
            later = now + dt.timedelta(minutes=1)
            hour_ago = now - dt.timedelta(hours=1)
            with connection.cursor() as cursor:
                # every customer changed at `now` the old way: their rows rewritten
                cursor.execute(
                    "UPDATE customers_customer SET updated_at = %s WHERE organization_id = %s",
                    [now, org.pk],
                )
            out["sync page, all changed: old (updated_at)"] = statistics.median(
                _sync_page(hour_ago, False) for _ in range(args.n)
            )
            with connection.cursor() as cursor:
                # and the new way: a change row each, the rows themselves older
                cursor.execute(f"DELETE FROM {change_table} WHERE organization_id = %s", [org.pk])  # noqa: S608
                cursor.execute(upsert, [org.pk, now, org.pk])
                cursor.execute(
                    "UPDATE customers_customer SET updated_at = %s WHERE organization_id = %s",
                    [now - dt.timedelta(days=1), org.pk],
                )
                cursor.execute("SELECT segmenta_analyze(%s)", [change_table])
            out["sync page, all changed: new (with change rows)"] = statistics.median(
                _sync_page(hour_ago, True) for _ in range(args.n)
            )
            with connection.cursor() as cursor:
                # then 100 customers change after `later`
                cursor.execute(
                    f"UPDATE {change_table} SET changed_at = %s WHERE organization_id = %s "  # noqa: S608
                    f"AND customer_id IN (SELECT customer_id FROM {change_table} "
                    "WHERE organization_id = %s ORDER BY customer_id DESC LIMIT 100)",
                    [later, org.pk, org.pk],
                )
            out["sync page, 100 changed: new (with change rows)"] = statistics.median(
                _sync_page(later, True) for _ in range(args.n)
            )
            with connection.cursor() as cursor:
                # the same 100 changed the old way: their rows rewritten
                cursor.execute(
                    "UPDATE customers_customer SET updated_at = %s WHERE organization_id = %s "
                    "AND id IN (SELECT id FROM customers_customer WHERE organization_id = %s "
                    "ORDER BY id DESC LIMIT 100)",
                    [later, org.pk, org.pk],
                )
            out["sync page, 100 changed: old (updated_at)"] = statistics.median(
                _sync_page(later, False) for _ in range(args.n)
            )
            return out

        try:
            results.update(_in_rollback(reads))
        except Exception as exc:  # noqa: BLE001 - a bench reports and goes on
            print(f"reads skipped: {exc}", flush=True)
    print(f"{'what':<52} {'seconds':>9} {'× baseline':>11}")
    base = 1.0
    for label, seconds in results.items():
        if label.startswith(("baseline", "sync page, all changed: old")):
            base = seconds  # each group's first row is its baseline
        print(f"{label:<52} {seconds:>9.3f} {seconds / base:>11.3f}")


if __name__ == "__main__":
    main()
