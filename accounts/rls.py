"""PostgreSQL row-level security: the second wall behind the scoped managers.

Every statement on a PostgreSQL connection is preceded, in the same transaction,
by `set_config('segmenta.org_id', <current organisation>, true)` and
`set_config('segmenta.rls_bypass', 'on'|'off', true)` (transaction-local, so a
pooled connection never carries one tenant's setting into another's request).
A statement outside a transaction is wrapped in one for that purpose.

Policies on each tenant table admit a row when its `organization_id` equals the
setting, or when the bypass is on (the escape hatch). With nothing set, no
tenant row is visible and none can be written.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connections, transaction
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from . import tenancy

ORG_SETTING = "segmenta.org_id"
BYPASS_SETTING = "segmenta.rls_bypass"
_SET_SQL = f"SELECT set_config('{ORG_SETTING}', %s, true), set_config('{BYPASS_SETTING}', %s, true)"


_NO_TRANSACTION = (
    "CREATE DATABASE",
    "DROP DATABASE",
    "VACUUM",
    "CREATE INDEX CONC",
    "DROP INDEX CONC",
)


def _scope_values() -> tuple[str, str]:
    org_id = tenancy.current_organization_id()
    bypass = tenancy.bypass_active() or (_TEST_CODE_IS_PLATFORM and tenancy.scope_never_set())
    return ("" if org_id is None else str(org_id), "on" if bypass else "off")


# In the test process only, the tests' own code (fixtures, assertions) plays the
# platform, like the back office: statements made where no scope was ever set
# bypass the policies. Every request, job and command sets a scope of its own
# (an empty one included), so the code under test stays bound by them; the RLS
# tests set an empty scope explicitly (`no_tenant_context`).
_TEST_CODE_IS_PLATFORM = getattr(settings, "TESTING", False)


def _wrapper(execute, sql, params, many, context):
    connection = context["connection"]
    raw_cursor = context["cursor"]
    if (
        getattr(connection, "_segmenta_in_wrapper", False)
        or connection.alias not in connections.settings
        or (isinstance(sql, str) and sql.lstrip()[:16].upper().startswith(_NO_TRANSACTION))
    ):
        # Nested, on a maintenance connection, or a statement that cannot run
        # inside a transaction block (none of them touch tenant rows).
        return execute(sql, params, many, context)
    connection._segmenta_in_wrapper = True
    try:
        if connection.get_autocommit():
            with transaction.atomic(using=connection.alias):
                raw_cursor.execute(_SET_SQL, _scope_values())
                return execute(sql, params, many, context)
        raw_cursor.execute(_SET_SQL, _scope_values())
        return execute(sql, params, many, context)
    finally:
        connection._segmenta_in_wrapper = False


@receiver(connection_created)
def _install(sender, connection, **kwargs):
    if connection.vendor == "postgresql":
        connection.execute_wrappers.append(_wrapper)


def enable_sql(table: str) -> list[str]:
    """Statements that put `table` under row-level security."""
    policy = f"{table}_tenant_isolation"
    check = (
        f"current_setting('{BYPASS_SETTING}', true) = 'on' OR organization_id = "
        f"NULLIF(current_setting('{ORG_SETTING}', true), '')::bigint"
    )
    return [
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
        f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY',
        f'DROP POLICY IF EXISTS {policy} ON "{table}"',
        f'CREATE POLICY {policy} ON "{table}" USING ({check}) WITH CHECK ({check})',
    ]
