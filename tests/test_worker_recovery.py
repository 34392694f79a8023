"""Real worker processes (issue 8, item 19): a job whose worker is killed (SIGKILL) is
picked up again when a worker starts, and a pipeline step queued while an import runs
waits in the queue, leaving the worker free, and runs when the import has ended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from celery import current_app
from django.conf import settings
from django.utils import timezone

from accounts.tenancy import tenant_context
from accounts.tests.factories import OrganizationFactory
from core.jobs import job_start
from core.models import Job, JobStatus
from core.tasks import demo_countdown
from customers.models import Import
from customers.tests.factories import ImportFactory
from segmentation.models import SegmentationRun
from segmentation.pipeline import pipeline_start
from segmentation.tests.factories import planted_customers
from tests.test_worker import ROOT, _database_url, _wait


def _start_worker(**env_extra) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "SEGMENTA_VAR_DIR": str(settings.VAR_DIR),
        **{k: str(v) for k, v in env_extra.items()},
    }
    env.pop("DATABASE_OWNER_URL", None)
    # The worker runs as in production, not on the test settings this process has.
    env["DJANGO_ENV"] = "development"
    if env.get("DATABASE_PLATFORM_URL"):
        # the recovery reads across organisations through the platform connection:
        # to the test database too (the test process itself logs in as that role)
        env["DATABASE_PLATFORM_URL"] = _database_url()
    return subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
         "--loglevel", "WARNING", "--without-heartbeat", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def workers(transactional_db, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    current_app.conf.task_always_eager = False
    started: list[subprocess.Popen] = []

    def start(**env_extra):
        started.append(_start_worker(**env_extra))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            _stop(proc)
    current_app.conf.task_always_eager = True


def test_a_job_whose_worker_was_killed_runs_again_when_a_worker_starts(workers):
    org = OrganizationFactory()
    first = workers(JOB_STALE_AFTER_SECONDS=2)
    with tenant_context(org):
        job = job_start(
            organization=org, kind="demo", task=demo_countdown, params={"steps": 40, "delay": 0.1}
        )
    _wait(job.pk, lambda j: j.status == JobStatus.RUNNING and j.progress > 0)
    _stop(first, signal.SIGKILL)
    time.sleep(2.5)  # its heartbeat goes stale

    workers(JOB_STALE_AFTER_SECONDS=2)

    done = _wait(job.pk, lambda j: j.is_finished, timeout=60)
    assert done.status == JobStatus.SUCCEEDED, done.message
    assert done.attempts == 2


def test_a_step_waits_in_the_queue_for_a_running_import(workers):
    org = OrganizationFactory()
    planted_customers(org, n_customers=300)
    with tenant_context(org):
        imp_job = Job.objects.create(
            kind="import", status=JobStatus.RUNNING,
            started_at=timezone.now(), heartbeat_at=timezone.now(),
        )  # fmt: skip
        imp = ImportFactory(organization=org, status="running", job=imp_job)
    workers(JOB_WAIT_RETRY_SECONDS=1)
    with tenant_context(org):
        started = pipeline_start(organization=org, steps=["segments"])
    step = started["jobs"]["segments"]

    waiting = _wait(step, lambda j: "Waiting for the import" in j.message)
    assert waiting.status == JobStatus.QUEUED
    with tenant_context(org):
        assert not SegmentationRun.objects.exists()
    Import.all_objects.filter(pk=imp.pk).update(status="succeeded")
    Job.all_objects.filter(pk=imp_job.pk).update(status=JobStatus.SUCCEEDED)

    done = _wait(step, lambda j: j.is_finished, timeout=60)
    assert done.status == JobStatus.SUCCEEDED, done.message
    with tenant_context(org):
        assert SegmentationRun.objects.filter(is_live=True).exists()
