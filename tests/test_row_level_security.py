"""PostgreSQL row-level security: the second wall behind the scoped managers."""

import os

import pytest
from django.db import DatabaseError, connection, transaction

from accounts.signals import tenant_tables
from accounts.tenancy import no_tenant_context, tenant_context, unscoped_context
from accounts.tests.factories import OrganizationFactory
from core.models import Job

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        os.environ.get("DATABASE_URL", "").split(":")[0] not in ("postgres", "postgresql"),
        reason="PostgreSQL only",
    ),
]


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608 - fixed table name
        return cursor.fetchone()[0]


@pytest.fixture
def two_orgs():
    a, b = OrganizationFactory(), OrganizationFactory()
    with tenant_context(a):
        Job.objects.create(kind="demo")
    with tenant_context(b):
        Job.objects.create(kind="demo")
    return a, b


def test_application_role_is_bound_by_rls():
    if not os.environ.get("DATABASE_OWNER_URL"):
        pytest.skip("services mode only: the app role is separate from the owner role")
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        superuser, bypass = cursor.fetchone()
    assert not superuser and not bypass


def test_every_tenant_table_forces_rls():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relrowsecurity AND relforcerowsecurity AND relname = ANY(%s)",
            [tenant_tables()],
        )
        forced = {row[0] for row in cursor.fetchall()}
    assert forced == set(tenant_tables())


def test_raw_query_without_organisation_sees_no_tenant_rows(two_orgs):
    with no_tenant_context():
        assert _count("core_job") == 0


def test_raw_query_sees_only_the_current_organisation(two_orgs):
    a, b = two_orgs
    with tenant_context(a):
        assert _count("core_job") == 1
        with connection.cursor() as cursor:
            cursor.execute("SELECT DISTINCT organization_id FROM core_job")
            assert [r[0] for r in cursor.fetchall()] == [a.pk]
    with unscoped_context():
        assert _count("core_job") == 2


def test_cannot_write_a_row_into_another_organisation(two_orgs):
    a, b = two_orgs
    with tenant_context(b), pytest.raises(DatabaseError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO core_job (organization_id, kind, title, status, progress, message, result, params, "
                "cancel_requested, attempts, task_id, created_at) VALUES (%s, 'x', '', 'queued', 0, '', '{}', '{}', "
                "false, 0, '', now())",
                [a.pk],
            )
