"""Search keys: a search term is one index range over its whole length (issue 15).

`first_name_key` and `last_name_key` are the names with A–Z lowered, stored and kept
up to date by the database (generated columns), compared byte by byte
(customers.searchkeys); `email`, stored lower-case, is compared byte by byte too. Each
key has an index leading with the organisation. The first name's plain index
(`customer_org_first_name`, migration 0011) served only the search, which now reads
the key: it is dropped.

PostgreSQL: one `ALTER TABLE` adds both columns and sets the e-mail's collation, so
the table is rewritten once (with its indexes) under an exclusive lock: the customers
table can be neither read nor written meanwhile (24 s for 1,000,000 customers on the
2-core test machine at load average 5); run it when the shops are quiet. The two
indexes are then built `CONCURRENTLY` (writes go on), and the table analysed so that
the planner knows the new columns. `IF [NOT] EXISTS` makes a rerun after an interruption harmless (an
interrupted concurrent build leaves an INVALID index: drop it and migrate again).

SQLite: Django's own operations (each rebuilds the table), then the sort indexes of
0012, which a rebuild drops as they are not in the models' state.
"""

from django.db import migrations, models

import customers.searchkeys

KEYS = {"first_name_key": "first_name", "last_name_key": "last_name"}
INDEXES = {
    "customer_org_first_key": "(organization_id, first_name_key)",
    "customer_org_last_key": "(organization_id, last_name_key)",
}
# built by 0011 on PostgreSQL for the first name's search ranges, not in the state
OLD_FIRST_NAME_INDEX = "customer_org_first_name"
SQLITE_SORTS = {  # as customers 0012 builds them on SQLite
    "customer_org_last_order_id": "(organization_id, last_order_at, id)",
    "customer_org_spent_id": "(organization_id, total_spent, id)",
    "customer_org_name_id": "(organization_id, last_name, id)",
}


class OnSQLite:
    """A Django operation whose database part runs on SQLite only (PostgreSQL's is
    written out in `postgresql_forwards`); its state change runs everywhere."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "sqlite":
            super().database_forwards(app_label, schema_editor, from_state, to_state)  # type: ignore[misc]

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "sqlite":
            super().database_backwards(app_label, schema_editor, from_state, to_state)  # type: ignore[misc]


class AddFieldOnSQLite(OnSQLite, migrations.AddField):
    pass


class AlterFieldOnSQLite(OnSQLite, migrations.AlterField):
    pass


class AddIndexOnSQLite(OnSQLite, migrations.AddIndex):
    pass


def _autocommit(connection, statements) -> None:
    """Outside any transaction block, as a concurrent build must be: on the driver's
    own connection (as in 0011)."""
    connection.ensure_connection()
    assert connection.get_autocommit(), "a concurrent index build needs autocommit"
    for statement in statements:
        connection.connection.execute(statement)


def postgresql_forwards(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    model = apps.get_model("customers", "Customer")  # the state with the keys
    alter = []
    for name in KEYS:
        field = model._meta.get_field(name)
        definition, params = schema_editor.column_sql(model, field, include_default=False)
        assert not params
        alter.append(
            f"ADD COLUMN IF NOT EXISTS {schema_editor.quote_name(field.column)} {definition}"
        )
    alter.append('ALTER COLUMN email TYPE varchar(254) COLLATE "C"')
    # one rewrite of the table for all three (each would be one on its own)
    schema_editor.execute(f"ALTER TABLE customers_customer {', '.join(alter)}")
    _autocommit(
        connection,
        [
            *(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON customers_customer {columns}"
                for name, columns in INDEXES.items()
            ),
            f"DROP INDEX CONCURRENTLY IF EXISTS {OLD_FIRST_NAME_INDEX}",
            "ANALYZE customers_customer",
        ],
    )


def postgresql_backwards(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    _autocommit(
        connection,
        [
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {OLD_FIRST_NAME_INDEX} "
            "ON customers_customer (organization_id, first_name)",
            *(f"DROP INDEX CONCURRENTLY IF EXISTS {name}" for name in INDEXES),
        ],
    )
    schema_editor.execute(
        "ALTER TABLE customers_customer "
        + ", ".join(f"DROP COLUMN IF EXISTS {name}" for name in KEYS)
        + ', ALTER COLUMN email TYPE varchar(254) COLLATE "default"'
    )


def sqlite_sort_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for name, columns in SQLITE_SORTS.items():
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON customers_customer {columns}'
        )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("customers", "0012_leaner_indexes")]

    operations = [
        # (backwards, after the SQLite rebuilds below are undone)
        migrations.RunPython(migrations.RunPython.noop, sqlite_sort_indexes, elidable=False),
        AddFieldOnSQLite(
            model_name="customer",
            name="first_name_key",
            field=models.GeneratedField(
                db_persist=True,
                expression=customers.searchkeys.AsciiLower("first_name"),
                output_field=customers.searchkeys.ByteOrderCharField(max_length=150),
            ),
        ),
        AddFieldOnSQLite(
            model_name="customer",
            name="last_name_key",
            field=models.GeneratedField(
                db_persist=True,
                expression=customers.searchkeys.AsciiLower("last_name"),
                output_field=customers.searchkeys.ByteOrderCharField(max_length=150),
            ),
        ),
        AlterFieldOnSQLite(
            model_name="customer",
            name="email",
            field=customers.searchkeys.ByteOrderCharField(blank=True, max_length=254),
        ),
        AddIndexOnSQLite(
            model_name="customer",
            index=models.Index(
                fields=["organization", "first_name_key"], name="customer_org_first_key"
            ),
        ),
        AddIndexOnSQLite(
            model_name="customer",
            index=models.Index(
                fields=["organization", "last_name_key"], name="customer_org_last_key"
            ),
        ),
        migrations.RunPython(postgresql_forwards, postgresql_backwards, elidable=False),
        migrations.RunPython(sqlite_sort_indexes, migrations.RunPython.noop, elidable=False),
    ]
