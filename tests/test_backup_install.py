"""The whole installation's backup (docs/backups.md): scripts/backup.sh dumps a
database holding two organisations, scripts/restore.sh restores it into a new
database, and there the roles and row-level security are intact — every tenant
table still forces it, the policies are the same, the application role sees only
the organisation `segmenta.org_id` names and nothing without it, cannot write into
another organisation — and every table holds the same rows.

PostgreSQL only; it shells out to pg_dump/pg_restore/psql as the superuser on
127.0.0.1 (trust on loopback, as scripts/services.sh sets up) and drops the database
it creates."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from accounts.signals import tenant_tables
from accounts.tenancy import tenant_context
from accounts.tests.factories import OrganizationFactory

ROOT = Path(__file__).resolve().parents[1]
PG = dict(host=os.environ.get("PG_HOST", "127.0.0.1"), port=int(os.environ.get("PG_PORT", "5432")))
SUPERUSER = os.environ.get("PG_SUPERUSER", "postgres")

pytestmark = [
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.skipif(
        os.environ.get("DATABASE_URL", "").split(":")[0] not in ("postgres", "postgresql"),
        reason="PostgreSQL only",
    ),
    pytest.mark.skipif(
        not all(shutil.which(b) for b in ("pg_dump", "pg_restore", "pg_dumpall", "psql")),
        reason="needs the PostgreSQL client programs",
    ),
]


def _su(dbname: str) -> psycopg.Connection:
    return psycopg.connect(**PG, user=SUPERUSER, dbname=dbname, autocommit=True)


def _app(dbname: str) -> psycopg.Connection:
    return psycopg.connect(**PG, user="segmenta_app", password="segmenta_app", dbname=dbname)


def _tables(conn) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        ).fetchall()
    ]


def _digest(conn, table: str) -> tuple[int, str | None]:
    """Rows and a hash of their contents, in a fixed order (the superuser sees all)."""
    return conn.execute(
        f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM \"{table}\" t"  # noqa: S608
    ).fetchone()


def _security(conn) -> dict:
    forced = {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r'"
        ).fetchall()
    }
    policies = sorted(
        conn.execute(
            "SELECT tablename, policyname, roles::text, cmd, qual, with_check FROM pg_policies "
            "WHERE schemaname = 'public'"
        ).fetchall()
    )
    owners = dict(
        conn.execute("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'")
    )
    return {"forced": forced, "policies": policies, "owners": owners}


@pytest.fixture
def two_orgs():
    from customers.tests.factories import CustomerFactory, build_world

    a, b = OrganizationFactory(slug="backup-a"), OrganizationFactory(slug="backup-b")
    for org, extra in ((a, 3), (b, 1)):
        build_world(org)
        with tenant_context(org):
            CustomerFactory.create_batch(extra, organization=org)
    return a, b


def _run(*args: str, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(  # noqa: S603 - our own scripts
        [str(ROOT / args[0]), *args[1:]],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_dump_and_restore_keep_roles_and_row_level_security(two_orgs, tmp_path):
    a, b = two_orgs
    source = connection.settings_dict["NAME"]
    restored = f"{source}_restored_{os.getpid()}"[:63]
    env = {"PG_HOST": PG["host"], "PG_PORT": str(PG["port"]), "PG_SUPERUSER": SUPERUSER}
    backup = tmp_path / "backup"
    _run("scripts/backup.sh", str(backup), env={**env, "DB": source})
    roles = (backup / "roles.sql").read_text()
    assert "NOBYPASSRLS" in roles and "GRANT segmenta_app TO segmenta_platform" in roles
    assert "CREATE ROLE postgres" not in roles  # only our three roles
    try:
        done = _run("scripts/restore.sh", str(backup), restored, env=env)
        assert "forced row-level security" in done.stderr
        # restoring over an existing database is refused
        again = subprocess.run(  # noqa: S603 - our own script
            [str(ROOT / "scripts/restore.sh"), str(backup), restored],
            cwd=ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 1 and "exists" in again.stderr

        with _su(source) as src, _su(restored) as new:
            # the same security: every tenant table forced, the same policies and owners
            before, after = _security(src), _security(new)
            assert after == before
            for table in tenant_tables():
                assert after["forced"][table] == (True, True), table
            assert {p[0] for p in after["policies"]} >= set(tenant_tables())
            # the same rows in every table
            tables = _tables(src)
            assert _tables(new) == tables
            for table in tables:
                assert _digest(new, table) == _digest(src, table), table
            counts = {
                org.pk: src.execute(
                    "SELECT count(*) FROM customers_customer WHERE organization_id = %s", [org.pk]
                ).fetchone()[0]
                for org in (a, b)
            }
            role = new.execute(
                "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'segmenta_app'"
            ).fetchone()
            assert role == (False, False)
        assert counts[a.pk] != counts[b.pk]

        # the application role, connected to the restored database
        with _app(restored) as app:
            for table in tenant_tables():  # nothing without an organisation
                assert app.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] == 0, table  # noqa: S608
            app.commit()
            for org in (a, b):
                with app.transaction():
                    app.execute("SELECT set_config('segmenta.org_id', %s, true)", [str(org.pk)])
                    seen = app.execute(
                        "SELECT organization_id, count(*) FROM customers_customer "
                        "GROUP BY organization_id"
                    ).fetchall()
                    assert seen == [(org.pk, counts[org.pk])]
                    for table in tenant_tables():
                        other = app.execute(
                            f'SELECT count(*) FROM "{table}" WHERE organization_id <> %s',  # noqa: S608
                            [org.pk],
                        ).fetchone()[0]
                        assert other == 0, table
            # nor can it write a row into another organisation
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with app.transaction():
                    app.execute("SELECT set_config('segmenta.org_id', %s, true)", [str(a.pk)])
                    app.execute("UPDATE customers_customer SET organization_id = %s", [b.pk])
    finally:
        with _su("postgres") as su:
            su.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')
