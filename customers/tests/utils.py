from django.db import connection


def missing_related_tables(model) -> list[str]:
    """Tables of models that point at `model` but are not migrated yet (another
    app's work in progress): deleting a `model` row would fail on them."""
    tables = set(connection.introspection.table_names())
    related = [
        f.related_model._meta.db_table
        for f in model._meta.get_fields(include_hidden=True)
        if f.auto_created and not f.concrete and f.related_model
    ]
    return sorted({t for t in related if t not in tables})
