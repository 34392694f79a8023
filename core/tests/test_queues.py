"""Fair scheduling: jobs go to the `interactive` or the `heavy` queue (core.jobs.job_queue),
a heavy job waiting for a slot goes back to the queue it came from, tasks sent with no
queue (beat's periodic tasks) land on `interactive`, and the embedded filesystem broker
carries both queues."""

from __future__ import annotations

import pytest
from celery import Celery, current_app
from celery.exceptions import Retry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from accounts.models import OrganizationLimits
from accounts.tenancy import tenant_context
from core import jobs as core_jobs
from core.jobs import job_queue, job_start
from core.models import Job, JobStatus
from core.tasks import demo_countdown
from core.tests.test_heavy_jobs import heavy_work
from customers.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _queues(settings):
    settings.JOB_QUEUE_INTERACTIVE = "interactive"
    settings.JOB_QUEUE_HEAVY = "heavy"
    settings.JOB_HEAVY_QUEUE_MIN_CUSTOMERS = 3
    settings.JOB_HEAVY_QUEUE_MIN_IMPORT_BYTES = 1000


def _customers(org, n):
    with tenant_context(org):
        CustomerFactory.create_batch(n)


def _job(org, kind, **params) -> Job:
    with tenant_context(org):
        return Job.objects.create(kind=kind, params={"_task": "x", **params})


# --- routing decisions --------------------------------------------------------------------


def test_the_defaults_are_the_lead_s_names():
    from django.conf import settings

    assert current_app.conf.task_default_queue == settings.JOB_QUEUE_INTERACTIVE
    # Every organisation's pipeline goes to the heavy queue by default: fifty small
    # shops' pipelines at once must not hold up imports and sends.
    import config.settings as configured  # the value before this module's fixture

    assert configured.JOB_HEAVY_QUEUE_MIN_CUSTOMERS == 0


def test_a_worker_started_without_q_consumes_both_queues():
    """`celery -A config worker --beat` (README, docs/contract.md) names no queue: it
    consumes every declared queue, so heavy jobs are never left without a worker."""
    queues = current_app.amqp.Queues(current_app.conf.task_queues)
    assert set(queues.consume_from) == {"interactive", "heavy"}  # no -Q
    queues.select(["interactive"])  # -Q interactive
    assert set(queues.consume_from) == {"interactive"}


@pytest.mark.parametrize("kind", ["segments", "predictions", "recommendations", "org_export"])
def test_heavy_kinds_of_a_big_organisation_go_to_heavy_of_a_small_one_to_interactive(
    org, other_org, kind
):
    _customers(org, 3)  # at the threshold
    _customers(other_org, 2)  # below it
    assert job_queue(_job(org, kind)) == "heavy"
    assert job_queue(_job(other_org, kind)) == "interactive"


@pytest.mark.parametrize("kind", ["demo", "erasure", "campaign_send", "automations_run"])
def test_light_kinds_go_to_interactive_whatever_the_size(org, kind):
    _customers(org, 5)
    assert job_queue(_job(org, kind)) == "interactive"


def test_a_threshold_of_zero_sends_every_heavy_kind_to_heavy(org, settings):
    settings.JOB_HEAVY_QUEUE_MIN_CUSTOMERS = 0
    assert job_queue(_job(org, "segments")) == "heavy"
    assert job_queue(_job(org, "demo")) == "interactive"


def _import(org, size: int):
    from customers.services.importing import import_create

    data = b"external_id,email\n" + b"".join(
        f"c{i},c{i}@example.com\n".encode() for i in range(size // 20 + 1)
    )
    with tenant_context(org):
        return import_create(
            organization=org,
            kind="customers",
            uploaded_file=SimpleUploadedFile("c.csv", data, content_type="text/csv"),
        )


def test_imports_go_by_file_size_not_by_organisation_size(org):
    _customers(org, 10)  # a big organisation: its small import stays interactive
    small, big = _import(org, 100), _import(org, 5000)
    assert small.size_bytes < 1000 <= big.size_bytes
    assert job_queue(_job(org, "import", import_id=small.pk)) == "interactive"
    assert job_queue(_job(org, "import", import_id=big.pk)) == "heavy"


def test_job_start_sends_the_task_on_the_chosen_queue(
    org, monkeypatch, django_capture_on_commit_callbacks
):
    _customers(org, 3)
    sent = []

    class Sent:
        id = "task-1"

    def record(task):
        def apply_async(*args, **options):
            sent.append((task.name, options.get("queue")))
            return Sent()

        return apply_async

    monkeypatch.setattr(heavy_work, "apply_async", record(heavy_work))
    monkeypatch.setattr(demo_countdown, "apply_async", record(demo_countdown))
    monkeypatch.setitem(
        core_jobs._KINDS,
        "segments",
        core_jobs.JobKind(name="segments", task_name=heavy_work.name, role="marketer", heavy=True),
    )
    with tenant_context(org), django_capture_on_commit_callbacks(execute=True):
        heavy = job_start(organization=org, kind="segments", task=heavy_work)
        light = job_start(organization=org, kind="demo", task=demo_countdown, params={"steps": 1})
    assert sent == [(heavy_work.name, "heavy"), (demo_countdown.name, "interactive")]
    assert {j.task_id for j in Job.all_objects.filter(pk__in=[heavy.pk, light.pk])} == {"task-1"}


def test_recovery_of_a_stale_heavy_job_sends_it_to_heavy_again(org, monkeypatch, settings):
    import datetime as dt

    _customers(org, 3)
    sent = []
    monkeypatch.setattr(
        core_jobs, "_send", lambda job, task=None: sent.append((job.pk, job_queue(job)))
    )
    old = timezone.now() - dt.timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 60)
    with tenant_context(org):
        job = Job.objects.create(
            kind="segments",
            status=JobStatus.RUNNING,
            started_at=old,
            heartbeat_at=old,
            attempts=1,
            params={"_task": heavy_work.name},
        )
    core_jobs.jobs_recover_stale()
    assert sent == [(job.pk, "heavy")]


