"""The organisations overview and an organisation's page in the back office:
usage columns, totals, search and filter, limits editing (audited, permission-gated)
and the suspend / reactivate / schedule deletion / cancel deletion actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditLogEntry, Organization, OrganizationLimits
from accounts.tenancy import tenant_context
from accounts.tests.factories import OrganizationFactory, UserFactory
from backoffice.groups import OPERATIONS, SUPPORT, staff_groups_sync
from customers.tests.factories import CustomerFactory, OrderLineFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:accounts_organization_changelist"


def _staff(group: str | None, email: str):
    staff_groups_sync()
    user = UserFactory(email=email, is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def support(client):
    return _staff(SUPPORT, "support@segmenta.test")


@pytest.fixture
def operations():
    return _staff(OPERATIONS, "ops@segmenta.test")


@pytest.fixture
def shops():
    a = OrganizationFactory(name="Alpha Shop", slug="alpha")
    b = OrganizationFactory(name="Beta Shop", slug="beta")
    with tenant_context(a):
        CustomerFactory.create_batch(3)
        OrderLineFactory.create_batch(2)  # each with its own customer: 5 customers
    with tenant_context(b):
        CustomerFactory.create_batch(1)
    return a, b


def _limits_post(org, **values):
    """The change form's POST for `org`, with the limits inline set to `values`."""
    data = {
        "limits-TOTAL_FORMS": "1",
        "limits-INITIAL_FORMS": "1"
        if OrganizationLimits.objects.filter(pk=org.pk).exists()
        else "0",
        "limits-MIN_NUM_FORMS": "0",
        "limits-MAX_NUM_FORMS": "1",
        "limits-0-organization": str(org.pk),
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    for name in (
        "upload_bytes",
        "import_rows",
        "import_columns",
        "attributes_bytes",
        "customers",
        "api_per_minute",
        "emails_per_day",
        "heavy_jobs",
    ):
        value = values.get(name)
        data[f"limits-0-{name}"] = "" if value is None else str(value)
    return data


def test_overview_lists_usage_totals_and_sorts(client, support, shops):
    client.force_login(support)
    page = client.get(reverse(CHANGELIST))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Alpha Shop" in text and "Beta Shop" in text
    assert 'id="platform-totals"' in text
    assert '<td class="total-customers">6</td>' in text
    assert '<td class="total-order-lines">2</td>' in text
    # customers is the 4th column: ascending puts Beta (1) before Alpha (5)
    ordered = client.get(reverse(CHANGELIST), {"o": "4"}).content.decode()
    assert ordered.index("Beta Shop") < ordered.index("Alpha Shop")
    ordered = client.get(reverse(CHANGELIST), {"o": "-4"}).content.decode()
    assert ordered.index("Alpha Shop") < ordered.index("Beta Shop")


def test_overview_search_filter_and_filtered_totals(client, support, shops):
    a, _ = shops
    Organization.objects.filter(pk=a.pk).update(status="suspended")
    client.force_login(support)
    found = client.get(reverse(CHANGELIST), {"q": "beta"}).content.decode()
    assert "Beta Shop" in found and "Alpha Shop" not in found
    assert '<td class="total-customers">1</td>' in found
    suspended = client.get(reverse(CHANGELIST), {"status__exact": "suspended"}).content.decode()
    assert "Alpha Shop" in suspended and "Beta Shop" not in suspended
    assert '<td class="total-customers">5</td>' in suspended


def test_change_page_shows_usage_against_limits(client, support, shops, settings):
    settings.ORG_MAX_CUSTOMERS = 2_000_000
    a, _ = shops
    client.force_login(support)
    page = client.get(reverse("admin:accounts_organization_change", args=[a.pk]))
    assert page.status_code == 200
    assert "5 of 2,000,000 customers (platform default)" in page.content.decode()
    # Support may look but not act: no action buttons
    assert "org-action-suspend" not in page.content.decode()


def test_support_cannot_edit_limits_or_suspend(client, support, shops):
    a, _ = shops
    client.force_login(support)
    change = reverse("admin:accounts_organization_change", args=[a.pk])
    assert client.post(change, _limits_post(a, customers=10)).status_code == 403
    assert not OrganizationLimits.objects.filter(pk=a.pk).exists()
    suspend = reverse("admin:accounts_organization_suspend", args=[a.pk])
    assert client.get(suspend).status_code == 403
    assert client.post(suspend, {"reason": "Unpaid"}).status_code == 403
    deletion = reverse("admin:accounts_organization_schedule_deletion", args=[a.pk])
    assert client.post(deletion, {"reason": "x"}).status_code == 403
    a.refresh_from_db()
    assert a.status == "active"


def test_staff_without_any_group_cannot_see_the_overview(client, shops):
    client.force_login(_staff(None, "nobody@segmenta.test"))
    assert client.get(reverse(CHANGELIST)).status_code == 403


def test_operations_edit_limits_and_the_owner_sees_it(client, operations, shops, settings):
    settings.ORG_MAX_CUSTOMERS = 2_000_000
    a, b = shops
    client.force_login(operations)
    change = reverse("admin:accounts_organization_change", args=[a.pk])
    page = client.get(change).content.decode()
    assert 'placeholder="2000000"' in page  # the default, shown in the blank field
    response = client.post(change, _limits_post(a, customers=5000))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert OrganizationLimits.objects.get(pk=a.pk).customers == 5000
    with tenant_context(a):
        entry = AuditLogEntry.objects.get(action="limits_changed")
    assert entry.actor_kind == "staff" and entry.actor == operations
    assert entry.details["from"] == "default (2,000,000)" and entry.details["to"] == "5,000"
    assert entry.details_text.startswith("default (2,000,000) → 5,000")
    with tenant_context(b):
        assert not AuditLogEntry.objects.filter(action="limits_changed").exists()
    # back to blank: the default again, written too; an unchanged save writes nothing
    client.post(change, _limits_post(a, customers=None))
    assert OrganizationLimits.objects.get(pk=a.pk).customers is None
    client.post(change, _limits_post(a, customers=None))
    with tenant_context(a):
        entries = list(AuditLogEntry.objects.filter(action="limits_changed"))
    assert len(entries) == 2
    assert entries[0].details["to"] == "default (2,000,000)"
    # Operations do not rename organisations: their fields are read-only
    a.refresh_from_db()
    assert a.name == "Alpha Shop"


def test_operations_suspend_and_reactivate(client, operations, shops):
    a, _ = shops
    client.force_login(operations)
    suspend = reverse("admin:accounts_organization_suspend", args=[a.pk])
    form = client.get(suspend)
    assert form.status_code == 200 and "reason" in form.content.decode()
    missing = client.post(suspend, {"reason": ""})
    assert missing.status_code == 200
    assert "Write the reason" in missing.content.decode()
    done = client.post(suspend, {"reason": "Unpaid invoices"})
    assert done.status_code == 302
    a.refresh_from_db()
    assert a.status == "suspended" and "Unpaid invoices" in a.status_reason
    with tenant_context(a):
        entry = AuditLogEntry.objects.get(action="org_suspended")
    assert entry.actor_kind == "staff"
    page = client.get(reverse("admin:accounts_organization_change", args=[a.pk])).content.decode()
    assert "org-action-reactivate" in page and "org-action-suspend" not in page
    back = client.post(reverse("admin:accounts_organization_reactivate", args=[a.pk]), {})
    assert back.status_code == 302
    a.refresh_from_db()
    assert a.status == "active"


def test_schedule_deletion_needs_the_slug_and_a_future_day(client, operations, shops, settings):
    settings.ORG_DELETION_GRACE_DAYS = 30
    a, _ = shops
    client.force_login(operations)
    url = reverse("admin:accounts_organization_schedule_deletion", args=[a.pk])
    form = client.get(url).content.decode()
    default_day = (timezone.now() + timedelta(days=30)).date().isoformat()
    assert default_day in form
    wrong = client.post(url, {"reason": "Closed", "when": default_day, "confirm_slug": "beta"})
    assert wrong.status_code == 200
    assert "type alpha to confirm" in wrong.content.decode()
    past = client.post(
        url,
        {"reason": "Closed", "when": timezone.now().date().isoformat(), "confirm_slug": "alpha"},
    )
    assert "must be after today" in past.content.decode()
    a.refresh_from_db()
    assert a.deletion_scheduled_for is None
    done = client.post(url, {"reason": "Closed", "when": default_day, "confirm_slug": "alpha"})
    assert done.status_code == 302
    a.refresh_from_db()
    assert a.deletion_scheduled_for.date().isoformat() == default_day
    assert a.status == "suspended"
    cancel = reverse("admin:accounts_organization_cancel_deletion", args=[a.pk])
    assert client.post(cancel, {}).status_code == 302
    a.refresh_from_db()
    assert a.deletion_scheduled_for is None and a.status == "suspended"
