"""Fresh planner statistics after a pipeline step's big write (core.dbstats).

A new run's rows are unknown to the planner until the table is analysed; the
application role may not analyse a table it does not own, so it calls
`segmenta_analyze`, which the migrating role owns and which analyses only tenant
tables."""

import os

import pytest
from django.db import DatabaseError, connection, transaction

from accounts.signals import tenant_tables
from accounts.tenancy import tenant_context
from accounts.tests.factories import OrganizationFactory
from core import dbstats
from customers.models import Customer

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        os.environ.get("DATABASE_URL", "").split(":")[0] not in ("postgres", "postgresql"),
        reason="PostgreSQL only",
    ),
]


def _reltuples(table: str) -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [table])
        return cursor.fetchone()[0]


def test_the_application_role_has_a_tenant_table_analysed():
    org = OrganizationFactory()
    with tenant_context(org):
        Customer.objects.bulk_create(
            Customer(organization=org, external_id=f"s{i}") for i in range(50)
        )
        dbstats.statistics_refresh(Customer._meta.db_table)
        # ANALYZE wrote what it counted (reltuples is -1 before any)
        assert _reltuples(Customer._meta.db_table) >= 50
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            role = cursor.fetchone()[0]
    if os.environ.get("DATABASE_OWNER_URL"):
        assert role == os.environ["DATABASE_URL"].split("//")[1].split(":")[0]


def test_only_tenant_tables_are_analysed():
    assert "customers_customer" in tenant_tables()
    org = OrganizationFactory()
    with tenant_context(org):
        for name in ("accounts_user", "django_session", "pg_authid", None):
            with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as c:
                c.execute("SELECT segmenta_analyze(%s)", [name])


def test_a_failed_refresh_is_logged_never_raised(caplog):
    dbstats.statistics_refresh("accounts_user")  # refused: logged
    assert "db.analyze_failed" in caplog.text


def test_a_big_write_schedules_one_refresh_after_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        assert not dbstats.statistics_refresh_after_commit(Customer, dbstats.ANALYZE_AFTER_ROWS - 1)
        assert dbstats.statistics_refresh_after_commit(Customer, dbstats.ANALYZE_AFTER_ROWS)
    assert len(callbacks) == 1


def test_a_big_import_has_its_tables_analysed(
    tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    from customers.services.imports.engine import dry_run, run_file

    monkeypatch.setattr(dbstats, "ANALYZE_AFTER_ROWS", 3)
    refreshed: list[str] = []
    monkeypatch.setattr(dbstats, "statistics_refresh", refreshed.append)
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,email\n1,a@example.com\n2,b@example.com\n3,c@example.com\n")
    org = OrganizationFactory()
    with tenant_context(org):
        with django_capture_on_commit_callbacks(execute=True):
            dry_run(organization=org, path=str(path), kind="customers")
        assert refreshed == []  # a dry run is rolled back: nothing to analyse
        with django_capture_on_commit_callbacks(execute=True):
            run_file(organization=org, path=str(path), kind="customers")
    assert refreshed == ["customers_customer"]
