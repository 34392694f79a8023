"""Shared fixtures: organisations, members with each role, clients acting as them."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.tenancy import tenant_context
from accounts.tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    UserFactory,
    make_api_key,
)


def pytest_configure(config):
    """The suite runs on the test settings only (DJANGO_ENV=test, set in
    pyproject.toml through pytest-env): without it the tests would run against the
    development database file and cache, and their fast password hasher would be off."""
    from django.conf import settings

    if settings.DJANGO_ENV != "test":
        raise pytest.UsageError(
            f"DJANGO_ENV is {settings.DJANGO_ENV!r}: the tests need DJANGO_ENV=test "
            "(pyproject.toml sets it through pytest-env; is pytest-env installed?)."
        )


@pytest.fixture(autouse=True)
def _fast_settings(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from celery import current_app

    current_app.conf.task_always_eager = True


@pytest.fixture(autouse=True)
def _fresh_api_throttles(monkeypatch):
    """Each test starts with an empty API rate budget. Organisation ids repeat
    across tests (rolled-back transactions), so a shared cache would carry one
    test's requests into the next one's budget (the schema fuzz test alone makes
    more than a minute's allowance)."""
    from django.core.cache.backends.locmem import LocMemCache
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "cache", LocMemCache(f"throttle-{id(object())}", {}))


@pytest.fixture(autouse=True)
def _fresh_local_cache():
    """Each test starts with an empty cache on the embedded default. SQLite hands out
    the ids of rolled-back rows again, so values cached per organisation, segment and
    run (member counts, migration figures) would carry into the next test's objects
    of the same ids. (PostgreSQL never repeats an id, and its Redis cache also holds
    the broker: it is left alone.)"""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    if isinstance(caches["default"], LocMemCache):
        caches["default"].clear()


@pytest.fixture
def org(db):
    return OrganizationFactory(name="Acme Gifts", slug="acme")


@pytest.fixture
def other_org(db):
    return OrganizationFactory(name="Rival Goods", slug="rival")


def _member(organization, role, email=None):
    user = UserFactory(email=email) if email else UserFactory()
    MembershipFactory(organization=organization, user=user, role=role)
    user.current_organization = organization
    user.save(update_fields=["current_organization"])
    return user


@pytest.fixture
def make_member():
    return _member


@pytest.fixture
def owner(org):
    return _member(org, Role.OWNER, "owner@acme.test")


@pytest.fixture
def viewer(org):
    return _member(org, Role.VIEWER, "viewer@acme.test")


@pytest.fixture
def marketer(org):
    return _member(org, Role.MARKETER, "marketer@acme.test")


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def in_org(org):
    """Run the test body as `org` (the tenant context commands and jobs use)."""
    with tenant_context(org):
        yield org


@pytest.fixture
def api(org):
    """An API client with a write key of `org`."""
    _, raw = make_api_key(org, "write")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


@pytest.fixture
def api_read(org):
    _, raw = make_api_key(org, "read")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client
