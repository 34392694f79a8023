"""Security defaults: production settings, password hashing, cookies.

Settings are read once per process, so production is checked in a subprocess
with its own environment.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

PROBE = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.PASSWORD_HASHERS[0]); print(s.DEBUG); print(s.SESSION_COOKIE_SECURE); "
    "print(s.CSRF_COOKIE_SECURE); print(s.SECURE_SSL_REDIRECT)"
)


def _run(args: list[str], tmp_path, **env_overrides) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "SECRET_KEY",
            "ALLOWED_HOSTS",
            "SITE_URL",
            "DJANGO_ENV",
            "SEGMENTA_DB_ROLE",
            "DEBUG",
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        }
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SEGMENTA_VAR_DIR=str(tmp_path / "var"),
        **env_overrides,
    )
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "a-production-secret-that-is-long-and-random-enough-0123456789-abcdefghij",
    "ALLOWED_HOSTS": "segmenta.example.com",
    "SITE_URL": "https://segmenta.example.com",
}


def test_check_deploy_is_clean_in_production(tmp_path):
    result = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path, **PRODUCTION
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output


def test_production_settings_are_secure(tmp_path):
    result = _run(["-c", PROBE], tmp_path, **PRODUCTION)
    assert result.returncode == 0, result.stderr
    hasher, debug, session_secure, csrf_secure, ssl_redirect = result.stdout.split()
    assert hasher == "django.contrib.auth.hashers.Argon2PasswordHasher"
    assert (debug, session_secure, csrf_secure, ssl_redirect) == ("False", "True", "True", "True")


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS", "SITE_URL"])
def test_production_refuses_to_start_without(missing, tmp_path):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = _run(["-c", PROBE], tmp_path, **env)
    assert result.returncode != 0
    assert f"{missing} must be set" in result.stderr


def test_production_site_url_is_what_emails_link_to(tmp_path):
    probe = (
        "import django; django.setup(); from django.conf import settings as s; print(s.SITE_URL)"
    )
    result = _run(["-c", probe], tmp_path, **{**PRODUCTION, "SITE_URL": "https://shop.example/"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "https://shop.example"


def test_argon2_first_outside_tests(tmp_path):
    result = _run(["-c", PROBE], tmp_path)  # development, not under pytest
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"


def test_tests_use_a_fast_hasher_but_keep_argon2():
    assert settings.PASSWORD_HASHERS[0].endswith("MD5PasswordHasher")
    assert "django.contrib.auth.hashers.Argon2PasswordHasher" in settings.PASSWORD_HASHERS


def test_session_and_csrf_cookies_are_not_readable_by_scripts_of_other_sites():
    assert settings.SESSION_COOKIE_HTTPONLY
    assert settings.SESSION_COOKIE_SAMESITE == "Lax"
    assert settings.X_FRAME_OPTIONS == "DENY"


@pytest.mark.django_db
def test_pages_cannot_be_framed(client):
    response = client.get("/accounts/login/")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
def test_forms_need_a_csrf_token(owner):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post("/accounts/settings/", {"name": "Hijacked"})
    assert response.status_code == 403
    owner.current_organization.refresh_from_db()
    assert owner.current_organization.name == "Acme Gifts"
