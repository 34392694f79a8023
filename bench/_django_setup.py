"""Django for a benchmark run as `python bench/<name>.py`: production-like settings
(DEBUG off), a temporary var folder (removed by `cleanup()`), and the schema on the
embedded SQLite default (synced, fast) or on PostgreSQL when DATABASE_URL names it
(migrated as DATABASE_OWNER_URL, the schema owner)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_TEMP_DIRS: list[str] = []


def setup_django(prefix: str) -> str:
    """Set Django up; returns "sqlite" or "postgresql"."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DEBUG"] = "0"  # as in production: no query log, no debug tooling
    _TEMP_DIRS.append(tempfile.mkdtemp(prefix=prefix))
    os.environ["SEGMENTA_VAR_DIR"] = _TEMP_DIRS[0]
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        if not os.environ.get("DATABASE_OWNER_URL"):
            sys.exit("PostgreSQL needs DATABASE_OWNER_URL (the schema owner) to migrate")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=os.environ, check=True
        )
        engine = "postgresql"
    else:
        os.environ.pop("DATABASE_URL", None)  # the embedded SQLite default
        os.environ.pop("REDIS_URL", None)
        engine = "sqlite"
    import django

    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["*"]
    if engine == "sqlite":
        from django.apps import apps
        from django.core.management import call_command

        settings.MIGRATION_MODULES = {a.label: None for a in apps.get_app_configs()}
        call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
        call_command("createcachetable", verbosity=0)
    logging.getLogger("django.request").setLevel(logging.ERROR)
    return engine


def cleanup() -> None:
    """Remove the temporary var folder (the SQLite database and files)."""
    while _TEMP_DIRS:
        shutil.rmtree(_TEMP_DIRS.pop(), ignore_errors=True)


def setup_django_big_org() -> None:
    """Django for a benchmark of an organisation already in the PostgreSQL database
    DATABASE_URL names (made by bench/_bigorg.py): production-like settings, no
    migration, no temporary folder."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DEBUG"] = "0"
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("DATABASE_URL must name the PostgreSQL database holding the big organisation")
    import django

    django.setup()


class Rollback(Exception):
    """Raised to leave a transaction that a benchmark's writes must not outlive."""
