"""PostgreSQL row-level security: the second wall behind the scoped managers."""

import os

import psycopg
import pytest
from django.db import DatabaseError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

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
    # In a scope, as requests and jobs run (the test process's own code plays the platform).
    with no_tenant_context(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
        role, superuser, bypass = cursor.fetchone()
    assert role == os.environ["DATABASE_URL"].split("//")[1].split(":")[0]
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


# --- the app role cannot lift row-level security itself (issue 8, item 22) -----------
def _login(url_variable: str):
    """A connection of our own to the test database, logged in with the role that
    `url_variable` names (no execute wrapper, no Django: what an attacker's SQL gets)."""
    import environ
    import psycopg

    url = os.environ.get(url_variable)
    if not url:
        pytest.skip(f"{url_variable} is not set")
    cfg = environ.Env.db_url_config(url)
    return psycopg.connect(
        host=cfg["HOST"] or "127.0.0.1",
        port=cfg["PORT"] or 5432,
        user=cfg["USER"],
        password=cfg["PASSWORD"],
        dbname=connection.settings_dict["NAME"],
        autocommit=True,
    )


@pytest.mark.django_db(transaction=True)
def test_app_role_cannot_turn_on_the_bypass(two_orgs):
    a, b = two_orgs
    with _login("DATABASE_URL") as app:
        app.execute("SELECT set_config('segmenta.rls_bypass', 'on', false)")
        assert app.execute("SELECT count(*) FROM core_job").fetchone()[0] == 0
        app.execute("SELECT set_config('segmenta.org_id', %s, false)", [str(b.pk)])
        seen = app.execute("SELECT organization_id FROM core_job").fetchall()
        assert seen == [(b.pk,)]
        # Nor can it become the platform role.
        platform = os.environ.get("DATABASE_PLATFORM_URL", "").split("//")[-1].split(":")[0]
        if platform:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(f'SET ROLE "{platform}"')


def test_bypass_setting_inside_a_scoped_transaction_changes_nothing(two_orgs):
    """An injected statement runs after the wrapper's settings, in the same
    transaction: turning the old bypass setting on there must not widen it."""
    a, b = two_orgs
    with tenant_context(b), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('segmenta.rls_bypass', 'on', false)")
        with connection.connection.cursor() as raw:  # past the wrapper, same transaction
            raw.execute("SELECT organization_id FROM core_job")
            assert raw.fetchall() == [(b.pk,)]


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_platform_code_reads_every_organisation_through_the_platform_role(two_orgs, settings):
    settings.PLATFORM_DATABASE_ALIAS = "platform"
    with unscoped_context():
        jobs = Job.all_objects.all()
        assert jobs.db == "platform"
        assert {j.organization_id for j in jobs} == {o.pk for o in two_orgs}
    with _login("DATABASE_PLATFORM_URL") as platform:
        assert platform.execute("SELECT count(*) FROM core_job").fetchone()[0] == 2


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_back_office_overview_counts_every_organisation_through_the_platform_role(client, settings):
    """The admin runs in the escape hatch: as in production, the organisations
    overview's usage figures come through the platform login, which sees both
    organisations' rows (customer records themselves need a support grant:
    backoffice/tests/test_support_admin.py)."""
    from accounts.tests.factories import UserFactory
    from customers.tests.factories import CustomerFactory

    settings.PLATFORM_DATABASE_ALIAS = "platform"
    a, b = OrganizationFactory(name="Alpha Teas"), OrganizationFactory(name="Beta Bikes")
    for org, count in ((a, 2), (b, 3)):
        with tenant_context(org):
            for i in range(count):
                CustomerFactory(external_id=f"{org.slug}-{i}")
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    with CaptureQueriesContext(connections["platform"]) as platform:
        page = client.get("/admin/accounts/organization/", {"o": "1"})
    assert page.status_code == 200
    assert b"Alpha Teas" in page.content and b"Beta Bikes" in page.content
    assert page.context["cl"].result_count == 2
    counts = {o.name: o.customers for o in page.context["cl"].result_list}
    assert counts == {"Alpha Teas": 2, "Beta Bikes": 3}
    assert any('FROM "customers_customer"' in q["sql"] for q in platform.captured_queries)


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_iterator_outside_a_transaction_reads_the_current_organisation(two_orgs):
    """`.iterator()` reads through a server-side cursor: the scope must still be set
    (the execute wrappers get Django's CursorWrapper, not the driver's cursor; looking
    at the wrapper alone left the scope unset, so outside a transaction such a read
    saw no rows). The "app" alias logs in as the application role, as production does."""
    a, b = two_orgs
    app = connections["app"]
    app.ensure_connection()
    assert app.get_autocommit()
    for org in (a, b):
        with tenant_context(org):
            seen = [
                job.organization_id for job in Job.objects.using("app").all().iterator(chunk_size=1)
            ]
        assert seen == [org.pk]
