import pytest
from django.urls import get_resolver

from customers import registry


@pytest.fixture(autouse=True)
def _own_registries(monkeypatch):
    """These tests are about this app: other apps' registered enrichers, panels,
    filters and erasure handlers are set aside (their own tests cover them)."""
    get_resolver().url_patterns  # noqa: B018 - load every app's views, which register
    for name in ("_enrichers", "_panels", "_filters", "_erasure_handlers"):
        monkeypatch.setattr(registry, name, {})


@pytest.fixture(autouse=True)
def _no_pipeline(monkeypatch):
    """Imports here do not start segmentation's jobs (test_import_service checks
    that a changed import asks for them)."""
    import segmentation.pipeline

    monkeypatch.setattr(segmentation.pipeline, "pipeline_after_data_change", lambda **kw: None)


@pytest.fixture(autouse=True)
def _empty_cache():
    from django.core.cache import cache

    cache.clear()
