"""Row-level security policies and grants, applied after every migrate on PostgreSQL.

Done after migrate rather than in each app's migrations so that every model built
on `TenantModel`, now and later, is covered without anyone remembering to.
"""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from django.apps import apps
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db import connection
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from .rls import enable_sql
from .tenancy import TenantModel

log = logging.getLogger("segmenta.rls")


def tenant_tables() -> list[str]:
    return sorted(
        m._meta.db_table
        for m in apps.get_models()
        if issubclass(m, TenantModel) and not m._meta.proxy and m._meta.managed
    )


def _role_of(url: str) -> str:
    return (urlparse(url).username or "") if url else ""


def _roles(connection) -> tuple[str, str]:
    """(application role, platform role) other than the one migrating, if any."""
    import os

    migrating = connection.settings_dict.get("USER") or ""
    app = settings.DATABASE_APP_ROLE or _role_of(os.environ.get("DATABASE_URL", ""))
    platform = settings.DATABASES.get("platform", {}).get("USER") or ""
    return (app if app != migrating else ""), (platform if platform != app else "")


@receiver(post_migrate)
def apply_row_level_security(sender, using="default", **kwargs):
    if sender.name != "accounts" or connection.vendor != "postgresql":
        return
    app_role, platform_role = _roles(connection)
    existing = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        for table in (t for t in tenant_tables() if t in existing):
            for statement in enable_sql(table, platform_role=platform_role):
                cursor.execute(statement)
        for role in {app_role, platform_role} - {"", connection.settings_dict.get("USER")}:
            quoted = connection.ops.quote_name(role)
            cursor.execute(f"GRANT USAGE ON SCHEMA public TO {quoted}")
            cursor.execute(
                f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO {quoted}"
            )
            cursor.execute(
                f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {quoted}"
            )
    _install_analyze(connection, [app_role, platform_role])
    log.info(
        "rls.applied tables=%s app_role=%s platform_role=%s",
        len(tenant_tables()),
        app_role or "(connection role)",
        platform_role or "(none)",
    )


def _install_analyze(connection, roles) -> None:
    """`segmenta_analyze(table)`: lets the application and platform roles have one
    of the tenant tables analysed after a big write (core.dbstats), as the migrating
    role that owns them; any other name is refused."""
    tables = [t for t in tenant_tables() if t in set(connection.introspection.table_names())]
    with connection.cursor() as cursor:
        # table names from model metadata; no parameters, so no "%" is doubled
        allowed = ", ".join(f"'{t}'" for t in tables) or "''"
        cursor.execute(
            "CREATE OR REPLACE FUNCTION segmenta_analyze(name text) RETURNS void "
            "LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$ "
            f"BEGIN IF name IS NULL OR name <> ALL (ARRAY[{allowed}]::text[]) THEN "
            "RAISE EXCEPTION 'not a table Segmenta analyses: %', name; END IF; "
            "EXECUTE format('ANALYZE %I', name); END $$"
        )
        cursor.execute("REVOKE ALL ON FUNCTION segmenta_analyze(text) FROM PUBLIC")
        for role in {r for r in roles if r} - {connection.settings_dict.get("USER")}:
            quoted = connection.ops.quote_name(role)
            cursor.execute(f"GRANT EXECUTE ON FUNCTION segmenta_analyze(text) TO {quoted}")


@receiver(user_logged_in)
def _audit_sign_in(sender, request, user, **kwargs):
    from .services import audit_for_user

    audit_for_user(user=user, action="sign_in", request=request)


@receiver(user_login_failed)
def _audit_failed_sign_in(sender, credentials, request=None, **kwargs):
    from .services import login_failure_record

    login_failure_record(
        email=(credentials or {}).get("username") or (credentials or {}).get("email") or "",
        request=request,
    )
