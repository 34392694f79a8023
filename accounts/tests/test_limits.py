"""Plan limits per organisation: the API rate, API usage counting, the owner's
audit entry, and the defaults (issue 17)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.limits import LimitReached, default_limits, limit_reached_audit, limits_for
from accounts.models import ApiUsage, AuditLogEntry, OrganizationLimits
from accounts.selectors import api_requests
from accounts.tenancy import tenant_context, unscoped_context
from accounts.tests.factories import make_api_key

pytestmark = pytest.mark.django_db


def _client(org, scope="read"):
    _, raw = make_api_key(org, scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


def _usage(org) -> int:
    with tenant_context(org):
        return sum(ApiUsage.objects.values_list("requests", flat=True))


def test_defaults_apply_without_a_limits_row(org, settings):
    assert limits_for(org) == default_limits()
    settings.ORG_MAX_CUSTOMERS = 7
    assert limits_for(org).customers == 7
    OrganizationLimits.objects.create(organization=org, customers=3)
    mine = limits_for(org)
    assert mine.customers == 3 and mine.own == {"customers"}
    assert mine.api_per_minute == default_limits().api_per_minute


def test_a_burst_over_the_plans_rate_is_refused_and_another_org_is_not(org, other_org):
    OrganizationLimits.objects.create(organization=org, api_per_minute=5)
    limited, free = _client(org), _client(other_org)
    answers = [limited.get("/api/v1/customers/") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    refused = answers[-1]
    error = refused.json()["error"]
    assert error["code"] == "throttled"
    assert error["message"].startswith(
        "Your plan's limit of 5 API requests a minute is reached: this API key made 5 "
        "requests in the last minute. Ask Segmenta support to raise it. Try again in "
    )
    assert int(refused["Retry-After"]) > 0
    assert (refused["X-RateLimit-Limit"], refused["X-RateLimit-Remaining"]) == ("5", "0")
    assert answers[0]["X-RateLimit-Limit"] == "5"
    limited.get("/api/v1/customers/")  # refused again: still one entry for the owner
    with tenant_context(org):
        [entry] = AuditLogEntry.objects.filter(action="limit_reached")
    assert entry.target == "API requests a minute"
    # the other organisation has the platform's budget
    others = [free.get("/api/v1/customers/") for _ in range(10)]
    assert {a.status_code for a in others} == {200}
    assert others[-1]["X-RateLimit-Limit"] == str(default_limits().api_per_minute)
    with tenant_context(other_org):
        assert not AuditLogEntry.objects.filter(action="limit_reached").exists()


def test_every_api_request_of_an_organisation_is_counted(org, other_org, owner):
    OrganizationLimits.objects.create(organization=org, api_per_minute=3)
    key = _client(org)
    made = [key.get("/api/v1/customers/") for _ in range(4)]  # the 4th is refused: counted
    made.append(key.get("/api/v1/customers/999999/"))  # refused as well
    assert [a.status_code for a in made] == [200, 200, 200, 429, 429]
    session = APIClient()
    session.force_login(owner)
    assert session.get("/api/v1/products/").status_code == 200
    _client(other_org).get("/api/v1/customers/")
    # not counted: no organisation (no key, a bad key)
    APIClient().get("/api/v1/customers/")
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Api-Key nope")
    assert bad.get("/api/v1/customers/").status_code in (401, 403)

    assert _usage(org) == 6
    assert _usage(other_org) == 1
    with tenant_context(org):
        assert ApiUsage.objects.get().day == timezone.now().astimezone(dt.UTC).date()
    today = timezone.now().astimezone(dt.UTC).date()
    with unscoped_context():
        assert api_requests(organization_id=org.pk, since=today) == 6
        assert api_requests(organization_id=other_org.pk, since=timezone.now()) == 1
        assert api_requests(organization_id=org.pk, since=today + dt.timedelta(days=1)) == 0
    with tenant_context(other_org):  # one organisation's scope sees only its own
        assert api_requests(organization_id=org.pk, since=today) == 0


def test_usage_adds_to_an_existing_days_row(org):
    today = timezone.now().astimezone(dt.UTC).date()
    with tenant_context(org):
        ApiUsage.objects.create(day=today, requests=41)
        ApiUsage.objects.create(day=today - dt.timedelta(days=1), requests=5)
    _client(org).get("/api/v1/customers/")
    with tenant_context(org):
        assert ApiUsage.objects.get(day=today).requests == 42
    with unscoped_context():
        assert api_requests(organization_id=org.pk, since=today - dt.timedelta(days=1)) == 47


def test_limit_reached_is_written_to_the_audit_log_once_a_day(org):
    limits = limits_for(org)
    error = LimitReached("customers", limits, "this row would add a new customer")
    assert limit_reached_audit(organization=org, error=error)
    assert not limit_reached_audit(organization=org, error=error)
    other = LimitReached("import_rows", limits, "the file has too many rows")
    assert limit_reached_audit(organization=org, error=other)
    with tenant_context(org):
        entries = list(AuditLogEntry.objects.filter(action="limit_reached").order_by("pk"))
        assert [e.target for e in entries] == ["customers", "rows in one file"]
        assert entries[0].details["message"] == error.message
        assert entries[0].get_actor_kind_display() == "System"
        # yesterday's entry does not count for today
        AuditLogEntry.objects.filter(pk=entries[0].pk).update(
            created_at=timezone.now() - dt.timedelta(days=1, hours=1)
        )
    assert limit_reached_audit(organization=org, error=error)


def test_limits_that_would_stop_everything_are_refused_by_the_form():
    """0 API requests a minute or 0 heavy jobs would lock the organisation out (and
    the plan's words would be wrong); 0 customers or 0 emails a day are real plans."""
    from accounts.admin import OrganizationLimitsForm

    form = OrganizationLimitsForm(data={"api_per_minute": "0", "heavy_jobs": "0"})
    assert not form.is_valid()
    assert set(form.errors) == {"api_per_minute", "heavy_jobs"}
    assert OrganizationLimitsForm(data={"customers": "0", "emails_per_day": "0"}).is_valid()
