"""One organisation restored into a fresh installation (docs/backups.md): the
archive `org_backup` writes here is restored by `org_restore` in another process,
into a separate PostgreSQL database migrated for the purpose, as the application
role; the restored organisation's customers, orders, lines, segment memberships
and predictions, read there, are exactly the source's.

PostgreSQL only: it creates the database as the superuser on 127.0.0.1 (trust on
loopback, as scripts/services.sh sets up) and drops it at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
from django.db import connection

from accounts.tenancy import tenant_context
from customers.services import backup
from segmentation.tests.factories import planted_customers

ROOT = Path(__file__).resolve().parents[2]
PG = dict(host=os.environ.get("PG_HOST", "127.0.0.1"), port=int(os.environ.get("PG_PORT", "5432")))
SUPERUSER = os.environ.get("PG_SUPERUSER", "postgres")

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        os.environ.get("DATABASE_URL", "").split(":")[0] not in ("postgres", "postgresql")
        or not os.environ.get("DATABASE_OWNER_URL"),
        reason="PostgreSQL with its roles only",
    ),
]

SNAPSHOT = """
import json, os, sys
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
from accounts.models import Organization
from accounts.tenancy import tenant_context
from customers.services.backup import organization_snapshot
org = Organization.objects.get(slug=sys.argv[1])
with tenant_context(org):
    print(json.dumps(organization_snapshot(), default=str, sort_keys=True))
"""


def _url(name: str, database: str) -> str:
    parts = urlparse(os.environ[name])
    return urlunparse(parts._replace(path=f"/{database}"))


def _normal(snapshot: dict) -> dict:
    return json.loads(json.dumps(snapshot, default=str, sort_keys=True))


def test_restore_into_a_fresh_database_gives_the_same_organisation(org, tmp_path):
    planted_customers(org, n_customers=120)
    with tenant_context(org):
        from segmentation.pipeline import pipeline_start

        result = pipeline_start(organization=org, steps=["segments", "predictions"], sync=True)
        assert result["status"] == "succeeded", result
    archive = tmp_path / "acme.zip"
    backup.organization_backup(organization=org, path=archive)
    with tenant_context(org):
        before = _normal(backup.organization_snapshot())
    assert before["memberships"] and before["predictions"]

    fresh = f"{connection.settings_dict['NAME']}_fresh_{os.getpid()}"[:63]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "DJANGO_ENV", "SEGMENTA_DB_ROLE")
    }
    env.update(
        DJANGO_ENV="development",
        SEGMENTA_VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=_url("DATABASE_URL", fresh),
        DATABASE_OWNER_URL=_url("DATABASE_OWNER_URL", fresh),
    )
    if os.environ.get("DATABASE_PLATFORM_URL"):
        env["DATABASE_PLATFORM_URL"] = _url("DATABASE_PLATFORM_URL", fresh)
    owner = urlparse(os.environ["DATABASE_OWNER_URL"]).username

    def run(*args: str) -> str:
        done = subprocess.run(  # noqa: S603 - this interpreter, our own manage.py
            [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    with psycopg.connect(**PG, user=SUPERUSER, dbname="postgres", autocommit=True) as su:
        su.execute(f'CREATE DATABASE "{fresh}" OWNER "{owner}"')
    try:
        run("manage.py", "migrate", "--no-input", "-v", "0")
        out = run("manage.py", "org_restore", str(archive), "--owner", "new@example.test")
        restored = json.loads(out.strip().splitlines()[-1])
        assert restored["differences"] == {}
        after = json.loads(run("-c", SNAPSHOT, restored["organization"]["slug"]))
        for part in before:
            assert after[part] == before[part], part
    finally:
        with psycopg.connect(**PG, user=SUPERUSER, dbname="postgres", autocommit=True) as su:
            su.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
