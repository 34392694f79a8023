"""PostgreSQL row-level security: the second wall behind the scoped managers.

Every statement on a PostgreSQL connection is preceded, in the same transaction,
by `set_config('segmenta.org_id', <current organisation>, true)`
(transaction-local, so a pooled connection never carries one tenant's setting
into another's request). A statement outside a transaction is wrapped in one for
that purpose.

Two policies on each tenant table: one admits a row when its `organization_id`
equals the setting (with nothing set, no tenant row is visible and none can be
written); the other admits every row, but only to the platform role. Nothing the
application role can set lifts the first: an injected
`set_config('segmenta.rls_bypass', 'on')` changes nothing any more. Platform code
(`unscoped_context()`) reaches every organisation by connecting as the platform
role: `PlatformRouter` sends its queries to `settings.PLATFORM_DATABASE_ALIAS`.
"""

from __future__ import annotations

import psycopg
from django.db import connections, transaction
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from . import tenancy

ORG_SETTING = "segmenta.org_id"
_SET_SQL = f"SELECT set_config('{ORG_SETTING}', %s, true)"
# Test process only (see `SCOPED_ROLE` in config/settings.py): the connection logs
# in as the platform and steps down to the application role for scoped work.
_STEP_DOWN_SQL = f"SELECT set_config('role', %s, true), set_config('{ORG_SETTING}', %s, true)"


_NO_TRANSACTION = (
    "CREATE DATABASE",
    "DROP DATABASE",
    "VACUUM",
    "CREATE INDEX CONCURRENTLY",
    "CREATE UNIQUE INDEX CONCURRENTLY",
    "DROP INDEX CONCURRENTLY",
    "REINDEX",
)


def runs_outside_a_transaction(sql) -> bool:
    """Whether the statement cannot run inside a transaction block, so no scope is set
    for it (none of these touch tenant rows). The whole prefix is compared: a cut
    shorter than the longest name once let `CREATE INDEX CONCURRENTLY` be wrapped."""
    if not isinstance(sql, str):
        return False
    head = " ".join(sql.lstrip()[:64].upper().split())
    return head.startswith(_NO_TRANSACTION)


# Savepoint statements touch no rows; after an error the transaction accepts only
# them, so setting the scope first would make every savepoint rollback fail.
_NO_SCOPE = ("SAVEPOINT", "RELEASE", "ROLLBACK")


def _scope_statement(connection) -> tuple[str, list[str]]:
    org_id = tenancy.current_organization_id()
    org = "" if org_id is None else str(org_id)
    scoped_role = connection.settings_dict.get("SCOPED_ROLE")
    if not scoped_role:
        return _SET_SQL, [org]
    # The tests' own code (where no scope was ever set) and unscoped_context play
    # the platform, which this connection logs in as ('none' resets to it); every
    # request, job and command sets a scope of its own (an empty one included),
    # so the code under test runs as the application role, bound by the policies.
    platform = tenancy.bypass_active() or tenancy.scope_never_set()
    return _STEP_DOWN_SQL, ["none" if platform else scoped_role, org]


def _wrapper(execute, sql, params, many, context):
    connection = context["connection"]
    raw_cursor = context["cursor"]
    if (
        getattr(connection, "_segmenta_in_wrapper", False)
        or connection.alias not in connections.settings
        or runs_outside_a_transaction(sql)
        or (isinstance(sql, str) and sql.lstrip()[:9].upper().startswith(_NO_SCOPE))
    ):
        # Nested, on a maintenance connection, or a statement that cannot run
        # inside a transaction block (none of them touch tenant rows).
        return execute(sql, params, many, context)
    connection._segmenta_in_wrapper = True
    try:
        if connection.get_autocommit():
            with transaction.atomic(using=connection.alias):
                _set_scope(connection, raw_cursor)
                return execute(sql, params, many, context)
        _set_scope(connection, raw_cursor)
        return execute(sql, params, many, context)
    finally:
        connection._segmenta_in_wrapper = False


def _set_scope(connection, raw_cursor) -> None:
    statement, values = _scope_statement(connection)
    # The execute wrappers are given Django's CursorWrapper; the driver's cursor is
    # inside it (checking the wrapper itself never saw a server-side cursor, so
    # `.iterator()` outside a transaction read no rows at all).
    if isinstance(getattr(raw_cursor, "cursor", raw_cursor), psycopg.ServerCursor):
        # `.iterator()` reads through a server-side cursor, whose execute() only
        # DECLAREs: the settings would never be applied. A plain cursor of the same
        # connection runs them in the same transaction, before the DECLARE. In
        # autocommit the cursor is WITH HOLD and its rows are computed at the
        # commit, while the transaction-local settings still hold.
        with connection.connection.cursor() as plain:
            plain.execute(statement, values)
    else:
        raw_cursor.execute(statement, values)


@receiver(connection_created)
def _install(sender, connection, **kwargs):
    if connection.vendor == "postgresql":
        connection.execute_wrappers.append(_wrapper)


def enable_sql(table: str, *, platform_role: str = "") -> list[str]:
    """Statements that put `table` under row-level security (and let
    `platform_role`, when given, see and write every row)."""
    policy = f"{table}_tenant_isolation"
    platform = f"{table}_platform"
    check = f"organization_id = NULLIF(current_setting('{ORG_SETTING}', true), '')::bigint"
    statements = [
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
        f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY',
        f'DROP POLICY IF EXISTS {policy} ON "{table}"',
        f'CREATE POLICY {policy} ON "{table}" USING ({check}) WITH CHECK ({check})',
        f'DROP POLICY IF EXISTS {platform} ON "{table}"',
    ]
    if platform_role:
        statements.append(
            f'CREATE POLICY {platform} ON "{table}" TO "{platform_role}" '
            "USING (true) WITH CHECK (true)"
        )
    return statements


class PlatformRouter:
    """Inside `unscoped_context()` every ORM query goes to the platform
    connection (`settings.PLATFORM_DATABASE_ALIAS`); everything else to "default".

    Raw SQL is not routed: platform code that needs it uses
    `connections[tenancy.platform_alias()]`, and so does a transaction around
    platform writes (`transaction.atomic(using=tenancy.platform_alias())`).
    """

    def _alias(self) -> str:
        if not tenancy.bypass_active():
            return "default"
        return tenancy.platform_alias()

    def db_for_read(self, model, **hints):
        return self._alias()

    def db_for_write(self, model, **hints):
        return self._alias()

    def allow_relation(self, obj1, obj2, **hints):
        return True  # every alias is the same database

    def allow_migrate(self, db, app_label, **hints):
        return None if db == "default" else False
