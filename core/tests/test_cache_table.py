"""The database cache works after `migrate` alone (no `createcachetable`)."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.db import connection
from django.test import override_settings

DB_CACHE = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "cache_table",
    }
}


@pytest.mark.django_db
def test_migrate_creates_the_cache_table():
    # The test database is built by migrate; the test settings use an in-memory
    # cache, so createcachetable (run by the test runner) makes nothing itself.
    assert "cache_table" in connection.introspection.table_names()


@pytest.mark.django_db
def test_the_application_role_can_use_the_database_cache():
    # On PostgreSQL this runs as the application role: the table must be granted.
    with override_settings(CACHES=DB_CACHE):
        cache = caches.create_connection("default")
        cache.set("segmenta-probe", 42, 60)
        assert cache.get("segmenta-probe") == 42
        cache.delete("segmenta-probe")


@pytest.mark.django_db
def test_api_answers_with_the_database_cache(client, owner):
    from django.core.cache.backends.db import DatabaseCache
    from rest_framework.throttling import SimpleRateThrottle

    client.force_login(owner)
    db_cache = DatabaseCache("cache_table", {})
    original = SimpleRateThrottle.cache
    SimpleRateThrottle.cache = db_cache
    try:
        response = client.get("/api/v1/jobs/")
    finally:
        SimpleRateThrottle.cache = original
    assert response.status_code == 200
