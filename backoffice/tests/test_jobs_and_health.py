"""Failing and stuck jobs across organisations (with re-run), the platform health
page, the admin index's Platform panel and the staff groups."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditLogEntry
from accounts.tenancy import tenant_context
from accounts.tests.factories import OrganizationFactory, UserFactory
from backoffice.groups import OPERATIONS, OPERATIONS_PERMISSIONS, SUPPORT, staff_groups_sync
from core.models import Job

pytestmark = pytest.mark.django_db

FAILING = "admin:core_job_failing"
HEALTH = "admin:core_job_health"


def _staff(group: str | None, email: str):
    staff_groups_sync()
    user = UserFactory(email=email, is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def support():
    return _staff(SUPPORT, "support@segmenta.test")


@pytest.fixture
def operations():
    return _staff(OPERATIONS, "ops@segmenta.test")


@pytest.fixture
def failed_job():
    a = OrganizationFactory(name="Alpha Shop", slug="alpha")
    OrganizationFactory(name="Beta Shop", slug="beta")
    with tenant_context(a):
        return Job.objects.create(
            kind="demo",
            title="Count down",
            status="failed",
            message="Count down stopped at “Step 2 of 3”: something went wrong (reference: job 7).",
            params={"_task": "core.tasks.demo_countdown", "steps": 1, "delay": 0},
            attempts=2,
            created_at=timezone.now() - timedelta(hours=2),
            finished_at=timezone.now() - timedelta(hours=1),
        )


def test_failing_jobs_lists_a_failed_job_with_its_error(client, support, failed_job):
    client.force_login(support)
    page = client.get(reverse(FAILING))
    assert page.status_code == 200
    text = page.content.decode()
    assert f'id="job-{failed_job.pk}"' in text
    assert "Alpha Shop" in text and "something went wrong (reference: job 7)" in text
    assert "Re-run" not in text  # Support may look, not re-run
    # filters: another kind, or another organisation, hide it; a bad day count is named
    assert (
        f'id="job-{failed_job.pk}"'
        not in client.get(reverse(FAILING), {"kind": "import"}).content.decode()
    )
    beta = OrganizationFactory._meta.model.objects.get(slug="beta")
    assert (
        f'id="job-{failed_job.pk}"'
        not in client.get(reverse(FAILING), {"org": beta.pk}).content.decode()
    )
    bad = client.get(reverse(FAILING), {"days": "lots"})
    assert bad.status_code == 200 and "Days must be a whole number" in bad.content.decode()
    # older than the window: gone from the default list, back with days=30
    Job.all_objects.filter(pk=failed_job.pk).update(created_at=timezone.now() - timedelta(days=9))
    assert f'id="job-{failed_job.pk}"' not in client.get(reverse(FAILING)).content.decode()
    assert (
        f'id="job-{failed_job.pk}"' in client.get(reverse(FAILING), {"days": "30"}).content.decode()
    )


def test_rerun_queues_a_new_job_in_the_jobs_organisation(
    client, operations, failed_job, django_capture_on_commit_callbacks
):
    client.force_login(operations)
    assert "Re-run" in client.get(reverse(FAILING)).content.decode()
    with django_capture_on_commit_callbacks(execute=False) as sent:
        response = client.post(
            reverse("admin:core_job_rerun", args=[failed_job.pk]), {"next": reverse(FAILING)}
        )
    assert response.status_code == 302 and response["Location"] == reverse(FAILING)
    new = Job.all_objects.exclude(pk=failed_job.pk).get()
    assert new.organization_id == failed_job.organization_id
    assert (new.kind, new.status, new.title) == ("demo", "queued", "Count down")
    assert new.params["steps"] == 1
    assert len(sent) == 1  # sent to the broker once the transaction commits
    with tenant_context(failed_job.organization_id):
        entry = AuditLogEntry.objects.get(action="job_rerun")
        assert Job.objects.filter(pk=new.pk).exists()  # in the organisation's own scope
    assert entry.actor_kind == "staff" and entry.actor == operations
    assert entry.details["job"] == new.pk and entry.details["rerun_of"] == failed_job.pk


def test_rerun_needs_change_job_and_a_post(client, support, operations, failed_job):
    url = reverse("admin:core_job_rerun", args=[failed_job.pk])
    client.force_login(support)
    assert client.post(url).status_code == 403
    client.force_login(operations)
    assert client.get(url).status_code == 405
    assert Job.all_objects.count() == 1


def test_stuck_jobs_are_listed_and_a_stale_one_reruns(client, operations, settings):
    settings.JOB_STALE_AFTER_SECONDS = 600
    org = OrganizationFactory(name="Gamma Shop")
    with tenant_context(org):
        stale = Job.objects.create(
            kind="demo",
            title="Stuck countdown",
            status="running",
            params={"_task": "core.tasks.demo_countdown", "steps": 1, "delay": 0},
            heartbeat_at=timezone.now() - timedelta(minutes=30),
        )
    client.force_login(operations)
    text = client.get(reverse(FAILING)).content.decode()
    assert f'id="job-{stale.pk}"' in text and "running, no heartbeat" in text
    client.post(reverse("admin:core_job_rerun", args=[stale.pk]))
    stale.refresh_from_db()
    assert stale.status == "failed"
    assert Job.all_objects.filter(organization=org).exclude(pk=stale.pk).count() == 1


def test_platform_pages_need_the_health_permission(client):
    client.force_login(_staff(None, "nobody@segmenta.test"))
    assert client.get(reverse(FAILING)).status_code == 403
    assert client.get(reverse(HEALTH)).status_code == 403


def test_health_page_renders_with_the_embedded_broker(client, support, settings, tmp_path):
    queue = tmp_path / "queue"
    queue.mkdir()
    for i in range(2):
        (queue / f"{i}_abc.celery.msg").write_text("{}")
    (queue / ".3_abc.celery.msg.partial").write_text("")
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(queue)}
    client.force_login(support)
    page = client.get(reverse(HEALTH))
    assert page.status_code == 200
    text = page.content.decode()
    for name in ("Workers", "Broker", "Database", "Jobs"):
        assert f'id="health-{name.lower()}"' in text
    assert "2 messages waiting" in text
    assert "SELECT 1 took" in text
    assert "Every migration is applied." in text
    assert "No worker has reported" in text  # none runs in the tests


def test_health_page_says_when_the_broker_is_unreachable(client, support, settings, tmp_path):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path / "missing")}
    client.force_login(support)
    page = client.get(reverse(HEALTH))
    assert page.status_code == 200
    assert "queue folder" in page.content.decode() and "cannot be read" in page.content.decode()
    # Redis that does not answer (nothing listens on port 1)
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    page = client.get(reverse(HEALTH))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Redis at 127.0.0.1:1 does not answer" in text
    assert "Something needs attention" in text


def test_admin_index_has_the_platform_panel(client, operations, failed_job):
    client.force_login(operations)
    text = client.get(reverse("admin:index")).content.decode()
    assert 'id="platform-panel"' in text
    assert reverse("admin:accounts_organization_changelist") in text
    assert "Failing jobs (1)" in text and reverse(HEALTH) in text


def test_staff_groups_are_kept_up_to_date_idempotently():
    # made by `migrate` (post_migrate of the backoffice app)
    assert Group.objects.filter(name__in=[SUPPORT, OPERATIONS]).count() == 2
    staff_groups_sync()
    staff_groups_sync()
    ops = Group.objects.get(name=OPERATIONS)
    support = Group.objects.get(name=SUPPORT)
    codes = {f"{p.content_type.app_label}.{p.codename}" for p in ops.permissions.all()}
    assert codes == set(OPERATIONS_PERMISSIONS)
    support_codes = {p.codename for p in support.permissions.all()}
    assert "suspend_organization" not in support_codes
    assert "view_platform_health" in support_codes
    # no customer data in either group: that opens only through a support grant
    assert not any(c.startswith("customers.") for c in codes)


def test_health_page_reads_the_redis_queues(client, support, settings, monkeypatch):
    """With Redis as the broker (`pgenv` runs give one): the queue lengths are its lists'."""
    if not settings.REDIS_URL:
        pytest.skip("Redis only (REDIS_URL)")
    import redis

    from backoffice import health

    queue = f"backoffice-test-{OrganizationFactory().pk}"
    monkeypatch.setattr(health, "_queue_names", lambda: [queue])
    settings.CELERY_BROKER_URL = settings.REDIS_URL
    server = redis.Redis.from_url(settings.REDIS_URL)
    server.rpush(queue, "one", "two", "three")
    try:
        client.force_login(support)
        page = client.get(reverse(HEALTH))
    finally:
        server.delete(queue)
    assert page.status_code == 200
    text = page.content.decode()
    assert f"Queue “{queue}”: 3 messages waiting" in text
    assert "answers; 3 messages waiting" in text


