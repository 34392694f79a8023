"""Which settings apply is chosen by DJANGO_ENV alone, and which database role by
SEGMENTA_DB_ROLE (set by manage.py for the schema commands): never guessed from
the modules loaded (pytest) or the command line.

Settings are read once per process, so each case runs in a subprocess with its
own environment.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

# Imports pytest first, as a test run (or a tool that happens to load it) would.
PROBE = (
    "import pytest, django; django.setup(); from django.conf import settings as s; "
    "print(s.DJANGO_ENV, s.TESTING, s.DEBUG, s.PASSWORD_HASHERS[0].rsplit('.', 1)[1], "
    "s.CACHES['default']['BACKEND'].rsplit('.', 1)[1])"
)
DB_PROBE = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.DATABASES['default']['USER'])"
)
PRODUCTION = {
    "SECRET_KEY": "a-production-secret-that-is-long-and-random-enough-0123456789-abcdefghij",
    "ALLOWED_HOSTS": "segmenta.example.com",
    "SITE_URL": "https://segmenta.example.com",
}
POSTGRES = {
    "DATABASE_URL": "postgres://app_role:pw@127.0.0.1:5432/segmenta",
    "DATABASE_OWNER_URL": "postgres://owner_role:pw@127.0.0.1:5432/segmenta",
}


def _run(args: list[str], tmp_path, **env_overrides) -> subprocess.CompletedProcess:
    dropped = {
        "DJANGO_ENV",
        "SEGMENTA_DB_ROLE",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "SITE_URL",
        "DEBUG",
        "DATABASE_URL",
        "DATABASE_OWNER_URL",
        "DATABASE_PLATFORM_URL",
        "REDIS_URL",
    }
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SEGMENTA_VAR_DIR=str(tmp_path / "var"),
        **env_overrides,
    )
    return subprocess.run(  # noqa: S603 - our own interpreter and settings
        [sys.executable, *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_this_suite_runs_on_the_test_settings():
    assert settings.DJANGO_ENV == "test"
    assert settings.TESTING


def test_test_settings_when_django_env_is_test(tmp_path):
    result = _run(["-c", PROBE], tmp_path, DJANGO_ENV="test")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["test", "True", "False", "MD5PasswordHasher", "LocMemCache"]


@pytest.mark.parametrize("django_env", [None, "development"])
def test_development_settings_even_with_pytest_loaded(django_env, tmp_path):
    overrides = {"DJANGO_ENV": django_env} if django_env else {}
    result = _run(["-c", PROBE], tmp_path, **overrides)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "development",
        "False",
        "True",
        "Argon2PasswordHasher",
        "DatabaseCache",
    ]


def test_production_settings_even_with_pytest_loaded(tmp_path):
    result = _run(["-c", PROBE], tmp_path, DJANGO_ENV="production", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "production",
        "False",
        "False",
        "Argon2PasswordHasher",
        "DatabaseCache",
    ]


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS", "SITE_URL"])
def test_production_still_refuses_to_start_without(missing, tmp_path):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = _run(["-c", PROBE], tmp_path, DJANGO_ENV="production", **env)
    assert result.returncode != 0
    assert f"{missing} must be set when DJANGO_ENV=production" in result.stderr


@pytest.mark.parametrize("django_env", ["prod", "testing", "Production", ""])
def test_an_unknown_environment_is_refused(django_env, tmp_path):
    result = _run(["-c", PROBE], tmp_path, DJANGO_ENV=django_env, **PRODUCTION)
    assert result.returncode != 0
    assert "DJANGO_ENV must be one of development, test, production" in result.stderr


def test_the_command_line_does_not_choose_the_database_role(tmp_path):
    # `python -c ... migrate`: sys.argv[1] is "migrate", but the settings no longer look.
    result = _run(["-c", DB_PROBE, "migrate"], tmp_path, **POSTGRES)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "app_role"


def test_the_owner_role_is_asked_for_explicitly(tmp_path):
    result = _run(["-c", DB_PROBE], tmp_path, SEGMENTA_DB_ROLE="owner", **POSTGRES)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "owner_role"


def test_an_unknown_database_role_is_refused(tmp_path):
    result = _run(["-c", DB_PROBE], tmp_path, SEGMENTA_DB_ROLE="platform", **POSTGRES)
    assert result.returncode != 0
    assert "SEGMENTA_DB_ROLE must be app or owner" in result.stderr


@pytest.mark.parametrize(
    ("command", "role"),
    [("migrate", "owner"), ("createcachetable", "owner"), ("dbshell", "owner"), ("check", None)],
)
def test_manage_py_asks_for_the_owner_for_schema_commands(command, role, monkeypatch):
    import django.core.management

    import manage

    seen = {}
    monkeypatch.delenv("SEGMENTA_DB_ROLE", raising=False)
    monkeypatch.setattr(sys, "argv", ["manage.py", command])
    monkeypatch.setattr(
        django.core.management,
        "execute_from_command_line",
        lambda argv: seen.update(argv=argv, role=os.environ.get("SEGMENTA_DB_ROLE")),
    )
    manage.main()
    assert seen == {"argv": ["manage.py", command], "role": role}
