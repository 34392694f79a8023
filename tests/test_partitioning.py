"""PostgreSQL declarative partitioning by organisation (`db_partition`,
core/partitioning.py, docs/database-distribution.md).

Each test converts the large tenant tables of the test database (inside the
test's transaction, so the next test finds them as the migrations made them),
then runs the application's own paths against them as the row-level-security
application role: a file import, the History reads, a segment run, an erasure,
an organisation's deletion, and the isolation of another organisation's rows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re

import pytest
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, connection, transaction

from accounts.models import Organization
from accounts.tenancy import tenant_context, unscoped_context
from core.partitioning import LARGE_TABLES, PartitionError, partition_table, partitioned_tables
from customers.history import History
from customers.models import Customer, Order, OrderLine
from segmentation.tests.factories import planted_customers

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        os.environ.get("DATABASE_URL", "").split(":")[0] not in ("postgres", "postgresql"),
        reason="PostgreSQL only",
    ),
]

PARTS = 4
AS_OF = dt.date(2024, 6, 30)


def _sql(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _counts() -> dict[tuple[str, int], int]:
    """Rows per (table, organisation), as the platform sees them."""
    out = {}
    with unscoped_context():
        for table in LARGE_TABLES:
            for org, n in _sql(
                f'SELECT organization_id, count(*) FROM "{table}" GROUP BY 1'  # noqa: S608
            ):
                out[(table, org)] = n
    return out


def _partition_all() -> list[dict]:
    return [partition_table(table, PARTS) for table in LARGE_TABLES]


@pytest.fixture
def shops(org, other_org):
    planted_customers(org, n_customers=120, seed=7)
    planted_customers(other_org, n_customers=60, seed=3)
    return org, other_org


def _history(org) -> tuple:
    with tenant_context(org):
        history = History(org, AS_OF)
        purchases = history.purchases()
        lines = history.order_lines()
    return (
        sorted(zip(purchases.customer_ids.tolist(), purchases.amounts.tolist(), strict=True)),
        len(lines),
        round(float(lines["amount"].sum()), 4),
        sorted(set(lines["customer_id"].tolist())),
    )


def test_conversion_keeps_rows_keys_and_row_level_security(shops):
    org, other = shops
    before = _counts()
    ids_before = {t: _sql(f'SELECT id FROM "{t}" ORDER BY id') for t in LARGE_TABLES}  # noqa: S608
    results = _partition_all()

    assert [r["status"] for r in results] == ["partitioned"] * len(LARGE_TABLES)
    assert partitioned_tables() == dict.fromkeys(LARGE_TABLES, PARTS)
    assert _counts() == before
    assert {t: _sql(f'SELECT id FROM "{t}" ORDER BY id') for t in LARGE_TABLES} == ids_before  # noqa: S608
    for table in LARGE_TABLES:
        (key,) = _sql(
            "SELECT ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o) "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o) "
            "FROM pg_constraint c WHERE c.conrelid = %s::regclass AND c.contype = 'p'",
            [table],
        )
        assert key[0] == ["organization_id", "id"], table
        secured = _sql(
            "SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity, "
            "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) FROM pg_class c "
            "WHERE c.oid = %s::regclass OR c.oid IN "
            "(SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass)",
            [table, table],
        )
        assert len(secured) == PARTS + 1
        assert all(forced and policies == 2 for _, forced, policies in secured), secured
    # FORCE, lifted during each conversion from the tables its keys touch, is back
    from accounts.signals import tenant_tables

    assert (
        _sql(
            "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND NOT relforcerowsecurity",
            [tenant_tables()],
        )
        == []
    )
    # foreign keys into a partitioned table name the organisation too
    fk = _sql(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' "
        "AND conparentid = 0 AND conrelid = 'customers_orderline'::regclass "
        "AND confrelid = 'customers_order'::regclass"
    )
    assert fk == [
        (
            "FOREIGN KEY (organization_id, order_id) REFERENCES "
            "customers_order(organization_id, id) DEFERRABLE INITIALLY DEFERRED",
        )
    ]
    # the identity goes on from where it stood: new ids never repeat old ones
    with tenant_context(org):
        customer = Customer.objects.create(external_id="after-partitioning")
    assert customer.pk > max(i for (i,) in ids_before["customers_customer"])
    # running it again changes nothing
    assert partition_table("customers_orderline", PARTS)["status"] == "already partitioned"
    _another_organisations_rows_stay_invisible(org, other)
    _a_row_cannot_name_a_row_of_another_organisation(org, other)
    _one_organisations_query_touches_one_partition(org, other)


def _another_organisations_rows_stay_invisible(org, other):
    with tenant_context(org):
        assert Customer.objects.count() == 121  # the planted ones and the one made above
        # raw SQL naming the other organisation, through the parent or a partition
        for table in ("customers_customer", "customers_orderline", "customers_event"):
            assert _sql(
                f'SELECT count(*) FROM "{table}" WHERE organization_id = %s',  # noqa: S608
                [other.pk],
            ) == [(0,)]
            seen = set()
            for i in range(PARTS):
                seen |= {
                    o
                    for (o,) in _sql(f'SELECT DISTINCT organization_id FROM "{table}_p{i}"')  # noqa: S608
                }
            assert seen == {org.pk}, table
        # and nothing can be written into it
        with pytest.raises(DatabaseError), transaction.atomic():
            _sql(
                "INSERT INTO customers_customer (organization_id, external_id, email, phone, "
                "first_name, last_name, attributes, orders_count, total_spent, created_at, "
                "updated_at) SELECT %s, 'x', '', '', '', '', '{}', 0, 0, now(), now()",
                [other.pk],
            )
    with tenant_context(other):
        assert Customer.objects.count() == 60


def _a_row_cannot_name_a_row_of_another_organisation(org, other):
    """The composite foreign keys check what the single-column ones could not."""
    with unscoped_context():
        theirs = Order.all_objects.filter(organization=other).first()
        line = OrderLine.all_objects.filter(organization=org).first()
        with pytest.raises(IntegrityError), transaction.atomic():
            _sql("SET CONSTRAINTS ALL IMMEDIATE")
            _sql(
                "UPDATE customers_orderline SET order_id = %s WHERE organization_id = %s AND id = %s",
                [theirs.pk, org.pk, line.pk],
            )


def test_the_application_runs_on_partitioned_tables(shops, owner, capsys):
    from customers.services import customer_erase, import_create, import_start
    from customers.tests.test_import_service import upload
    from segmentation.models import SegmentationRun, SegmentMembership

    org, other = shops
    history_before = _history(org)
    _partition_all()
    # the History reads give what they gave
    assert _history(org) == history_before

    # a file import (COPY into a staging table, then INSERT … ON CONFLICT)
    with tenant_context(org):
        imp = import_create(
            organization=org, kind="orders", uploaded_file=upload("orders_bad_rows.csv"), user=owner
        )
        job = import_start(imp=imp, user=owner, sync=True)
    assert job.status == "succeeded"
    assert (job.result["created"], job.result["rejected"]) == (2, 4)

    # a segment run, the way an operator starts it
    call_command("run_pipeline", "--org", org.slug, "--steps", "segments", "--sync")
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "succeeded"
    with tenant_context(org):
        run = SegmentationRun.objects.get(is_live=True)
        members = SegmentMembership.objects.filter(run=run)
        assert members.values("customer").distinct().count() >= 120
        assert not members.exclude(organization=org).exists()

    # an erasure: personal fields gone, orders kept without identity
    with tenant_context(org):
        customer = Customer.objects.filter(orders_count__gt=0).order_by("pk").first()
        orders = Order.objects.filter(customer=customer).count()
        customer_erase(customer=customer, actor=owner)
        customer.refresh_from_db()
        assert customer.erased_at is not None and customer.email == ""
        assert Order.objects.filter(customer=customer).count() in (0, orders)
        assert customer.pk not in _history(org)[3]

    # the other organisation saw none of it
    counts = _counts()
    assert counts[("customers_customer", other.pk)] == 60
    assert ("segmentation_segmentmembership", other.pk) not in counts
    _deleting_a_customer_and_an_organisation_cascade_through_partitions(org, other)


def _deleting_a_customer_and_an_organisation_cascade_through_partitions(org, other):
    with tenant_context(org):
        customer = Customer.objects.filter(orders_count__gt=0).first()
        pk, orders = customer.pk, Order.objects.filter(customer=customer).count()
        guests = Order.objects.filter(customer=None).count()
        customer.delete()
        assert not Order.objects.filter(customer_id=pk).exists()
        assert not Customer.objects.filter(pk=pk).exists()
        assert Order.objects.filter(customer=None).count() == guests + orders
    before = _counts()
    with unscoped_context():
        Organization.objects.get(pk=org.pk).delete()
    after = _counts()
    assert not [k for k in after if k[1] == org.pk]
    assert {k: v for k, v in before.items() if k[1] == other.pk} == after


def _plan(sql: str, params=()) -> str:
    return "\n".join(r[0] for r in _sql(sql, params))


def _one_organisations_query_touches_one_partition(org, other):
    with tenant_context(org):
        # the organisation named in the query: pruned when the plan is made
        plan = _plan(
            "EXPLAIN (COSTS OFF) SELECT count(*), sum(amount) FROM customers_orderline "
            "WHERE organization_id = %s",
            [org.pk],
        )
        assert len(set(re.findall(r"customers_orderline_p\d+", plan))) == 1, plan
        # named only by row-level security (as the ORM's queries by id are): pruned
        # when the query starts, the other partitions never opened
        plan = _plan(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT count(*) FROM customers_orderline"
        )
        assert f"Subplans Removed: {PARTS - 1}" in plan, plan
        order = Order.objects.first()
        plan = _plan(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT * FROM customers_order WHERE id = %s",
            [order.pk],
        )
        assert f"Subplans Removed: {PARTS - 1}" in plan, plan
        assert "customers_order_pkey" in plan or "Index" in plan, plan


def test_tables_that_cannot_be_partitioned_are_refused():
    with pytest.raises(PartitionError, match="token"):
        partition_table("campaigns_delivery", PARTS)
    with pytest.raises(PartitionError, match="not a tenant table"):
        partition_table("accounts_user", PARTS)
    with pytest.raises(PartitionError, match="no table"):
        partition_table("no_such_table", PARTS)
    with pytest.raises(PartitionError, match="from 2 to"):
        partition_table("customers_event", 1)
    assert partitioned_tables() == {}


def test_the_command(shops, capsys):
    call_command("db_partition", "--table", "customers_event", "--dry-run")
    planned = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert planned["status"] == "planned"
    assert any("PARTITION BY HASH" in s for s in planned["sql"])
    assert partitioned_tables() == {}
    call_command("db_partition", "--table", "customers_event", "--partitions", "3")
    done = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (done["status"], done["partitions"]) == ("partitioned", 3)
    assert done["rows"] == sum(v for (t, _), v in _counts().items() if t == "customers_event")
    with pytest.raises(SystemExit) as exc:
        call_command("db_partition", "--table", "campaigns_delivery")
    assert exc.value.code == 1
    assert "token" in capsys.readouterr().err
