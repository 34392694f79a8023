"""Suspending, reactivating and scheduling the deletion of an organisation (issue 17):
sign-in, the site, the API and jobs all stop for a suspended organisation; its data
is kept; a scheduled deletion exports, then deletes through the owners' own path."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
from celery import shared_task
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditLogEntry, Organization, Role
from accounts.suspension import (
    organization_cancel_deletion,
    organization_is_active,
    organization_reactivate,
    organization_schedule_deletion,
    organization_suspend,
    organizations_delete_due,
    suspended_message,
)
from accounts.tenancy import tenant_context
from accounts.tests.factories import MembershipFactory, UserFactory, make_api_key
from core.jobs import JobPaused, TenantTask, job_start
from core.models import Job, JobStatus
from core.tasks import demo_countdown

pytestmark = pytest.mark.django_db

REASON = "Unpaid invoices since March"


@pytest.fixture
def staff(db):
    return UserFactory(email="ops@segmenta.test", is_staff=True)


def _suspend(org, staff, reason=REASON):
    organization_suspend(organization=org, actor=staff, reason=reason)
    org.refresh_from_db()
    return org


def _key_client(org) -> APIClient:
    _, raw = make_api_key(org, "write")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


# --- the services ----------------------------------------------------------------------


def test_suspension_is_audited_as_staff_and_owners_are_emailed(
    org, owner, marketer, staff, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        organization_suspend(organization=org, actor=staff, reason=REASON)
    org.refresh_from_db()
    assert org.status == "suspended" and org.status_reason == REASON
    assert org.suspended_at is not None
    assert not organization_is_active(org.pk)
    with tenant_context(org):
        entry = AuditLogEntry.objects.get(action="org_suspended")
    assert entry.actor_kind == "staff"
    assert entry.get_actor_kind_display() == "Segmenta support"
    assert entry.actor_label == "Segmenta support (ops@segmenta.test)"
    assert entry.details == {"reason": REASON}
    # owners only, plain text, naming the organisation and the reason
    assert [m.to for m in mail.outbox] == [["owner@acme.test"]]
    assert "Acme Gifts" in mail.outbox[0].subject
    assert REASON in mail.outbox[0].body

    # idempotent: no second entry, no second email
    with django_capture_on_commit_callbacks(execute=True):
        organization_suspend(organization=org, actor=staff, reason=REASON)
    with tenant_context(org):
        assert AuditLogEntry.objects.filter(action="org_suspended").count() == 1
    assert len(mail.outbox) == 1

    with django_capture_on_commit_callbacks(execute=True):
        organization_reactivate(organization=org, actor=staff)
    org.refresh_from_db()
    assert org.status == "active" and org.status_reason == "" and org.suspended_at is None
    assert organization_is_active(org.pk)
    with tenant_context(org):
        back = AuditLogEntry.objects.get(action="org_reactivated")
    assert back.actor_kind == "staff" and back.details == {"reason": REASON}
    assert "active again" in mail.outbox[-1].subject


def test_a_suspension_needs_a_reason(org, staff):
    from core.exceptions import ApplicationError

    with pytest.raises(ApplicationError, match="Give a reason"):
        organization_suspend(organization=org, actor=staff, reason="   ")
    org.refresh_from_db()
    assert org.is_active


def test_the_message_names_the_organisation_the_reason_and_whom_to_contact(org, staff):
    _suspend(org, staff)
    text = suspended_message(org)
    assert text.startswith(f"Acme Gifts is suspended by Segmenta: {REASON}.")
    assert "Contact support@" in text


# --- the API -------------------------------------------------------------------------


def test_a_suspended_organisations_api_key_gets_403_and_the_other_is_unaffected(
    org, other_org, staff
):
    mine, theirs = _key_client(org), _key_client(other_org)
    assert mine.get("/api/v1/organization/").status_code == 200
    _suspend(org, staff)

    response = mine.get("/api/v1/organization/")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "organization_suspended"
    assert error["message"] == suspended_message(org)
    assert REASON in error["message"]
    # writes too
    assert mine.post("/api/v1/jobs/", {}, format="json").status_code == 403

    assert theirs.get("/api/v1/organization/").status_code == 200
    assert theirs.get("/api/v1/organization/").json()["slug"] == "rival"


def test_a_suspended_organisations_session_gets_403_on_the_api(client, org, owner, staff):
    client.force_login(owner)
    assert client.get("/api/v1/organization/").status_code == 200
    _suspend(org, staff)
    response = client.get("/api/v1/organization/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "organization_suspended"
    assert response.json()["error"]["message"] == suspended_message(org)


# --- signing in and the site --------------------------------------------------------------


def _sign_in(client, email):
    return client.post("/accounts/login/", {"email": email, "password": "correct-horse-battery"})


def test_a_member_of_a_suspended_organisation_cannot_sign_in(client, org, marketer, staff):
    _suspend(org, staff)
    response = _sign_in(client, "marketer@acme.test")
    assert response.status_code == 200
    text = response.content.decode()
    assert "You cannot sign in: Acme Gifts is suspended by Segmenta" in text
    assert REASON in text
    assert "_auth_user_id" not in client.session


def test_an_owner_signs_in_to_the_suspended_page_only(client, org, owner, staff):
    _suspend(org, staff)
    response = _sign_in(client, "owner@acme.test")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/suspended/"
    page = client.get("/accounts/suspended/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Acme Gifts is suspended" in text
    assert REASON in text
    assert "mailto:support@" in text
    # every page of the organisation leads back to it
    for path in ("/", "/customers/", "/accounts/settings/", "/accounts/settings/members/"):
        assert client.get(path)["Location"] == "/accounts/suspended/", path
    # but an owner still reads the audit log and decides on support access
    assert client.get("/accounts/settings/audit/").status_code == 200
    assert client.get("/accounts/settings/support/").status_code == 200
    # their own account and signing out still work
    assert client.get("/accounts/profile/").status_code == 200


def test_a_member_signed_in_before_the_suspension_is_sent_to_the_suspended_page(
    client, org, marketer, staff
):
    client.force_login(marketer)
    assert client.get("/customers/").status_code == 200
    _suspend(org, staff)
    response = client.get("/customers/")
    assert response.status_code == 302 and response["Location"] == "/accounts/suspended/"
    text = client.get("/accounts/suspended/").content.decode()
    assert REASON in text
    assert "Download" not in text  # not an owner


def test_with_another_active_organisation_the_member_lands_there(client, org, other_org, staff):
    user = UserFactory(email="both@acme.test")
    MembershipFactory(organization=org, user=user, role=Role.MARKETER)
    MembershipFactory(organization=other_org, user=user, role=Role.MARKETER)
    user.current_organization = org
    user.save()
    _suspend(org, staff)
    response = _sign_in(client, "both@acme.test")
    assert response.status_code == 302 and response["Location"] == "/"
    user.refresh_from_db()
    assert user.current_organization == other_org
    assert client.get("/customers/").status_code == 200


# --- jobs ----------------------------------------------------------------------------


PAUSE = {"on": False}


@shared_task(base=TenantTask, bind=True, name="accounts.tests.pauses_midway")
def pauses_midway(self, *, organization_id, job_id):
    self.job.progress(50, "Sending batch 3 of 6", force=True)
    if PAUSE["on"]:
        raise JobPaused("Paused while Acme Gifts is suspended.")
    return {"message": "Sent everything."}


def test_a_job_of_a_suspended_organisation_waits_and_runs_after_reactivation(
    org, staff, django_capture_on_commit_callbacks
):
    _suspend(org, staff)
    with tenant_context(org):
        job = job_start(
            organization=org,
            kind="demo",
            task=demo_countdown,
            params={"steps": 2, "delay": 0},
            sync=True,
        )
    assert job.status == JobStatus.QUEUED
    assert job.message == "Paused while Acme Gifts is suspended."
    assert job.params["_paused"] is True
    assert job.started_at is None and job.attempts == 0

    with django_capture_on_commit_callbacks(execute=True):
        organization_reactivate(organization=org, actor=staff)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.message == "Counted 2 steps."
    assert "_paused" not in job.params


def test_a_job_raising_job_paused_waits_until_reactivation(
    org, staff, django_capture_on_commit_callbacks
):
    PAUSE["on"] = True
    try:
        with tenant_context(org):
            job = job_start(organization=org, kind="demo", task=pauses_midway, sync=True)
        assert job.status == JobStatus.QUEUED
        assert job.message == "Paused while Acme Gifts is suspended."
        assert job.params["_paused"] is True
        assert job.finished_at is None
    finally:
        PAUSE["on"] = False
    _suspend(org, staff)
    with django_capture_on_commit_callbacks(execute=True):
        organization_reactivate(organization=org, actor=staff)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.message == "Sent everything."


def test_the_nightly_fan_out_skips_suspended_organisations(org, other_org, staff, monkeypatch):
    from segmentation import pipeline
    from segmentation.tasks import nightly_fanout

    started = []
    monkeypatch.setattr(
        pipeline, "pipeline_start", lambda *, organization, reason: started.append(organization.pk)
    )
    _suspend(org, staff)
    assert nightly_fanout() == 1
    assert started == [other_org.pk]


# --- scheduled deletion ----------------------------------------------------------------


def test_scheduled_deletion_exports_then_deletes_on_the_date(
    client, org, owner, other_org, staff, django_capture_on_commit_callbacks
):
    from customers.models import Customer
    from customers.services.importing import org_media_dir
    from customers.tests.factories import CustomerFactory

    with tenant_context(org):
        CustomerFactory(organization=org, external_id="c-1")
    with tenant_context(other_org):
        CustomerFactory(organization=other_org, external_id="c-1")
    stray = org_media_dir(org.pk, "uploads", "file.csv")
    stray.parent.mkdir(parents=True)
    stray.write_text("id\nc-1\n")
    when = timezone.now() + dt.timedelta(days=30)

    with django_capture_on_commit_callbacks(execute=True):
        organization_schedule_deletion(organization=org, actor=staff, reason=REASON, when=when)
    org.refresh_from_db()
    assert org.status == "suspended" and org.deletion_scheduled_for == when
    with tenant_context(org):
        export = Job.objects.get(kind="org_export")
        entry = AuditLogEntry.objects.get(action="deletion_scheduled")
    # the export ran although the organisation is suspended
    assert export.status == JobStatus.SUCCEEDED, export.message
    assert export.params["_for_deletion"] is True
    assert entry.actor_kind == "staff" and entry.details["export_job"] == export.pk
    assert mail.outbox[-1].to == ["owner@acme.test"]
    assert "will be deleted on" in mail.outbox[-1].subject

    # the owner downloads it from the suspended page, after the usual 7 days too
    client.force_login(owner)
    page = client.get("/accounts/suspended/").content.decode()
    url = f"/customers/privacy/exports/{export.pk}/"
    assert url in page and "will be deleted on" in page
    Job.all_objects.filter(pk=export.pk).update(finished_at=timezone.now() - dt.timedelta(days=20))
    download = client.get(url)
    assert download.status_code == 200
    assert b"".join(download.streaming_content)[:2] == b"PK"

    # not before the date
    assert organizations_delete_due(now=when - dt.timedelta(minutes=1)) == 0
    assert Organization.objects.filter(pk=org.pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        assert organizations_delete_due(now=when + dt.timedelta(minutes=1)) == 1
    assert not Organization.objects.filter(pk=org.pk).exists()
    assert not org_media_dir(org.pk).exists()
    assert not Customer.all_objects.filter(organization_id=org.pk).exists()
    assert Customer.all_objects.filter(organization_id=other_org.pk).count() == 1
    assert Organization.objects.filter(pk=other_org.pk).exists()


def test_a_cancelled_deletion_keeps_the_organisation_suspended(
    org, staff, django_capture_on_commit_callbacks
):
    when = timezone.now() + dt.timedelta(days=30)
    with django_capture_on_commit_callbacks(execute=True):
        organization_schedule_deletion(organization=org, actor=staff, reason=REASON, when=when)
    organization_cancel_deletion(organization=org, actor=staff)
    org.refresh_from_db()
    assert org.deletion_scheduled_for is None and org.status == "suspended"
    assert organizations_delete_due(now=when + dt.timedelta(days=1)) == 0
    assert Organization.objects.filter(pk=org.pk).exists()
    with tenant_context(org):
        assert AuditLogEntry.objects.filter(action="deletion_cancelled").count() == 1


def test_the_periodic_task_is_scheduled_hourly():
    from celery.schedules import crontab

    from accounts.tasks import organizations_delete_due as task
    from config.celery import _nightly_schedule

    scheduled = {}

    class Sender:
        def signature(self, name, **kwargs):
            return name

        def add_periodic_task(self, schedule, signature, **kwargs):
            scheduled[signature] = schedule

    _nightly_schedule(Sender())
    schedule = scheduled[task.name]
    assert isinstance(schedule, crontab) and schedule.hour == set(range(24))


# --- operator commands ------------------------------------------------------------------


def _run(name: str, *args) -> dict:
    out = StringIO()
    call_command(name, *args, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_operator_commands(org, owner, django_capture_on_commit_callbacks):
    result = _run("org_suspend", "--org", "acme", "--reason", REASON)
    assert result == {"org": "acme", "status": "suspended", "reason": REASON}
    with tenant_context(org):
        entry = AuditLogEntry.objects.get(action="org_suspended")
    assert entry.actor_kind == "staff"
    assert entry.actor_label == "Segmenta support (operator command)"

    assert _run("org_reactivate", "--org", "acme")["status"] == "active"

    with django_capture_on_commit_callbacks(execute=True):
        result = _run("org_schedule_deletion", "--org", "acme", "--reason", REASON, "--days", "10")
    org.refresh_from_db()
    assert result["status"] == "suspended"
    days = (org.deletion_scheduled_for - timezone.now()).days
    assert days in (9, 10)
    with tenant_context(org):
        assert Job.objects.filter(kind="org_export").count() == 1


def test_operator_commands_refuse_bad_input_in_one_line(org, capsys):
    for args in (
        ("org_suspend", "--org", "nope", "--reason", REASON),
        ("org_suspend", "--org", "acme", "--reason", " "),
        ("org_schedule_deletion", "--org", "acme", "--reason", REASON, "--days", "0"),
        ("org_schedule_deletion", "--org", "acme", "--reason", REASON, "--days", "999999999"),
    ):
        with pytest.raises(SystemExit):
            call_command(*args, stdout=StringIO())
        err = capsys.readouterr().err.strip()
        assert err and "\n" not in err
    org.refresh_from_db()
    assert org.is_active


def test_the_back_office_calls_the_services_from_the_platforms_escape_hatch(
    org, owner, staff, django_capture_on_commit_callbacks
):
    """The admin runs in unscoped_context (the platform's connection on PostgreSQL):
    the services still lock, audit, export and email in one transaction."""
    from accounts.tenancy import unscoped_context

    when = timezone.now() + dt.timedelta(days=30)
    with unscoped_context(), django_capture_on_commit_callbacks(execute=True):
        organization_suspend(organization=org, actor=staff, reason=REASON)
        organization_schedule_deletion(organization=org, actor=staff, reason=REASON, when=when)
        organization_cancel_deletion(organization=org, actor=staff)
        organization_reactivate(organization=org, actor=staff)
    org.refresh_from_db()
    assert org.is_active and org.deletion_scheduled_for is None
    with tenant_context(org):
        actions = list(
            AuditLogEntry.objects.filter(actor_kind="staff")
            .order_by("created_at", "pk")
            .values_list("action", flat=True)
        )
        assert Job.objects.get(kind="org_export").status == JobStatus.SUCCEEDED
    assert actions == [
        "org_suspended",
        "deletion_scheduled",
        "deletion_cancelled",
        "org_reactivated",
    ]
    assert len(mail.outbox) == 3  # suspended, deletion scheduled, reactivated