def test_rerun_twice_starts_one_job_and_the_list_says_so(client, operations, failed_job):
    """A double click (or a second tab) on Re-run must not start the job twice."""
    client.force_login(operations)
    url = reverse("admin:core_job_rerun", args=[failed_job.pk])
    client.post(url)
    second = client.post(url, follow=True)
    assert Job.all_objects.exclude(pk=failed_job.pk).count() == 1
    new = Job.all_objects.exclude(pk=failed_job.pk).get()
    assert f"was already re-run as job #{new.pk}" in second.content.decode()
    with tenant_context(failed_job.organization_id):
        assert AuditLogEntry.objects.filter(action="job_rerun").count() == 1
    text = client.get(reverse(FAILING)).content.decode()
    assert f"Re-run as #{new.pk}" in text
    assert f"Re-run job #{failed_job.pk} " not in text  # no button for it any more


def test_rerun_refuses_a_job_that_succeeded(client, operations, failed_job):
    """The failing jobs page re-runs failed and stuck jobs; a POST naming a job that
    succeeded (an import, a send) must not run it a second time."""
    Job.all_objects.filter(pk=failed_job.pk).update(status="succeeded")
    client.force_login(operations)
    page = client.post(reverse("admin:core_job_rerun", args=[failed_job.pk]), follow=True)
    assert Job.all_objects.count() == 1
    assert "succeeded" in page.content.decode()


def test_jobs_paused_by_a_suspension_are_not_stuck(client, operations, settings):
    """A suspended organisation's jobs wait on purpose (core.jobs._pause); they are
    not 'stuck', and re-running them would only pause them again."""
    settings.JOB_QUEUED_WARNING_SECONDS = 60
    org = OrganizationFactory(name="Delta Shop", status="suspended")
    with tenant_context(org):
        paused = Job.objects.create(
            kind="demo",
            title="Waiting countdown",
            status="queued",
            message="Paused while Delta Shop is suspended.",
            params={"_task": "core.tasks.demo_countdown", "steps": 1, "_paused": True},
        )
        lost = Job.objects.create(
            kind="demo",
            title="Lost countdown",
            status="queued",
            params={"_task": "core.tasks.demo_countdown", "steps": 1},
        )
    Job.all_objects.filter(pk__in=[paused.pk, lost.pk]).update(
        created_at=timezone.now() - timedelta(hours=3)
    )
    client.force_login(operations)
    text = client.get(reverse(FAILING)).content.decode()
    assert f'id="job-{lost.pk}"' in text
    assert f'id="job-{paused.pk}"' not in text
