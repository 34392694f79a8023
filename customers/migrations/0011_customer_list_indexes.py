"""Indexes for the customer list, search and member pages of big organisations
(PostgreSQL only; on SQLite this migration does nothing).

Each sort the site and the API offer reads one index in order, with the id as the
tie-break, so a page of 50 stops after 51 rows instead of sorting the organisation
(a million customers sorted on every page view was 0.5–2 s). The search reads
the e-mail, last name and first name indexes by ranges (customers.selectors._starts:
an expression index on UPPER(col) would never be used, as UPPER is not leakproof and
the tables have row-level security). Every index leads with the organisation
(DESIGN: tenancy).

The indexes are built `CONCURRENTLY` (hence `atomic = False`): a running site keeps
writing customers while they are built, and nothing is rewritten. `IF NOT EXISTS`
makes a rerun after an interrupted build harmless (an interrupted concurrent build
leaves an INVALID index: drop it and migrate again).
"""

from django.db import migrations

INDEXES = {
    # the API's default order (newest id first) and cursor pages, segment members by id
    "customer_org_id": "(organization_id, id)",
    # the site's "Most recent order" (customers without orders last)
    "customer_org_recent": "(organization_id, last_order_at DESC NULLS LAST, id DESC)",
    # the API's last_order_at orderings, both directions
    "customer_org_last_order_id": "(organization_id, last_order_at, id)",
    "customer_org_spent_id": "(organization_id, total_spent, id)",
    "customer_org_orders_id": "(organization_id, orders_count, id)",
    "customer_org_created_id": "(organization_id, created_at, id)",
    "customer_org_name_id": "(organization_id, last_name, id)",
    # search: the first name's "starts with" (customers.selectors._starts); the e-mail
    # and last name have theirs (customer_org_email, customer_org_last_name)
    "customer_org_first_name": "(organization_id, first_name)",
}


def _run(schema_editor, statements) -> None:
    """Outside any transaction block, as a concurrent build must be: on the driver's
    own connection (in autocommit here), not through the tenant-scope wrapper, which
    opens a transaction around a statement to set the scope."""
    connection = schema_editor.connection
    connection.ensure_connection()
    assert connection.get_autocommit(), "a concurrent index build needs autocommit"
    for statement in statements:
        connection.connection.execute(statement)


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    _run(
        schema_editor,
        [
            *(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON customers_customer {columns}"
                for name, columns in INDEXES.items()
            ),
            "ANALYZE customers_customer",
        ],
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    _run(schema_editor, [f"DROP INDEX CONCURRENTLY IF EXISTS {name}" for name in INDEXES])


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("customers", "0010_order_shipping_tax")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
