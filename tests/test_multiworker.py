"""More than one machine (issue 15): several real worker processes on the Redis
broker, each started as on its own host (`celery -A config worker -n mwN@%h`, its own
process group), sharing the test database as the application role.

- Jobs of several organisations are taken by any of the workers, each exactly once.
- A worker lost mid-job (SIGKILL of its whole process group, as a host that dies) is
  recovered: beat's stale-job recovery requeues the job and another worker runs it
  to the end once; a job already started JOB_MAX_ATTEMPTS times fails with a
  message instead; and when the broker hands the lost worker's unacknowledged
  message to another worker later (acks_late, visibility timeout), nothing runs
  twice.
- Two schedulers started by mistake (a `celery beat` and a `worker --beat`) send
  each slot of a periodic task once (core/scheduling.py).

The workers load this module (`--include tests.test_multiworker`) for the probe
task and for the signal handlers that log every delivery and run to Redis, so
"exactly once" is read from what the workers did, not from the Job rows alone.
Needs PostgreSQL and Redis (make test-services); skipped otherwise. No timings
are asserted: every wait is for a condition, with a generous timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from celery import current_app, shared_task
from celery.signals import task_postrun, task_prerun, worker_ready
from django.conf import settings
from django.db import transaction

from core.jobs import TenantTask
from core.scheduling import SLOT_HEADER

ROOT = Path(__file__).resolve().parent.parent
RECORD_ENV = "SEGMENTA_MULTIWORKER_RECORD"  # set for the worker processes only
KEY = "segmenta:test:multiworker"
QUEUES = "interactive,heavy,celery"  # `celery`: the default queue before issue 15's two
RECOVER = "core.tasks.jobs_recover_stale"
RECOVER_ENTRY = "recover jobs whose worker died"


# --- what the workers load ------------------------------------------------------------


def _redis():
    import redis

    return redis.Redis.from_url(os.environ.get("REDIS_URL") or settings.REDIS_URL)


def _record(*fields) -> None:
    _redis().rpush(KEY, " ".join(str(f) for f in fields))


@shared_task(base=TenantTask, bind=True, name="tests.multiworker.probe")
def probe(self, *, organization_id: int, job_id: int | None, steps: int = 1, delay: float = 0.0):
    """A job that says where it runs: a "start" and an "end" record per run."""
    host = self.request.hostname
    _record("start", job_id, host)
    for i in range(steps):
        self.job.progress(100 * i / steps, f"Step {i + 1} of {steps} on {host}")
        time.sleep(delay)
    _record("end", job_id, host)
    return {"message": f"Ran on {host}.", "host": host}


@task_prerun.connect
def _delivered(sender=None, task_id=None, task=None, kwargs=None, **_):
    if not os.environ.get(RECORD_ENV):
        return
    if sender.name == probe.name:
        _record("delivered", (kwargs or {}).get("job_id"), task.request.hostname, task_id)
    elif sender.name == RECOVER:
        slot = getattr(task.request, SLOT_HEADER, None) or "-"
        _record("recover", slot, task.request.hostname, task_id)


@task_postrun.connect
def _handled(sender=None, task_id=None, task=None, kwargs=None, **_):
    if os.environ.get(RECORD_ENV) and sender.name == probe.name:
        _record("handled", (kwargs or {}).get("job_id"), task.request.hostname, task_id)


@worker_ready.connect
def _ready(sender=None, **_):
    if os.environ.get(RECORD_ENV):
        _record("ready", sender.hostname)


# --- the test side --------------------------------------------------------------------

pytestmark = [
    pytest.mark.skipif(
        not settings.REDIS_URL or settings.DB_VENDOR != "postgresql",
        reason="several workers need PostgreSQL and Redis (make test-services)",
    ),
    pytest.mark.django_db(transaction=True),
]


def _records(kind: str) -> list[list[str]]:
    rows = [r.decode().split(" ") for r in _redis().lrange(KEY, 0, -1)]
    return [r[1:] for r in rows if r[0] == kind]


def _wait_for(condition, *, timeout: float = 180, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or condition}")
        time.sleep(0.3)


class Cluster:
    """Worker and beat processes, each in its own process group (a "host")."""

    def __init__(self, tmp_path: Path, **env_extra):
        from tests.test_worker import _database_url

        self.tmp = tmp_path
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {
            **os.environ,
            "DATABASE_URL": _database_url("app"),
            "DATABASE_PLATFORM_URL": _database_url("platform"),
            "SEGMENTA_VAR_DIR": str(settings.VAR_DIR),
            "DJANGO_ENV": "development",  # as in production, not the test settings
            "LOG_LEVEL": "INFO",
            RECORD_ENV: "1",
            **{k: str(v) for k, v in env_extra.items()},
        }
        self.env.pop("DATABASE_OWNER_URL", None)

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "celery", "-A", "config", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def worker(self, name: str, *extra: str) -> str:
        self._start(
            name,
            ["worker", "-n", f"{name}@%h", "-Q", QUEUES, "--pool", "prefork", "--concurrency",
             "1", "--loglevel", "INFO", "--without-mingle", "--without-gossip",
             "--include", "tests.test_multiworker", *extra],
        )  # fmt: skip
        return name

    def beat(self, name: str) -> None:
        self._start(
            name, ["beat", "--schedule", str(self.tmp / f"{name}-schedule"), "--loglevel", "INFO"]
        )

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def wait_ready(self, *names: str) -> None:
        def ready():
            up = {host.split("@")[0] for (host,) in _records("ready")}
            for name in names:
                if self.procs[name].poll() is not None:
                    pytest.fail(f"{name} exited:\n{self.log(name)[-3000:]}")
            return set(names) <= up

        _wait_for(ready, timeout=240, what=f"workers {names} to be ready")

    def kill(self, name: str) -> None:
        """The host is lost: SIGKILL to the worker and its pool processes at once."""
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(timeout=30)

    def stop(self, *names: str) -> None:
        """Stop them (all by default) at once: nothing they would finish matters any
        more, so no warm shutdown to wait for."""
        procs = [self.procs[n] for n in names or self.procs if self.procs[n].poll() is None]
        for proc in procs:
            with _suppress():
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in procs:
            proc.wait(timeout=30)


def _suppress():
    import contextlib

    return contextlib.suppress(ProcessLookupError)


@pytest.fixture
def cluster(transactional_db, settings, tmp_path):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    current_app.conf.task_always_eager = False
    r = _redis()
    # Nothing left from an earlier run: our records, queued and unacknowledged messages.
    for key in r.scan_iter():
        if key.split(b"\x06")[0] in {b"celery", b"interactive", b"heavy", b"unacked",
                                     b"unacked_index", b"unacked_mutex", KEY.encode()}:  # fmt: skip
            r.delete(key)
    clusters: list[Cluster] = []

    def make(**env_extra) -> Cluster:
        clusters.append(Cluster(tmp_path, **env_extra))
        return clusters[-1]

    yield make
    for c in clusters:
        c.stop()
    current_app.conf.task_always_eager = True


def _job(org, *, attempts: int = 0, **params):
    from accounts.tenancy import tenant_context
    from core.jobs import job_start
    from core.models import Job

    with transaction.atomic(), tenant_context(org):
        job = job_start(organization=org, kind="demo", task=probe, params=params)
        if attempts:
            Job.objects.filter(pk=job.pk).update(attempts=attempts)
    return job.pk


def _get(job_id: int):
    from core.models import Job

    return Job.all_objects.get(pk=job_id)


def _running_on(job_id: int) -> str | None:
    """The worker (its name) a job reports running on, from its progress message."""
    from core.models import JobStatus

    job = _get(job_id)
    if job.status == JobStatus.RUNNING and " on " in job.message:
        return job.message.split(" on ")[1].split("@")[0]
    return None


def test_three_workers_share_jobs_and_a_lost_one_is_recovered_without_running_twice(cluster):
    """Three workers (as on three hosts) and a beat, on Redis.

    1. 32 jobs of four organisations: each is run exactly once, by more than one worker.
    2. Two jobs run on two workers whose hosts are then lost (SIGKILL). Beat's recovery
       requeues the first (attempt 2 of 3) for the surviving worker, which runs it to
       the end; the second was on its last attempt and fails with a message. Later the
       broker redelivers both lost workers' unacknowledged messages (acks_late,
       visibility timeout): they change nothing."""
    from accounts.tests.factories import OrganizationFactory
    from core.models import JobStatus

    # The broker hands a lost worker's message on after 20 s: well after the recovery
    # (5 s stale, recovery every 2.5 s), as in production (3 h against 10 min).
    c = cluster(JOB_STALE_AFTER_SECONDS=5, JOB_MAX_ATTEMPTS=3, BROKER_VISIBILITY_TIMEOUT=20)
    workers = [c.worker(f"mw{i}") for i in (1, 2, 3)]
    c.beat("beat")
    c.wait_ready(*workers)

    # 1. any worker takes any job, each exactly once
    orgs = [OrganizationFactory() for _ in range(4)]
    jobs = [_job(org, steps=2, delay=0.1) for org in orgs for _ in range(8)]
    _wait_for(lambda: all(_get(j).is_finished for j in jobs), what="every job to finish")

    done = [_get(j) for j in jobs]
    assert {j.status for j in done} == {JobStatus.SUCCEEDED}, [j.message for j in done]
    assert {j.attempts for j in done} == {1}
    starts = Counter(int(job) for job, _host in _records("start"))
    ends = Counter(int(job) for job, _host in _records("end"))
    assert starts == ends == Counter(jobs)  # each job ran once, to its end
    hosts = {host for _job_id, host in _records("end")}
    assert len(hosts) >= 2, hosts  # taken by more than one worker
    assert {j.result["host"] for j in done} == hosts

    # 2. two workers are lost mid-job
    again = _job(orgs[0], steps=24, delay=0.25)
    last = _job(orgs[1], attempts=2, steps=24, delay=0.25)
    first_message = {j: _get(j).task_id for j in (again, last)}
    _wait_for(lambda: _running_on(again) and _running_on(last), what="both jobs to run")
    lost = {_running_on(again), _running_on(last)}
    assert len(lost) == 2  # one job per worker (concurrency 1, prefetch 1)
    for name in lost:
        c.kill(name)
    (survivor,) = set(workers) - lost

    _wait_for(lambda: _get(again).is_finished and _get(last).is_finished, what="recovery")
    recovered, failed = _get(again), _get(last)
    assert recovered.status == JobStatus.SUCCEEDED, recovered.message
    assert recovered.attempts == 2
    assert recovered.result["host"].startswith(f"{survivor}@")
    assert failed.status == JobStatus.FAILED
    assert "worker stopped" in failed.message and "3 times" in failed.message, failed.message

    # The lost workers' own messages come back (visibility timeout) to the survivor,
    # which handles them...
    def redelivered(job_id):
        return any(
            int(job) == job_id and task_id == first_message[job_id] and host.startswith(survivor)
            for job, host, task_id in _records("handled")
        )

    _wait_for(lambda: redelivered(again) and redelivered(last), what="the broker's redelivery")
    # ...and they change nothing: one end, no run without a take.
    starts = Counter(int(job) for job, _host in _records("start") if int(job) in first_message)
    ends = Counter(int(job) for job, _host in _records("end") if int(job) in first_message)
    assert ends == Counter({again: 1}), ends
    assert starts == Counter({again: 2, last: 1}), starts  # killed once each, rerun once
    assert _get(again).status == JobStatus.SUCCEEDED and _get(again).attempts == 2
    assert _get(last).status == JobStatus.FAILED and _get(last).attempts == 3


def test_a_job_silent_for_longer_than_the_staleness_is_not_taken_for_lost(cluster):
    """A job that reports no progress for a while (a model fit) keeps its heartbeat
    through its worker's heartbeat thread: recovery must not requeue it while its
    worker lives, or a second worker would run it at the same time."""
    from accounts.tests.factories import OrganizationFactory
    from core.models import JobStatus

    c = cluster(JOB_STALE_AFTER_SECONDS=3)
    workers = [c.worker(f"mw{i}") for i in (1, 2)]
    c.beat("beat")
    c.wait_ready(*workers)
    # recovery must be running, or the job would pass for want of anyone to take it
    _wait_for(lambda: "Sending due task " + RECOVER_ENTRY in c.log("beat"), what="the beat")

    silent = _job(OrganizationFactory(), steps=1, delay=12)  # 4 x the staleness, silent
    _wait_for(lambda: _get(silent).is_finished, what="the silent job")
    assert _get(silent).status == JobStatus.SUCCEEDED
    starts = [host for job, host in _records("start") if int(job) == silent]
    assert len(starts) == 1, starts  # run once, not once per recovery


def test_two_schedulers_started_by_mistake_send_each_slot_once(cluster):
    """A `celery beat` and a `celery worker --beat` both schedule stale-job recovery
    every second (JOB_STALE_AFTER_SECONDS=2): each slot is run once, by one of them."""
    from core.models import ScheduledRun

    c = cluster(JOB_STALE_AFTER_SECONDS=2)
    c.worker("mw1", "--beat", "--schedule", str(c.tmp / "mw1-schedule"))
    c.beat("beat")
    c.wait_ready("mw1")

    def slots() -> list[str]:
        return [slot for slot, _host, _id in _records("recover") if slot != "-"]

    def sending(name: str) -> bool:
        return f"Sending due task {RECOVER_ENTRY}" in c.log(name)

    _wait_for(lambda: sending("beat") and sending("mw1"), what="both schedulers to send")
    seen = len(set(slots()))
    _wait_for(lambda: len(set(slots())) >= seen + 6, what="six more slots of recovery")
    c.stop("beat", "mw1")

    ran = Counter(slots())
    assert max(ran.values()) == 1, [s for s, n in ran.items() if n > 1]  # never twice
    claimed = {
        row.isoformat()
        for row in ScheduledRun.objects.filter(name=RECOVER_ENTRY).values_list("slot", flat=True)
    }
    assert set(ran) <= claimed  # every run was its slot's claimed send
    # Each scheduler's send of a slot the other had claimed did nothing.
    assert "schedule.skip name=" + RECOVER_ENTRY in c.log("beat") + c.log("mw1")
