"""Jobs run in a real worker process: the embedded file broker by default, Redis
when REDIS_URL is set (make test-services). The worker shares the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import current_app
from django.conf import settings
from django.db import connection, connections

from accounts.tenancy import tenant_context, unscoped_context
from accounts.tests.factories import OrganizationFactory
from core.jobs import job_cancel, job_start
from core.models import Job, JobStatus
from core.tasks import demo_countdown

ROOT = Path(__file__).resolve().parent.parent


def _database_url(alias: str = "default") -> str:
    # On PostgreSQL the test process logs in as the platform role ("default") and
    # has a login of each role ("app", "platform"): the worker gets one of each.
    db = connections[alias].settings_dict if alias in connections else connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(transactional_db, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    current_app.conf.task_always_eager = False
    env = {
        **os.environ,
        "DATABASE_URL": _database_url("app"),
        "SEGMENTA_VAR_DIR": str(settings.VAR_DIR),
    }
    env.pop("DATABASE_OWNER_URL", None)
    # The worker runs as in production, not on the test settings this process has.
    env["DJANGO_ENV"] = "development"
    if "platform" in connections:
        env["DATABASE_PLATFORM_URL"] = _database_url("platform")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    current_app.conf.task_always_eager = True


def _wait(job_id: int, until, timeout: float = 60.0) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with unscoped_context():
            job = Job.all_objects.get(pk=job_id)
        if until(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} stuck at {job.status} {job.progress}% ({job.message})")


def test_job_runs_in_the_worker_with_progress(worker):
    org = OrganizationFactory()
    with tenant_context(org):
        job = job_start(
            organization=org, kind="demo", task=demo_countdown, params={"steps": 5, "delay": 0.3}
        )
    assert job.status == JobStatus.QUEUED
    seen_running = _wait(job.pk, lambda j: j.status == JobStatus.RUNNING and j.progress > 0)
    assert 0 < seen_running.progress < 100
    done = _wait(job.pk, lambda j: j.is_finished)
    assert done.status == JobStatus.SUCCEEDED, done.message
    assert done.progress == 100 and done.result == {"steps": 5}


def test_running_job_can_be_cancelled(worker):
    org = OrganizationFactory()
    with tenant_context(org):
        job = job_start(
            organization=org, kind="demo", task=demo_countdown, params={"steps": 200, "delay": 0.1}
        )
        _wait(job.pk, lambda j: j.status == JobStatus.RUNNING)
        job_cancel(job=Job.objects.get(pk=job.pk))
    done = _wait(job.pk, lambda j: j.is_finished)
    assert done.status == JobStatus.CANCELLED
    assert done.progress < 100


def test_broker_matches_the_environment():
    expected = "redis" if os.environ.get("REDIS_URL") else "filesystem"
    assert settings.CELERY_BROKER_URL.startswith(expected)
