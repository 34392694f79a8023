"""Fewer indexes on the big tables: each one is kept up to date on every insert and
update, and an import or a segment run of a big organisation pays for all of them.

Dropped, because another index begins with the same columns (PostgreSQL reads a
leading part of an index as well as the whole):
- `customer_org_last_order`, `customer_org_spent`, `customer_org_last_name`:
  `customer_org_last_order_id`, `customer_org_spent_id` and `customer_org_name_id`
  (migration 0011) hold the same columns, then the id;
- the lone `organization_id` index of customers, orders, order lines and events
  (the foreign key's default index): every other index of these tables leads with
  the organisation (`accounts.tenancy.organization_field`).

The state changes are Django's; the database side is written here so that the
foreign keys are kept as they are (Django would drop and re-add each, checking every
row of a table again) and the indexes are dropped `CONCURRENTLY` on PostgreSQL
(writes go on meanwhile). On SQLite, where 0011 built nothing, the three sorts get
their (column, id) indexes here instead.
"""

import django.db.models.deletion
from django.db import migrations, models

REDUNDANT = ("customer_org_last_order", "customer_org_spent", "customer_org_last_name")
TABLES = ("customers_customer", "customers_order", "customers_orderline", "customers_event")
SQLITE_SORTS = {
    "customer_org_last_order_id": "(organization_id, last_order_at, id)",
    "customer_org_spent_id": "(organization_id, total_spent, id)",
    "customer_org_name_id": "(organization_id, last_name, id)",
}


def lone_organization_indexes(connection, tables) -> list[str]:
    """The names of the non-unique indexes on exactly (organization_id) of `tables`
    (PostgreSQL), whatever Django named them."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.relname
            FROM pg_index x
            JOIN pg_class t ON t.oid = x.indrelid
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0]
            WHERE t.relname = ANY(%s) AND NOT x.indisunique AND NOT x.indisprimary
              AND x.indnatts = 1 AND a.attname = 'organization_id'
            """,
            [list(tables)],
        )
        return [row[0] for row in cursor.fetchall()]


def drop_indexes(connection, names) -> None:
    """DROP INDEX CONCURRENTLY, outside any transaction block (on the driver's own
    connection, as in 0011)."""
    connection.ensure_connection()
    assert connection.get_autocommit(), "a concurrent index drop needs autocommit"
    for name in names:
        connection.connection.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        drop_indexes(connection, [*REDUNDANT, *lone_organization_indexes(connection, TABLES)])
        return
    for name in REDUNDANT:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')
    for name, columns in SQLITE_SORTS.items():
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON customers_customer {columns}'
        )
    for table in TABLES:
        for name in _sqlite_lone_organization_indexes(connection, table):
            schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


def _sqlite_lone_organization_indexes(connection, table) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA index_list({table})")
        candidates = [row[1] for row in cursor.fetchall() if not row[2]]  # not unique
        names = []
        for name in candidates:
            cursor.execute(f'PRAGMA index_info("{name}")')
            columns = [row[2] for row in cursor.fetchall()]
            if columns == ["organization_id"]:
                names.append(name)
        return names


def backwards(apps, schema_editor):
    connection = schema_editor.connection
    concurrently = "CONCURRENTLY " if connection.vendor == "postgresql" else ""
    statements = [
        f"CREATE INDEX {concurrently}IF NOT EXISTS customer_org_last_order "
        "ON customers_customer (organization_id, last_order_at)",
        f"CREATE INDEX {concurrently}IF NOT EXISTS customer_org_spent "
        "ON customers_customer (organization_id, total_spent)",
        f"CREATE INDEX {concurrently}IF NOT EXISTS customer_org_last_name "
        "ON customers_customer (organization_id, last_name)",
        *(
            f"CREATE INDEX {concurrently}IF NOT EXISTS {table}_organization_id "
            f"ON {table} (organization_id)"
            for table in TABLES
        ),
    ]
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        for statement in statements:
            connection.connection.execute(statement)
    else:
        for statement in statements:
            schema_editor.execute(statement)


def _organization():
    return models.ForeignKey(
        db_index=False,
        editable=False,
        on_delete=django.db.models.deletion.CASCADE,
        related_name="+",
        to="accounts.organization",
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0008_limits_at_least_one"),
        ("customers", "0011_customer_list_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                *(migrations.RemoveIndex(model_name="customer", name=name) for name in REDUNDANT),
                *(
                    migrations.AlterField(
                        model_name=model, name="organization", field=_organization()
                    )
                    for model in ("customer", "event", "order", "orderline")
                ),
            ],
            database_operations=[
                migrations.RunPython(forwards, backwards, elidable=False),
            ],
        )
    ]