# --- tasks with no queue: beat's periodic tasks --------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "core.tasks.jobs_recover_stale",
        "campaigns.tasks.send_due",
        "segmentation.tasks.nightly_fanout",
        "webhooks.tasks.webhook_deliver",
    ],
)
def test_tasks_sent_without_a_queue_go_to_interactive(name):
    router = current_app.amqp.router
    assert router.route({}, name)["queue"].name == "interactive"
    # a queue given by the sender (core.jobs._send) wins over the router
    assert router.route({"queue": "heavy"}, name)["queue"].name == "heavy"


# --- a heavy job waiting for a slot goes back to its own queue -----------------------------


def _wait_for_a_slot(org, monkeypatch, delivery_info):
    OrganizationLimits.objects.update_or_create(organization=org, defaults={"heavy_jobs": 1})
    monkeypatch.setitem(
        core_jobs._KINDS,
        "test_heavy",
        core_jobs.JobKind(
            name="test_heavy", task_name=heavy_work.name, role="marketer", heavy=True
        ),
    )
    now = timezone.now()
    with tenant_context(org):
        Job.objects.create(
            kind="test_heavy", status=JobStatus.RUNNING, started_at=now, heartbeat_at=now
        )
        job = Job.objects.create(kind="test_heavy", params={"_task": heavy_work.name})
    resent = []

    def apply_async(args=None, kwargs=None, **options):
        resent.append({"kwargs": kwargs, **options})

    monkeypatch.setattr(heavy_work, "apply_async", apply_async)
    call = {"organization_id": org.pk, "job_id": job.pk}
    heavy_work.push_request(
        is_eager=False,
        called_directly=False,  # as in a worker: Task.retry sends the task again
        retries=0,
        kwargs=call,
        id="t-q",
        delivery_info=delivery_info,
    )
    try:
        with pytest.raises(Retry):
            heavy_work(**call)  # the real Task.retry, down to apply_async
    finally:
        heavy_work.pop_request()
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.started_at is None
    assert len(resent) == 1 and resent[0]["kwargs"]["_heavy_waits"] == 1
    assert resent[0]["countdown"] > 0
    return resent[0]["queue"]


@pytest.mark.parametrize("queue", ["heavy", "interactive"])
def test_a_heavy_job_waiting_for_a_slot_is_requeued_to_the_queue_it_came_from(
    org, monkeypatch, queue
):
    delivery = {"exchange": "", "routing_key": queue}
    assert _wait_for_a_slot(org, monkeypatch, delivery) == queue


def test_without_delivery_information_the_wait_goes_to_the_job_s_own_queue(org, monkeypatch):
    _customers(org, 3)  # big: heavy
    assert _wait_for_a_slot(org, monkeypatch, {}) == "heavy"


# --- the embedded broker carries both queues -----------------------------------------------


def _embedded_app(tmp_path) -> Celery:
    folders = {}
    for sub in ("queue", "processed", "control"):
        (tmp_path / sub).mkdir()
        folders[sub] = str(tmp_path / sub)
    app = Celery("queues-test", set_as_current=False)
    app.conf.update(
        broker_url="filesystem://",
        broker_transport="core.broker:Transport",
        broker_transport_options={
            "data_folder_in": folders["queue"],
            "data_folder_out": folders["queue"],
            "processed_folder": folders["processed"],
            "control_folder": folders["control"],
            "store_processed": False,
            "polling_interval": 0.05,
        },
        task_default_queue="interactive",
        task_routes=("core.jobs.route_task",),
        task_serializer="json",
        accept_content=["json"],
    )
    return app


def _drain(app, queues: list[str], want: int) -> list[tuple[str, list]]:
    got: list[tuple[str, list]] = []

    def on_message(body, message):
        got.append((message.delivery_info["routing_key"], body[0]))
        message.ack()

    with app.connection_for_read() as conn:
        with conn.Consumer(
            [app.amqp.queues[q] for q in queues], callbacks=[on_message], accept=["json"]
        ):
            for _ in range(100):  # a bound, not a timing: at most 100 polls of 0.2 s
                if len(got) >= want:
                    break
                try:
                    conn.drain_events(timeout=0.2)
                except TimeoutError:
                    pass
    return got


def test_the_embedded_broker_delivers_on_both_queues(tmp_path):
    app = _embedded_app(tmp_path)

    @app.task(name="queues.echo")
    def echo(x):
        return x

    echo.apply_async(args=["small import"])  # no queue: routed to interactive
    echo.apply_async(args=["pipeline step"], queue="heavy")
    names = sorted(p.name.split(".", 1)[1] for p in (tmp_path / "queue").iterdir())
    assert names == ["heavy.msg", "interactive.msg"]

    # a worker of interactive only leaves the heavy message alone
    assert _drain(app, ["interactive"], want=2) == [("interactive", ["small import"])]
    assert [p.name.split(".", 1)[1] for p in (tmp_path / "queue").iterdir()] == ["heavy.msg"]
    # a worker of both queues (make worker, scripts/run.sh) gets the rest
    echo.apply_async(args=["another import"])
    got = _drain(app, ["interactive", "heavy"], want=2)
    assert sorted(got) == [("heavy", ["pipeline step"]), ("interactive", ["another import"])]
    assert list((tmp_path / "queue").iterdir()) == []
