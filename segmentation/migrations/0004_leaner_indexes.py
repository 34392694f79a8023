"""The membership table's lone `organization_id` index is dropped: its other indexes
all lead with the organisation, and each insert of a segment run paid for this one
too. Only the state is Django's (it would drop and re-add the foreign key, checking
every row again); the index goes `CONCURRENTLY` on PostgreSQL, as in customers 0012."""

import importlib

import django.db.models.deletion
from django.db import migrations, models

leaner = importlib.import_module("customers.migrations.0012_leaner_indexes")
TABLES = ("segmentation_segmentmembership",)


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        leaner.drop_indexes(connection, leaner.lone_organization_indexes(connection, TABLES))
        return
    for table in TABLES:
        for name in leaner._sqlite_lone_organization_indexes(connection, table):
            schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


def backwards(apps, schema_editor):
    statement = (
        "CREATE INDEX IF NOT EXISTS segmentation_segmentmembership_organization_id "
        "ON segmentation_segmentmembership (organization_id)"
    )
    schema_editor.connection.ensure_connection()
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.connection.connection.execute(statement)
    else:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0008_limits_at_least_one"),
        ("customers", "0012_leaner_indexes"),
        ("segmentation", "0003_predictions_moved_to_own_app"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="segmentmembership",
                    name="organization",
                    field=models.ForeignKey(
                        db_index=False,
                        editable=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="accounts.organization",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forwards, backwards, elidable=False)],
        )
    ]
