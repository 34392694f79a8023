"""The schema stays ready to be distributed by organisation (Citus) or partitioned
by it (docs/database-distribution.md).

Distributed PostgreSQL shards a table on one column (here `organization_id`) and
needs it in every primary and unique key and in every foreign key between two
distributed tables; tables without it become *reference* tables (a copy on every
node), and a reference table may not point at a distributed one. These tests read
the models (both databases) and, on PostgreSQL, the catalogue, and fail when a new
table breaks a rule. The known exceptions are listed here with the reason.
"""

from __future__ import annotations

import os

import pytest
from django.apps import apps
from django.db import connection

from accounts.tenancy import TenantModel
from core.partitioning import LARGE_TABLES

# Platform tables a tenant table may point at: under Citus, reference tables.
REFERENCE_TABLES = {
    "accounts_organization",
    "accounts_user",
    "accounts_apikey",
}
# Unique keys without organization_id, and why they are allowed for now.
UNIQUE_EXCEPTIONS = {
    # The tracking token in an e-mail's links is looked up before the organisation
    # is known (open/click pixels). Distributed: a small lookup table token →
    # (organization_id, delivery id), or the organisation id inside the token.
    ("campaigns_delivery", ("token",)),
    # One insight per feedback (OneToOne): the pair (organization_id, feedback_id)
    # is as unique; the constraint would gain organization_id in a migration of
    # research (not a large table).
    ("research_feedbackinsight", ("feedback",)),
}


def _models(tenant: bool):
    return [
        m
        for m in apps.get_models()
        if m._meta.managed and not m._meta.proxy and issubclass(m, TenantModel) == tenant
    ]


def _unique_keys(model) -> list[tuple[str, ...]]:
    keys = [(f.name,) for f in model._meta.concrete_fields if f.unique and not f.primary_key]
    keys += [tuple(u) for u in model._meta.unique_together]
    keys += [
        tuple(c.fields)
        for c in model._meta.constraints
        if c.__class__.__name__ == "UniqueConstraint" and c.fields
    ]
    return keys


def test_every_unique_key_of_a_tenant_table_includes_the_organisation():
    breaking = sorted(
        (m._meta.db_table, key)
        for m in _models(tenant=True)
        for key in _unique_keys(m)
        if "organization" not in key and "organization_id" not in key
    )
    unexpected = [b for b in breaking if b not in UNIQUE_EXCEPTIONS]
    assert not unexpected, (
        "These unique keys do not include organization: a partitioned or distributed "
        f"table cannot enforce them (add organization, or list the reason): {unexpected}"
    )
    stale = UNIQUE_EXCEPTIONS - set(breaking)
    assert not stale, f"Exceptions no longer needed (remove them): {sorted(stale)}"


def test_unique_keys_of_tenant_tables_lead_with_the_organisation():
    """Leading, not only included: the key's index then serves one organisation's
    lookups, and the partition key is its first column."""
    trailing = sorted(
        (m._meta.db_table, key)
        for m in _models(tenant=True)
        for key in _unique_keys(m)
        if ("organization" in key or "organization_id" in key)
        and key[0] not in ("organization", "organization_id")
    )
    assert not trailing, trailing


def test_tenant_tables_point_only_at_tenant_or_reference_tables():
    breaking = sorted(
        (m._meta.db_table, f.name, f.related_model._meta.db_table)
        for m in _models(tenant=True)
        for f in m._meta.concrete_fields
        if f.is_relation
        and not issubclass(f.related_model, TenantModel)
        and f.related_model._meta.db_table not in REFERENCE_TABLES
    )
    assert not breaking, (
        "A tenant table points at a platform table that is not a reference table "
        f"(add it to REFERENCE_TABLES and to the doc, or make it a tenant table): {breaking}"
    )


def test_no_platform_table_points_at_a_tenant_table():
    """A reference (or local) table cannot have a foreign key into a distributed one,
    and a row of it would outlive the organisation's partition."""
    breaking = sorted(
        (m._meta.db_table, f.name, f.related_model._meta.db_table)
        for m in _models(tenant=False)
        for f in m._meta.concrete_fields
        if f.is_relation and issubclass(f.related_model, TenantModel)
    )
    assert not breaking, breaking


def test_the_large_tables_are_tenant_tables_with_an_id():
    tables = {m._meta.db_table: m for m in _models(tenant=True)}
    for table in LARGE_TABLES:
        assert table in tables, table
        assert tables[table]._meta.pk.name == "id", table


@pytest.mark.django_db
@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").split(":")[0] not in ("postgres", "postgresql"),
    reason="PostgreSQL only",
)
def test_catalogue_unique_indexes_of_tenant_tables_include_the_organisation():
    """The same rule on what PostgreSQL holds (unique indexes made in raw SQL or a
    RunSQL migration included); primary keys are the one known exception (`id`,
    see the doc: (organization_id, id) only when a table is partitioned)."""
    from accounts.signals import tenant_tables

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, i.indexrelid::regclass::text,
              ARRAY(SELECT a.attname FROM unnest(i.indkey) k(n)
                    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n)
            FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
            WHERE i.indisunique AND NOT i.indisprimary AND c.relname = ANY(%s)
            """,
            [tenant_tables()],
        )
        rows = cursor.fetchall()
    allowed = {
        (t, f"{col}_id" if not col.endswith("_id") and col != "token" else col)
        for t, key in UNIQUE_EXCEPTIONS
        for col in key
    }
    breaking = sorted(
        (table, index, cols)
        for table, index, cols in rows
        if "organization_id" not in cols and not any((table, c) in allowed for c in cols)
    )
    assert not breaking, breaking
