"""The organisations overview's usage figures equal the rows stored for each
organisation, and the platform totals equal their sums."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiUsage, AuditLogEntry, Organization
from accounts.tenancy import tenant_context, unscoped_context
from accounts.tests.factories import OrganizationFactory
from backoffice import usage
from campaigns.models import Campaign, Delivery
from core.models import Job
from customers.services.importing import org_media_dir
from customers.tests.factories import CustomerFactory, ImportFactory, OrderFactory, OrderLineFactory

pytestmark = pytest.mark.django_db


def _deliver(campaign, customer, *, channel, sent_at):
    return Delivery.objects.create(
        campaign=campaign,
        customer=customer,
        channel=channel,
        status="sent" if sent_at else "queued",
        token=secrets.token_hex(16),
        sent_at=sent_at,
    )


def build_usage(org, *, customers, erased, lines, files, api, emails, now):
    """Known usage for `org`: `customers` live and `erased` erased customers, `lines`
    order lines, `files` (sizes in bytes) under its media folder, API calls `api`
    (this month; plus 1,000 last month), `emails` emails sent this month (plus an
    email last month, an SMS this month and an unsent email, none counted), and
    three jobs in the last 7 days (one failed; 90 s + 30 s of run time) plus one older."""
    month = usage.month_start(now)
    with tenant_context(org):
        people = [CustomerFactory() for _ in range(customers)]
        for _ in range(erased):
            CustomerFactory(erased_at=now)
        order = OrderFactory(customer=people[0])
        for _ in range(lines):
            OrderLineFactory(order=order)
        ApiUsage.objects.create(day=month.date(), requests=api - 3)
        if now.date() != month.date():
            ApiUsage.objects.create(day=now.date(), requests=3)
        else:
            ApiUsage.objects.filter(day=month.date()).update(requests=api)
        ApiUsage.objects.create(day=(month - timedelta(days=1)).date(), requests=1000)
        campaign = Campaign.objects.create(name="News")
        for i in range(emails):
            _deliver(campaign, people[i], channel="email", sent_at=now - timedelta(minutes=i))
        extra = CustomerFactory()
        _deliver(campaign, extra, channel="email", sent_at=month - timedelta(hours=1))
        _deliver(campaign, CustomerFactory(), channel="sms", sent_at=now)
        _deliver(campaign, CustomerFactory(), channel="email", sent_at=None)
        AuditLogEntry.objects.create(action="sign_in", created_at=now - timedelta(days=2))
        AuditLogEntry.objects.create(action="sign_in", created_at=now - timedelta(hours=5))
        AuditLogEntry.objects.create(action="sign_out", created_at=now - timedelta(hours=1))
        ImportFactory(created_at=now - timedelta(days=3))
        ImportFactory(status="draft", created_at=now - timedelta(hours=1))
        start = now - timedelta(days=1)
        Job.objects.create(
            kind="demo",
            status="succeeded",
            created_at=start,
            started_at=start,
            finished_at=start + timedelta(seconds=90),
        )
        Job.objects.create(
            kind="demo",
            status="failed",
            created_at=start,
            started_at=start,
            finished_at=start + timedelta(seconds=30),
        )
        Job.objects.create(kind="demo", status="queued", created_at=now - timedelta(minutes=1))
        old = now - timedelta(days=8)
        Job.objects.create(
            kind="demo",
            status="failed",
            created_at=old,
            started_at=old,
            finished_at=old + timedelta(hours=1),
        )
    folder = org_media_dir(org.pk, "imports")
    folder.mkdir(parents=True, exist_ok=True)
    for i, size in enumerate(files):
        (folder / f"file{i}.csv").write_bytes(b"x" * size)
    # the extra customers made for the uncounted deliveries are live customers too
    return customers + 3


@pytest.fixture
def fleet():
    now = timezone.now()
    a = OrganizationFactory(name="Alpha Shop", slug="alpha")
    b = OrganizationFactory(name="Beta Shop", slug="beta")
    OrganizationFactory(name="Empty Shop", slug="empty")
    live_a = build_usage(
        a, customers=4, erased=2, lines=5, files=[10, 25], api=123, emails=2, now=now
    )
    live_b = build_usage(b, customers=3, erased=0, lines=1, files=[7], api=40, emails=3, now=now)
    return {"a": a, "b": b, "live_a": live_a, "live_b": live_b, "now": now}


def test_usage_columns_equal_the_stored_rows(fleet):
    with unscoped_context():
        rows = {o.slug: o for o in usage.organizations_with_usage(now=fleet["now"])}
    a, b, empty = rows["alpha"], rows["beta"], rows["empty"]
    assert (a.customers, b.customers, empty.customers) == (fleet["live_a"], fleet["live_b"], 0)
    assert (a.order_lines, b.order_lines, empty.order_lines) == (5, 1, 0)
    assert (a.api_calls_month, b.api_calls_month, empty.api_calls_month) == (123, 40, 0)
    assert (a.emails_month, b.emails_month, empty.emails_month) == (2, 3, 0)
    assert (a.jobs_week, a.jobs_failed_week) == (3, 1)
    assert (empty.jobs_week, empty.jobs_failed_week) == (0, 0)
    assert a.job_time_week == timedelta(seconds=120)
    assert empty.job_time_week is None
    assert a.last_sign_in == fleet["now"] - timedelta(hours=5)
    assert a.last_import == fleet["now"] - timedelta(days=3)
    assert empty.last_sign_in is None and empty.last_import is None
    files = usage.organization_files(fleet["a"].pk)
    assert (files.count, files.bytes) == (2, 35)
    assert usage.organization_files(rows["empty"].pk) == usage.StoredFiles(0, 0)


def test_totals_equal_the_sums_of_the_listed_organisations(fleet):
    with unscoped_context():
        listed = usage.organizations_with_usage(now=fleet["now"])
        rows = list(listed)
        totals = usage.usage_totals(listed, now=fleet["now"])
        only_alpha = usage.usage_totals(Organization.objects.filter(slug="alpha"), now=fleet["now"])
    assert totals.organizations == 3 and totals.active == 3 and totals.suspended == 0
    for name in usage.COUNT_COLUMNS:
        assert getattr(totals, name) == sum(getattr(r, name) for r in rows), name
    assert totals.customers == fleet["live_a"] + fleet["live_b"]
    assert totals.api_calls_month == 163 and totals.emails_month == 5
    assert totals.job_time_week == timedelta(seconds=240)
    assert (totals.files, totals.files_bytes) == (3, 42)
    # a filtered list's totals are that list's
    assert only_alpha.customers == fleet["live_a"] and only_alpha.order_lines == 5
    assert (only_alpha.files, only_alpha.files_bytes) == (2, 35)


def test_the_list_sorts_on_a_usage_column_in_the_database(fleet):
    with unscoped_context():
        ordered = list(
            usage.organizations_with_usage(now=fleet["now"])
            .order_by("-order_lines")
            .values_list("slug", flat=True)
        )
    assert ordered == ["alpha", "beta", "empty"]


def test_usage_against_limits_reads_in_plain_words(fleet, settings):
    settings.ORG_MAX_CUSTOMERS = 2_000_000
    with unscoped_context():
        lines = {line.label: line for line in usage.usage_against_limits(fleet["a"])}
    assert lines["Customers"].text == (
        f"{fleet['live_a']:,} of 2,000,000 customers (platform default)"
    )
    assert not lines["Customers"].attention
    assert "1 failed" in lines["Jobs"].text and "2 min 00 s spent" in lines["Jobs"].text
    assert lines["Stored files"].text.startswith("2 files, 35 bytes; largest upload 200 MB")


def test_stuck_jobs_are_stale_running_or_long_queued(settings):
    settings.JOB_STALE_AFTER_SECONDS = 600
    settings.JOB_QUEUED_WARNING_SECONDS = 120
    now = timezone.now()
    org = OrganizationFactory()
    with tenant_context(org):
        stale = Job.objects.create(
            kind="demo", status="running", heartbeat_at=now - timedelta(minutes=11)
        )
        Job.objects.create(kind="demo", status="running", heartbeat_at=now - timedelta(minutes=1))
        waiting = Job.objects.create(
            kind="demo", status="queued", created_at=now - timedelta(minutes=3)
        )
        Job.objects.create(kind="demo", status="queued", created_at=now - timedelta(seconds=30))
    with unscoped_context():
        stuck = set(usage.stuck_jobs(now=now).values_list("pk", flat=True))
        state = usage.jobs_state(now=now)
    assert stuck == {stale.pk, waiting.pk}
    assert (state["queued"], state["running"], state["stale"]) == (2, 2, 1)
    assert state["oldest_queued_age"] == timedelta(minutes=3)


def test_members_see_their_plan_with_the_stored_counts(client, org, owner):
    """Settings → Organisation: customers and today's emails against the plan's
    limits, counted from the stored rows (erased customers and SMS left out)."""
    from django.urls import reverse

    from accounts.models import OrganizationLimits

    OrganizationLimits.objects.create(organization=org, customers=5, emails_per_day=40)
    now = timezone.now()
    with tenant_context(org):
        people = [CustomerFactory() for _ in range(4)]
        CustomerFactory(erased_at=now)
        campaign = Campaign.objects.create(name="Today")
        for person in people[:3]:
            _deliver(campaign, person, channel="email", sent_at=now)
        _deliver(campaign, people[3], channel="sms", sent_at=now)
    lines = {line.label: line for line in usage.plan_usage(org, now=now)}
    assert (lines["Customers"].used, lines["Customers"].limit) == (4, 5)
    assert lines["Customers"].near and not lines["Emails today"].near
    assert (lines["Emails today"].used, lines["Emails today"].limit) == (3, 40)
    client.force_login(owner)
    page = client.get(reverse("accounts:settings")).content.decode()
    assert "Your plan" in page and "4 of 5" in page and "3 of 40" in page
    assert "Close to the limit." in page
