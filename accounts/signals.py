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


def _app_role() -> str:
    if settings.DATABASE_APP_ROLE:
        return settings.DATABASE_APP_ROLE
    import os

    url = os.environ.get("DATABASE_URL", "")
    owner = os.environ.get("DATABASE_OWNER_URL", "")
    if url and owner:
        return urlparse(url).username or ""
    return ""


@receiver(post_migrate)
def apply_row_level_security(sender, using="default", **kwargs):
    if sender.name != "accounts" or connection.vendor != "postgresql":
        return
    role = _app_role()
    existing = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        for table in (t for t in tenant_tables() if t in existing):
            for statement in enable_sql(table):
                cursor.execute(statement)
        if role:
            quoted = connection.ops.quote_name(role)
            cursor.execute(f"GRANT USAGE ON SCHEMA public TO {quoted}")
            cursor.execute(
                f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO {quoted}"
            )
            cursor.execute(
                f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {quoted}"
            )
    log.info("rls.applied tables=%s role=%s", len(tenant_tables()), role or "(connection role)")


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
