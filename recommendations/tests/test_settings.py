"""The owner's repeat-purchase setting: "never" leaves out every product a customer
bought before, "always" keeps them, "auto" follows the hold-out; the API reads and
changes it (marketers and write keys only), and each change is in the audit log."""

from __future__ import annotations

import pytest

from accounts.models import AuditLogEntry
from accounts.tenancy import tenant_context
from core.exceptions import ApplicationError
from customers.models import OrderLine
from predictions.tests.factories import write_world
from recommendations.models import CustomerRecommendation, RecommendationSettings
from recommendations.services import recommendation_settings_update, recommendations_run
from recommendations.tests.factories import planted_world


@pytest.fixture
def planted(org):
    return write_world(org, planted_world())


def _run_with(org, repeats: str):
    with tenant_context(org):
        recommendation_settings_update(organization=org, repeats=repeats)
        return recommendations_run(organization=org)


def _bought_before(org, run) -> tuple[int, int]:
    """(recommendations of a product the customer bought before, all recommendations)"""
    with tenant_context(org):
        bought = set(
            OrderLine.objects.filter(order__customer__isnull=False).values_list(
                "order__customer_id", "product_id"
            )
        )
        rows = list(
            CustomerRecommendation.objects.filter(run=run).values_list("customer_id", "product_id")
        )
    return sum(1 for r in rows if r in bought), len(rows)


def test_never_leaves_out_products_bought_before(org, planted):
    run = _run_with(org, "never")
    again, total = _bought_before(org, run)
    assert total > 0 and again == 0
    assert run.repeats is False and run.repeats_setting == "never"
    with tenant_context(org):
        assert not CustomerRecommendation.objects.filter(
            run=run, reason="Bought it before"
        ).exists()
    # the evaluation shown is the figures of what is served: without repeats
    assert all(e["repeats"] is False for e in run.evaluation)


def test_always_keeps_products_bought_before(org, planted):
    run = _run_with(org, "always")
    again, total = _bought_before(org, run)
    # every customer bought one or two products: each gets them back among their ten
    with tenant_context(org):
        customers = CustomerRecommendation.objects.filter(run=run).values("customer").distinct()
        assert again >= customers.count()
        assert CustomerRecommendation.objects.filter(run=run, reason="Bought it before").exists()
    assert run.repeats is True and run.repeats_setting == "always"
    assert all(e["repeats"] is True for e in run.evaluation)


def test_auto_follows_the_hold_out(org, planted):
    run = _run_with(org, "auto")
    served = run.entry(run.served)
    assert run.repeats_setting == "auto"
    assert run.repeats is served["repeats"]
    # on the planted world the partner product is what comes next, never a repeat
    assert run.repeats is False


def test_a_change_is_audited_and_bad_values_name_the_field(org, owner):
    with tenant_context(org):
        recommendation_settings_update(organization=org, repeats="never", user=owner)
        recommendation_settings_update(organization=org, repeats="never", user=owner)  # no change
        entries = list(AuditLogEntry.objects.filter(action="recommendations.settings_changed"))
        assert len(entries) == 1
        assert entries[0].details == {"repeats": {"from": "auto", "to": "never"}}
        assert entries[0].actor == owner
        assert RecommendationSettings.objects.get().updated_by == owner
        with pytest.raises(ApplicationError) as refused:
            recommendation_settings_update(organization=org, repeats="sometimes")
        assert refused.value.extra["fields"] == {"repeats": "One of auto, always, never."}
        assert RecommendationSettings.objects.get().repeats == "never"


def test_api_reads_and_changes_the_setting(api, api_read, org, planted):
    body = api_read.get("/api/v1/recommendations/settings/").json()
    assert body["repeats"] == "auto" and body["live_run"] is None
    assert (
        api_read.put(
            "/api/v1/recommendations/settings/", {"repeats": "never"}, format="json"
        ).status_code
        == 403
    )
    bad = api.put("/api/v1/recommendations/settings/", {"repeats": "often"}, format="json")
    assert bad.status_code == 400 and "repeats" in bad.content.decode()
    assert api.put("/api/v1/recommendations/settings/", {}, format="json").status_code == 400
    ok = api.put("/api/v1/recommendations/settings/", {"repeats": "never"}, format="json")
    assert ok.status_code == 200 and ok.json()["repeats"] == "never"
    with tenant_context(org):
        assert RecommendationSettings.objects.get().repeats == "never"
        entry = AuditLogEntry.objects.get(action="recommendations.settings_changed")
        assert entry.actor_kind == "api_key"
        recommendations_run(organization=org)
    body = api_read.get("/api/v1/recommendations/settings/").json()
    assert body["live_run"] == {"repeats": False, "repeats_setting": "never"}
    latest = api_read.get("/api/v1/recommendations/models/latest/").json()
    assert latest["repeats"] is False and latest["repeats_setting"] == "never"
