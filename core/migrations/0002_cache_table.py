"""The database cache's table, made by `migrate` itself.

A deployment that ran `migrate` without `createcachetable` answered 500 on
every API request (the throttles read the cache), and a table made later by
`createcachetable` as the owner role was not granted to the application role.
Made here, it exists whenever the schema does, and the grants applied after
every migrate (accounts.signals) cover it like every other table. It holds no
organisation's rows, so no row-level security.
"""

from django.conf import settings
from django.db import migrations

DEFAULT_TABLE = "cache_table"


def _tables() -> list[str]:
    # Always the default name (the cache may be switched to the database later),
    # plus any other database cache table the settings name.
    names = {DEFAULT_TABLE}
    for cache in getattr(settings, "CACHES", {}).values():
        if cache.get("BACKEND", "").endswith("db.DatabaseCache") and cache.get("LOCATION"):
            names.add(cache["LOCATION"])
    return sorted(names)


def create(apps, schema_editor):
    from django.core.management.commands.createcachetable import Command

    command = Command()
    command.verbosity = 0
    for table in _tables():
        # Skips a table that exists (made earlier by createcachetable).
        command.create_table(schema_editor.connection.alias, table, dry_run=False)


def drop(apps, schema_editor):
    existing = set(schema_editor.connection.introspection.table_names())
    for table in _tables():
        if table in existing:
            schema_editor.execute(f"DROP TABLE {schema_editor.quote_name(table)}")


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
