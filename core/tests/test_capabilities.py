"""Capabilities plug in through one declaration (core/capabilities.py, issue 9): the
pipeline, rule fields, the customer and product pages, the navigation, the URL and
API routers and the isolation sweep all find them there."""

from __future__ import annotations

import pathlib

import pytest
from django.apps import apps
from django.urls import get_resolver

from accounts.tenancy import TenantModel, tenant_context
from core import capabilities
from core.capabilities import Capability, NavEntry, Panel, Step

pytestmark = pytest.mark.django_db

ROOT = pathlib.Path(__file__).resolve().parents[2]


def extra_rule_fields():
    from segmentation.services.rules import RuleField

    return (
        RuleField(
            name="test_capability_field",
            label="Test capability field",
            type="number",
            to_q=lambda operator, value, context: None,
        ),
    )


def extra_customer_panel(*, request, customer):
    return {"template": "core/_test_capability_panel.html", "context": {"word": "Plugged in"}}


@pytest.fixture
def extra_capability(tmp_path, settings):
    # The panel's template lives in a temporary template directory.
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "_test_capability_panel.html").write_text(
        "<p>{{ panel.word }} for {{ customer.email }}</p>"
    )
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [*settings.TEMPLATES[0]["DIRS"], str(tmp_path)]}
    ]
    capability = Capability(
        name="test_extra",
        steps=(Step("test_extra", "core.tasks.demo_countdown", 90, "Test extra step"),),
        rule_fields=f"{__name__}:extra_rule_fields",
        customer_panels=(Panel("test_extra", f"{__name__}:extra_customer_panel", "Extra"),),
        nav=(NavEntry("core:jobs", "Test extra entry", 95),),
    )
    capabilities.register_capability(capability)
    yield capability
    capabilities._CAPABILITIES.pop("test_extra", None)


def test_one_declaration_reaches_the_pipeline_rules_customer_page_and_menu(
    extra_capability, owner_client, org
):
    from core.jobs import job_kind
    from customers.tests.factories import CustomerFactory
    from segmentation.pipeline import available_steps
    from segmentation.services.rules import rule_fields

    assert "test_extra" in [s.name for s in available_steps()]
    assert job_kind("test_extra").role == "marketer"
    assert "test_capability_field" in rule_fields()
    with tenant_context(org):
        customer = CustomerFactory(organization=org, email="plugged@example.com")
    html = owner_client.get(f"/customers/{customer.pk}/").content.decode()
    assert "Plugged in for plugged@example.com" in html
    assert "Test extra entry" in html


def test_the_built_in_capabilities_declare_their_steps_menu_and_places():
    names = [c.name for c in capabilities.capabilities()]
    assert {"core", "accounts", "customers", "segments", "predictions", "recommendations"} <= set(
        names
    )
    assert [s.name for s in capabilities.steps()] == [
        "segments",
        "predictions",
        "recommendations",
        "audiences",
        "offers",
        "loyalty",
        "research",
    ]
    assert [e.label for e in capabilities.nav_entries()] == [
        "Dashboard",
        "Customers",
        "Segments",
        "Personas",
        "Predictions",
        "Recommendations",
        "Audiences",
        "Campaigns",
        "Offers",
        "Loyalty",
        "Research",
        "Webhooks",
        "Settings",
    ]


def test_every_declared_url_module_is_routed():
    routed = set()

    def walk(patterns):
        for entry in patterns:
            if hasattr(entry, "url_patterns"):
                walk(entry.url_patterns)
            else:
                routed.add(getattr(entry.callback, "__module__", None))

    walk(get_resolver().url_patterns)
    resolver = get_resolver()
    for capability in capabilities.capabilities():
        for module in (capability.site_urls, capability.api_urls):
            if not module:
                continue
            views = {
                getattr(getattr(p, "callback", None), "__module__", None)
                for p in capabilities.resolve(module).urlpatterns
            }
            assert views & routed, f"{capability.name}: {module} is not routed"
    assert resolver.resolve("/segments/predictions/").url_name == "predictions"
    assert resolver.resolve("/api/v1/predictions/runs/").url_name == "prediction-run-list"


def test_every_tenant_model_has_a_world_from_a_capability():
    """The isolation sweep builds its worlds from the capabilities' `world` modules:
    an app with tenant models must declare one, or its routes go unswept."""
    from tests.test_tenant_isolation import WORLD_MODULES

    assert WORLD_MODULES == capabilities.world_modules()
    with_world = {m.split(".")[0] for m in WORLD_MODULES}
    tenant_apps = {
        m._meta.app_label
        for m in apps.get_models()
        if issubclass(m, TenantModel) and not m._meta.abstract
    }
    assert tenant_apps <= with_world


def test_no_hard_coded_lists_of_apps_remain():
    urls = (ROOT / "config" / "urls.py").read_text()
    assert "segmentation.urls" not in urls and "customers.api.urls" not in urls
    sweep = (ROOT / "tests" / "test_tenant_isolation.py").read_text()
    assert "LOCAL_APPS" not in sweep
    pipeline = (ROOT / "segmentation" / "pipeline.py").read_text()
    assert "STEP_MODULES" not in pipeline
