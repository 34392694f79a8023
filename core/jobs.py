"""Starting, reporting on and cancelling background jobs.

A job is a `Job` row plus a Celery task built on `TenantTask`. Services start
jobs with `job_start`; the task reports through a `JobHandle` (progress,
message, cancel checks between chunks — the embedded broker cannot broadcast a
revoke, so cancelling is a flag the job reads).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import InterfaceError, OperationalError, connection, models, transaction
from django.utils import timezone

from accounts.tenancy import tenant_context

from .exceptions import ApplicationError, NotFound, PermissionDenied
from .jsonsafe import json_safe
from .models import FINISHED, Job, JobStatus

log = logging.getLogger("segmenta.jobs")


# --- job kinds: who may start one, whether people may cancel it -------------------------


@dataclass(frozen=True)
class JobKind:
    name: str
    task_name: str
    role: str  # the least role that may start it, and so re-run it
    cancellable: bool = True  # False: people cannot stop it (privacy clean-up)
    api_keys: bool = True  # whether a write API key may start it
    # Heavy jobs (pipeline steps, exports) count against the organisation's
    # `heavy_jobs` limit: beyond it, the next one waits in the queue (TenantTask).
    heavy: bool = False
    # Called with the Job once it has ended cancelled before its task body finished
    # (`job_cancelled_hook`): puts the object the job works on out of its in-progress
    # state. Must only touch an object whose `job_id` is this job, and be idempotent.
    on_cancelled: Callable[[Job], None] | None = None
    # False for a kind that only serves a page while someone waits on it (the audience
    # builder's model preview): its jobs are left out of the jobs page, the dashboard
    # and the API's job list unless asked for by kind, and its failures (which are
    # answers such as "too few responders") send no `job.failed` webhook.
    listed: bool = True


# Kinds that run while their organisation is suspended: they protect people's data
# (an erasure's clean-up) or hand the data back to its owners (the export made
# before a scheduled deletion). Every other kind is paused.
RUNS_WHILE_SUSPENDED = frozenset({"org_export", "erasure"})

_KINDS: dict[str, JobKind] = {}
_discovered = False


def register_job_kind(
    *,
    name: str,
    task,
    role: str = "marketer",
    cancellable: bool = True,
    api_keys: bool = True,
    heavy: bool = False,
    on_cancelled: Callable[[Job], None] | None = None,
    listed: bool = True,
) -> JobKind:
    """Declare a kind of job next to its task. Starting and re-running a job of the
    kind both check `role`; `cancellable=False` refuses every cancel request;
    `heavy=True` counts it against the organisation's limit of heavy jobs at a time;
    `on_cancelled(job)` is called when a job of the kind ends cancelled before its
    body finished (cancelled while queued, found cancelled when a worker picks it up,
    or stopped at a cancel check), so that what the job works on is not left "in
    progress" for ever; `listed=False` keeps its jobs out of the lists (JobKind)."""
    kind = JobKind(
        name=name,
        task_name=task if isinstance(task, str) else task.name,
        role=str(role),
        cancellable=cancellable,
        api_keys=api_keys,
        heavy=heavy,
        on_cancelled=on_cancelled,
        listed=listed,
    )
    _KINDS[name] = kind
    return kind


def jobs_listed(queryset, kind: str | None = None):
    """`queryset` of jobs as the lists show it: only `kind`'s when one is asked for,
    else without the kinds registered `listed=False`."""
    if kind:
        return queryset.filter(kind=kind)
    hidden = [k.name for k in _KINDS.values() if not k.listed]
    return queryset.exclude(kind__in=hidden) if hidden else queryset


def job_kind_registered(name: str) -> bool:
    """Whether a kind of this name is registered already (without importing tasks)."""
    return name in _KINDS


def _discover() -> None:
    global _discovered
    if not _discovered:
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("tasks")  # each app declares its kinds beside its tasks
        _discovered = True


def job_kinds() -> dict[str, JobKind]:
    _discover()
    return dict(_KINDS)


def job_kind(name: str) -> JobKind:
    kind = _KINDS.get(name) or job_kinds().get(name)
    if kind is None:
        raise ImproperlyConfigured(
            f"Job kind {name!r} is not registered: call core.jobs.register_job_kind() "
            "beside its task."
        )
    return kind


def job_kind_authorize(*, kind: JobKind, organization, user) -> None:
    """Refuse the actor (an `accounts.actor.Actor`, or a user or an API key's
    principal read as one) a job of `kind` their role does not allow. No one means
    the platform itself (schedules, follow-up work), which may start any job."""
    from accounts.actor import Actor
    from accounts.models import ROLE_RANK, Role

    if user is None or not (isinstance(user, Actor) or getattr(user, "is_authenticated", False)):
        return
    actor = Actor.of(user, organization=organization)
    needed = Role(kind.role)
    if actor.is_api_key and (not kind.api_keys or ROLE_RANK[needed] > ROLE_RANK[Role.MARKETER]):
        raise PermissionDenied(
            f"This needs the {needed.label.lower()} role; an API key cannot start it."
        )
    actor.require(needed)


class JobCancelled(Exception):
    """Raised inside a job when someone asked for it to stop."""


class JobMustWait(Exception):
    """Raised inside a job that must not go on yet (a pipeline step while an import of
    the organisation is unfinished). Nothing has been published; the job goes back to
    the queue and starts again from the beginning once `ready()` is true."""

    def __init__(self, message: str, *, ready):
        super().__init__(message)
        self.message = message
        self.ready = ready


class JobPaused(Exception):
    """Raised inside a job that must stop until its organisation is reactivated (a
    send while the organisation is suspended). The job goes back to "queued" with
    the message, and is not sent again until `organization_reactivate` sends every
    paused job of the organisation again (accounts/suspension.py)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class JobHandle:
    """What a running job uses to report progress and notice cancellation."""

    _MIN_INTERVAL = 0.3  # seconds between progress writes

    def __init__(self, job_id: int | None):
        self.job_id = job_id
        self._last_write = 0.0
        self._last_percent = -1

    @property
    def actor(self):
        """Who acts in a job: the system, named by the job (`accounts.actor.Actor`)."""
        from accounts.actor import Actor

        return Actor.system(f"job #{self.job_id}" if self.job_id else "command line")

    def progress(self, percent: float, message: str = "", *, force: bool = False) -> None:
        percent = int(max(0, min(99, percent)))
        now = time.monotonic()
        if self.job_id is None:
            if message and (force or percent != self._last_percent):
                log.info("job.progress percent=%s message=%s", percent, message)
            self._last_percent = percent
            return
        if (
            not force
            and now - self._last_write < self._MIN_INTERVAL
            and percent == self._last_percent
        ):
            return
        self._last_write, self._last_percent = now, percent
        fields: dict[str, Any] = {"progress": percent, "heartbeat_at": timezone.now()}
        if message:
            fields["message"] = message[:500]
        _write_progress(self.job_id, fields)
        self.check_cancel()

    def check_cancel(self) -> None:
        if self.job_id is None:
            return
        if Job.all_objects.filter(pk=self.job_id, cancel_requested=True).exists():
            raise JobCancelled()


NULL_JOB = JobHandle(None)


# --- progress outside the job's own reads -------------------------------------------------
# A job reads large tables in chunks and reports progress between them. On SQLite the
# read cursor holds a read snapshot until it is exhausted; an UPDATE on the same
# connection turns that snapshot into a write transaction, which SQLite refuses at once
# ("database is locked", the busy timeout does not apply) as soon as any other process
# has committed since the read began — so with the site in use the job failed on every
# retry. Progress therefore goes through a second connection of the same thread, as a
# short transaction of its own. Inside an atomic block (a job's final write, or a test
# wrapped in a transaction) the job already holds the write lock: it writes there.
_side = threading.local()


def _side_connection():
    name = connection.settings_dict["NAME"]
    side = getattr(_side, "conn", None)
    if side is None or _side.pid != os.getpid() or side.settings_dict["NAME"] != name:
        side = connection.copy()
        _side.conn, _side.pid = side, os.getpid()
    return side


def _write_progress(job_id: int, fields: dict[str, Any]) -> None:
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        Job.all_objects.filter(pk=job_id).update(**fields)
        return
    side = _side_connection()
    columns = list(fields)
    values = [
        side.ops.adapt_datetimefield_value(v) if k == "heartbeat_at" else v
        for k, v in fields.items()
    ]
    assignments = ", ".join(f"{side.ops.quote_name(c)} = %s" for c in columns)
    with side.cursor() as cursor:
        cursor.execute(
            f"UPDATE {side.ops.quote_name(Job._meta.db_table)} SET {assignments} WHERE id = %s",  # noqa: S608 - fixed column names
            [*values, job_id],
        )


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
)


class TenantTask(Task):
    """Base class for every job task: sets the organisation, writes the Job row.

    Tasks take `organization_id` and `job_id` keyword arguments (ids only) and find
    their handle in `self.job`. Only transient errors (database or broker
    connection) are retried, with backoff; everything else fails the job with a
    readable reason.
    """

    abstract = True
    autoretry_for = TRANSIENT_ERRORS
    retry_backoff = 5
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = 3
    acks_late = True

    def __call__(self, *args, organization_id: int, job_id: int | None = None, **kwargs):
        # How many times this delivery waited for a heavy-job slot (carried by the
        # retry, not passed to the task): those waits do not count towards
        # JOB_WAIT_MAX_SECONDS (see `_wait_heavy`).
        heavy_waits = int(kwargs.pop("_heavy_waits", 0) or 0)
        with tenant_context(organization_id):
            if job_id is None:
                self.job = NULL_JOB
                return super().__call__(
                    *args, organization_id=organization_id, job_id=None, **kwargs
                )
            job = Job.objects.filter(pk=job_id).first()
            if job is None or job.status in FINISHED:
                # A repeated delivery of a finished (or deleted) job is harmless.
                log.info("job.skip job_id=%s", job_id)
                return None
            if job.cancel_requested:
                _finish(job_id, JobStatus.CANCELLED, "Cancelled before it started.")
                job_cancelled_hook(job_id)
                return None
            if job.status == JobStatus.RUNNING and not job.is_stale and not self.request.is_eager:
                # A repeated delivery (a redelivered message, a recovery racing a slow
                # worker) of a job another worker is running: never run it twice at once.
                # (An eager retry runs inside the first call, in this very process.)
                log.info("job.skip_running job_id=%s", job_id)
                return None
            if job.kind not in RUNS_WHILE_SUSPENDED and not _organization_active(organization_id):
                # Not sent again: organization_reactivate sends every paused job.
                _pause(job_id, _paused_message(organization_id))
                log.info("job.paused job_id=%s org_id=%s", job_id, organization_id)
                return None
            kind = job_kinds().get(job.kind)
            if kind is not None and kind.heavy:
                taken, busy = _take_heavy(job, organization_id)
                if busy:
                    return self._wait_heavy(
                        busy, args, organization_id, job_id, kwargs, heavy_waits
                    )
            else:
                taken = _take(job)
            if not taken:
                log.info("job.skip_taken job_id=%s", job_id)
                return None
            self.job = JobHandle(job_id)
            if not self.request.is_eager:
                _beating_jobs_add(job_id, organization_id)
            try:
                result = super().__call__(
                    *args, organization_id=organization_id, job_id=job_id, **kwargs
                )
            except JobMustWait as wait:
                return self._wait(wait, args, organization_id, job_id, kwargs, heavy_waits)
            except JobPaused as paused:
                _pause(job_id, paused.message)
                log.info("job.paused job_id=%s org_id=%s", job_id, organization_id)
                return None
            except Retry:
                Job.objects.filter(pk=job_id).update(
                    status=JobStatus.QUEUED,
                    message="A temporary problem occurred; retrying shortly.",
                )
                raise
            except JobCancelled:
                _finish(job_id, JobStatus.CANCELLED, "Cancelled.")
                # A body that handles its own cancel (a campaign's send) has done so:
                # the hook then finds nothing in progress. One that does not (an
                # audience's build) would leave its object "building" without it.
                job_cancelled_hook(job_id)
                return None
            except ApplicationError as exc:
                _finish(job_id, JobStatus.FAILED, exc.message, {"error": exc.message, **exc.extra})
                return None
            except SoftTimeLimitExceeded:
                _finish(
                    job_id,
                    JobStatus.FAILED,
                    "The job took longer than the time allowed and was stopped.",
                )
                return None
            except TRANSIENT_ERRORS as exc:
                log.exception("job.failed_transient job_id=%s", job_id)
                _finish(
                    job_id,
                    JobStatus.FAILED,
                    f"A temporary problem persisted after retries: {exc.__class__.__name__}.",
                )
                return None
            except Exception:
                log.exception("job.failed job_id=%s", job_id)
                step = _step_of(job_id)
                _finish(
                    job_id,
                    JobStatus.FAILED,
                    f"{job.title or 'The job'} stopped at “{step}”: something went wrong on "
                    f"our side (reference: job {job_id}). Nothing was half-written; you can run "
                    "it again.",
                    {"failed_step": step},
                )
                return None
            finally:
                _beating.pop(job_id, None)
            summary = result if isinstance(result, dict) else {}
            _finish(job_id, JobStatus.SUCCEEDED, summary.pop("message", "Done."), summary)
            return None

    def retry(
        self,
        args=None,
        kwargs=None,
        exc=None,
        throw=True,
        eta=None,
        countdown=None,
        max_retries=None,
        **options,
    ):
        """Celery's retry, on the queue the job came from: a heavy job waiting for a
        slot (or retried after a transient error) goes back to `heavy`, never to the
        interactive queue, whose workers must stay free for small work."""
        if not options.get("queue"):
            queue = self._delivery_queue()
            if queue:
                options["queue"] = queue
        return super().retry(
            args=args,
            kwargs=kwargs,
            exc=exc,
            throw=throw,
            eta=eta,
            countdown=countdown,
            max_retries=max_retries,
            **options,
        )

    def _delivery_queue(self) -> str | None:
        known = {queue_interactive(), queue_heavy()}
        routing_key = (self.request.delivery_info or {}).get("routing_key")
        if routing_key in known:
            return routing_key
        job_id = (self.request.kwargs or {}).get("job_id")
        job = Job.all_objects.filter(pk=job_id).first() if job_id else None
        return job_queue(job) if job is not None else None

    def _wait(
        self,
        wait: JobMustWait,
        args,
        organization_id: int,
        job_id: int,
        kwargs,
        heavy_waits: int = 0,
    ):
        """Put the job back in the queue until `wait.ready()`, for at most
        `JOB_WAIT_MAX_SECONDS`: in a worker, as a retry after `JOB_WAIT_RETRY_SECONDS`
        (the worker is free meanwhile for what the job waits for); in a synchronous run
        (`--sync`, where the awaited work runs elsewhere), by polling here."""
        gave_up = f"{wait.message.rstrip('.')} took too long; run this again once it has."
        Job.objects.filter(pk=job_id).update(status=JobStatus.QUEUED, message=wait.message[:500])
        if not self.request.is_eager:
            # Waits for a heavy-job slot are retries too; they are not this kind of wait.
            waits = max(0, (self.request.retries or 0) - heavy_waits)
            if waits * settings.JOB_WAIT_RETRY_SECONDS >= settings.JOB_WAIT_MAX_SECONDS:
                _finish(job_id, JobStatus.FAILED, gave_up)
                return None
            # max_retries one above the count: waiting is not a failure being retried
            raise self.retry(countdown=settings.JOB_WAIT_RETRY_SECONDS, max_retries=waits + 1)
        deadline = time.monotonic() + settings.JOB_WAIT_MAX_SECONDS
        while not wait.ready():
            if time.monotonic() >= deadline:
                _finish(job_id, JobStatus.FAILED, gave_up)
                return None
            _sleep(1.0)
        return self(*args, organization_id=organization_id, job_id=job_id, **kwargs)

    def _wait_heavy(
        self, message: str, args, organization_id: int, job_id: int, kwargs, heavy_waits: int
    ):
        """Wait for a heavy-job slot of the organisation: the job stays queued (it was
        never taken) and is tried again after `JOB_WAIT_RETRY_SECONDS`, like a
        `JobMustWait`, but with no `JOB_WAIT_MAX_SECONDS`: the slot is held by a job
        that is running (a stale one, whose worker died, does not count), so it frees
        when that job ends, fails, hits the task time limit or goes stale. Failing a
        step after 30 minutes behind a long model fit would only make people press
        "run" again and queue behind the same job."""
        Job.objects.filter(pk=job_id).update(message=message[:500])
        log.info("job.heavy_wait job_id=%s org_id=%s", job_id, organization_id)
        if not self.request.is_eager:
            retry_kwargs = {
                **(self.request.kwargs or {}),
                "organization_id": organization_id,
                "job_id": job_id,
                "_heavy_waits": heavy_waits + 1,
            }
            raise self.retry(
                countdown=settings.JOB_WAIT_RETRY_SECONDS,
                max_retries=(self.request.retries or 0) + 1,
                kwargs=retry_kwargs,
            )
        # A synchronous run (`--sync`, tests): poll until a slot frees.
        while _heavy_running(organization_id, exclude=job_id) >= _heavy_limit(organization_id):
            _sleep(1.0)
        return self(*args, organization_id=organization_id, job_id=job_id, **kwargs)


_sleep = time.sleep  # tests replace it


def _take(job: Job) -> int:
    """Take the job (running) only if nobody else took it since it was read."""
    return Job.objects.filter(pk=job.pk, status=job.status, heartbeat_at=job.heartbeat_at).update(
        status=JobStatus.RUNNING,
        started_at=job.started_at or timezone.now(),
        heartbeat_at=timezone.now(),
        attempts=job.attempts + 1,
        message="Started.",
    )


# --- heavy jobs: at most `limits_for(org).heavy_jobs` running per organisation ------------


def heavy_kinds() -> list[str]:
    return sorted(name for name, kind in job_kinds().items() if kind.heavy)


def _heavy_limit(organization_id: int) -> int:
    from accounts.limits import limits_for

    # 0 would leave every heavy job waiting for ever; one at a time is the least.
    return max(1, limits_for(organization_id).heavy_jobs)


def _heavy_running(organization_id: int, *, exclude: int | None = None) -> int:
    """Heavy jobs of the organisation running now (a stale one's worker is gone)."""
    alive = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)
    running = Job.all_objects.filter(
        organization_id=organization_id, status=JobStatus.RUNNING, kind__in=heavy_kinds()
    ).filter(
        models.Q(heartbeat_at__gte=alive)
        | models.Q(heartbeat_at__isnull=True, started_at__gte=alive)
        | models.Q(heartbeat_at__isnull=True, started_at__isnull=True, created_at__gte=alive)
    )
    if exclude is not None:
        running = running.exclude(pk=exclude)
    return running.count()


def _heavy_message(limit: int) -> str:
    return f"Waiting: your plan runs {limit} heavy job{'' if limit == 1 else 's'} at a time."


def _take_heavy(job: Job, organization_id: int) -> tuple[int, str]:
    """Count the organisation's running heavy jobs and take this one in one
    transaction, with the organisation's row locked (SELECT … FOR UPDATE on
    PostgreSQL; on SQLite the IMMEDIATE transaction holds the database's write lock):
    two workers starting heavy jobs of one organisation at once count one after the
    other, so the limit is never passed. (taken, "") or (0, why it waits)."""
    from accounts.models import Organization

    limit = _heavy_limit(organization_id)
    with transaction.atomic():
        list(Organization.objects.select_for_update().filter(pk=organization_id).values("pk"))
        if _heavy_running(organization_id, exclude=job.pk) >= limit:
            return 0, _heavy_message(limit)
        return _take(job), ""


# --- suspended organisations (accounts/suspension.py) -------------------------------------


def _organization_active(organization_id: int) -> bool:
    from accounts.suspension import organization_is_active

    return organization_is_active(organization_id)


def _paused_message(organization_id: int) -> str:
    from accounts.models import Organization
    from accounts.suspension import paused_message

    return paused_message(Organization.objects.filter(pk=organization_id).first())


def _pause(job_id: int, message: str) -> None:
    """Back to "queued", marked paused (`params._paused`; keys with "_" are not passed
    to the task), and not sent again until the organisation is reactivated."""
    params = Job.all_objects.filter(pk=job_id).values_list("params", flat=True).first() or {}
    Job.all_objects.filter(pk=job_id).update(
        status=JobStatus.QUEUED,
        message=message[:500],
        params={**params, "_paused": True},
    )


def jobs_resume_paused(*, organization) -> int:
    """Send every paused job of the organisation again (after its reactivation)."""
    paused = [
        job
        for job in Job.all_objects.filter(
            organization_id=organization.pk, status=JobStatus.QUEUED
        ).order_by("pk")
        if (job.params or {}).get("_paused")
    ]
    for job in paused:
        params = {k: v for k, v in job.params.items() if k != "_paused"}
        Job.all_objects.filter(pk=job.pk).update(params=params, message="Queued.")
        job.params = params
        _send(job)
    return len(paused)


# A job's heartbeat must mean "its process is alive", not "it reported progress
# lately": a model fit can go minutes without a progress call, and a job taken for
# dead while it runs would be started a second time. A thread of each worker process
# touches the heartbeat of the jobs that process is running.
JOB_HEARTBEAT_EVERY = 60  # seconds at most; always well below JOB_STALE_AFTER_SECONDS


def _heartbeat_every() -> float:
    """How often running jobs' heartbeats are written: a fifth of the staleness, at most
    a minute, so a job silent in a long model fit is never taken for lost (and run a
    second time by another worker) while its worker lives."""
    return max(0.5, min(float(JOB_HEARTBEAT_EVERY), settings.JOB_STALE_AFTER_SECONDS / 5))


_beating: dict[int, int] = {}  # job id -> organisation id
_beating_lock = threading.Lock()
_beating_thread: threading.Thread | None = None


def _beating_jobs_add(job_id: int, organization_id: int) -> None:
    global _beating_thread
    _beating[job_id] = organization_id
    with _beating_lock:
        if _beating_thread is None or not _beating_thread.is_alive():
            _beating_thread = threading.Thread(
                target=_beat_jobs, name="segmenta-job-heartbeat", daemon=True
            )
            _beating_thread.start()


def _beat_jobs() -> None:
    from django.db import connections

    while True:
        time.sleep(_heartbeat_every())
        for job_id, organization_id in list(_beating.items()):
            try:
                with tenant_context(organization_id):
                    Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
            except Exception:  # a missed beat is harmless; the next one follows
                log.warning("job.heartbeat_failed job_id=%s", job_id, exc_info=True)
        connections.close_all()  # this thread's own connections


# What a job was doing when it stopped: its last progress message, in words.
_NO_STEP = {"", "Started.", "Queued.", "Cancelling…"}


def _step_of(job_id: int) -> str:
    last = Job.all_objects.filter(pk=job_id).values_list("message", flat=True).first() or ""
    last = last.strip().rstrip(".…").strip()
    if last in {s.rstrip(".…") for s in _NO_STEP} or last.startswith("Waiting for"):
        return "starting"
    return last[:120]


def _finish(job_id: int, status: str, message: str, result: dict | None = None) -> None:
    """Write a job's end. A failure keeps the step it failed at (`result.failed_step`,
    its last progress message) and notifies the organisation's webhooks (`job.failed`)."""
    if status == JobStatus.FAILED:
        result = dict(result or {})
        result.setdefault("error", message)
        result.setdefault("failed_step", _step_of(job_id))
    fields: dict[str, Any] = {
        "status": status,
        "message": message[:500],
        "finished_at": timezone.now(),
    }
    if status == JobStatus.SUCCEEDED:
        fields["progress"] = 100
    if result is not None:
        fields["result"] = json_safe(result)
    Job.all_objects.filter(pk=job_id).update(**fields)
    if status == JobStatus.FAILED:
        job = Job.all_objects.filter(pk=job_id).values("organization_id", "kind").first()
        kind = _KINDS.get(job["kind"]) if job is not None else None
        if job is not None and (kind is None or kind.listed):
            from webhooks.events import emit

            emit(
                job["organization_id"],
                "job.failed",
                # no message: it may quote a row of a file; the API's job holds it
                {
                    "job_id": job_id,
                    "kind": job["kind"],
                    "failed_step": (result or {}).get("failed_step", ""),
                },
            )


def _person(user):
    """The User behind an actor, if a person (API keys and the system are not)."""
    from accounts.actor import Actor

    return Actor.person(user)


def job_start(
    *,
    organization,
    kind: str,
    task,
    params: dict | None = None,
    user=None,
    title: str = "",
    sync: bool = False,
) -> Job:
    """Create a Job and queue its task once the surrounding transaction commits.

    `sync=True` runs the task in this process (for `--sync` commands and tests).
    """
    params = dict(params or {})
    job_kind_authorize(kind=job_kind(kind), organization=organization, user=user)
    job = Job.objects.create(
        organization=organization,
        kind=kind,
        title=title or kind.replace("_", " ").capitalize(),
        params={**params, "_task": task.name},
        created_by=_person(user),
    )
    kwargs = {"organization_id": organization.pk, "job_id": job.pk, **params}
    if sync:
        task.apply(kwargs=kwargs)
        job.refresh_from_db()
        return job
    transaction.on_commit(lambda: _send(job, task=task))
    return job


def _send(job: Job, *, task=None) -> None:
    """Queue the job's task with the job's parameters (also used to requeue it), on
    the queue `job_queue` chooses."""
    from celery import current_app

    task = task or current_app.tasks[job.params["_task"]]
    params = {k: v for k, v in job.params.items() if not k.startswith("_")}
    sent = task.apply_async(
        kwargs={"organization_id": job.organization_id, "job_id": job.pk, **params},
        queue=job_queue(job),
    )
    Job.all_objects.filter(pk=job.pk).update(task_id=sent.id or "")


# --- fair scheduling: two queues -----------------------------------------------------------
# `interactive` (the default) carries what people wait for: imports of small files,
# previews, sends, small organisations' pipelines, the platform's periodic tasks.
# `heavy` carries the pipeline steps (and exports) of big organisations and imports of
# big files. Workers that consume only `interactive` are never taken up by a big
# organisation's model fit, so a small shop's import starts within seconds while it
# runs (docs/scaling.md). Names: JOB_QUEUE_INTERACTIVE / JOB_QUEUE_HEAVY; sizes:
# JOB_HEAVY_QUEUE_MIN_CUSTOMERS / JOB_HEAVY_QUEUE_MIN_IMPORT_BYTES.


def queue_interactive() -> str:
    return settings.JOB_QUEUE_INTERACTIVE


def queue_heavy() -> str:
    return settings.JOB_QUEUE_HEAVY


def _organization_is_big(organization_id: int) -> bool:
    """Whether the organisation has at least JOB_HEAVY_QUEUE_MIN_CUSTOMERS customers.
    Reads at most that many index entries (LIMIT/OFFSET on the organisation's rows),
    never a count of a million."""
    from customers.models import Customer

    threshold = settings.JOB_HEAVY_QUEUE_MIN_CUSTOMERS
    if threshold <= 0:
        return True
    with tenant_context(organization_id):
        return (
            Customer.objects.order_by()
            .values_list("pk", flat=True)[threshold - 1 : threshold]
            .exists()
        )


def _import_is_big(job: Job) -> bool:
    from customers.models import Import

    import_id = (job.params or {}).get("import_id")
    if not import_id:
        return False
    with tenant_context(job.organization_id):
        size = Import.objects.filter(pk=import_id).values_list("size_bytes", flat=True).first()
    return (size or 0) >= settings.JOB_HEAVY_QUEUE_MIN_IMPORT_BYTES


def job_queue(job: Job) -> str:
    """The queue a job is sent to: `heavy` for a heavy kind (pipeline steps, the
    organisation export) of an organisation with at least
    JOB_HEAVY_QUEUE_MIN_CUSTOMERS customers, and for an import of a file of at least
    JOB_HEAVY_QUEUE_MIN_IMPORT_BYTES; `interactive` for everything else."""
    kind = job_kinds().get(job.kind)
    if job.kind == "import":
        big = _import_is_big(job)
    elif kind is not None and kind.heavy:
        big = _organization_is_big(job.organization_id)
    else:
        big = False
    return queue_heavy() if big else queue_interactive()


def route_task(name, args, kwargs, options, task=None, **kw):
    """Celery router (CELERY_TASK_ROUTES): a task sent without a queue (the platform's
    periodic tasks sent by beat, webhook deliveries, follow-up work) goes to the
    interactive queue, which every layout of workers consumes. Jobs are sent with
    their queue by `_send`, which takes precedence over this."""
    return {"queue": queue_interactive()}


def job_cancel(*, job: Job) -> Job:
    if job.is_finished:
        raise ApplicationError("This job has already finished.")
    if not job_is_cancellable(job):
        raise ApplicationError(
            "This job cannot be cancelled: it removes personal data that must not be kept.",
            code="not_cancellable",
            status=409,
        )
    # Conditional on "queued": a worker that took the job meanwhile runs its body, so
    # it only gets the flag (and stops at its next check) like any running job.
    stopped = 0
    if job.status == JobStatus.QUEUED:
        stopped = Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            cancel_requested=True,
            status=JobStatus.CANCELLED,
            message="Cancelled.",
            finished_at=timezone.now(),
        )
    if stopped:
        job_cancelled_hook(job.pk)
    else:
        Job.objects.filter(pk=job.pk).exclude(status__in=FINISHED).update(
            cancel_requested=True, message="Cancelling…"
        )
    job.refresh_from_db()
    return job


def job_cancelled_hook(job_id: int) -> None:
    """Call the kind's `on_cancelled` for a job that ended cancelled before its body
    finished. Safe to repeat (the hooks only move an object still in progress for
    this job). A failing hook is logged and rolled back to its savepoint: the cancel
    itself stands."""
    job = Job.all_objects.filter(pk=job_id, status=JobStatus.CANCELLED).first()
    if job is None:
        return
    kind = job_kinds().get(job.kind)
    if kind is None or kind.on_cancelled is None:
        return
    try:
        with tenant_context(job.organization_id), transaction.atomic():
            kind.on_cancelled(job)
    except Exception:
        log.exception("job.on_cancelled_failed job_id=%s kind=%s", job_id, job.kind)


def job_is_cancellable(job: Job) -> bool:
    kind = job_kinds().get(job.kind)
    return kind is None or kind.cancellable


def job_rerun(*, job: Job, user=None, request=None) -> Job:
    """Start a fresh job with the same task and parameters (after a failure, a
    cancellation or a worker that died). Needs the role that starting it needs, and
    is written to the audit log."""
    from celery import current_app

    from accounts.services import audit_log

    if job.status in (JobStatus.QUEUED,) or (job.status == JobStatus.RUNNING and not job.is_stale):
        raise ApplicationError("This job is still in progress.")
    kind = job_kinds().get(job.kind)
    task_name = job.params.get("_task")
    if kind is None or not task_name or task_name not in current_app.tasks:
        raise ApplicationError("This job cannot be run again.")
    job_kind_authorize(kind=kind, organization=job.organization, user=user)
    params = {k: v for k, v in job.params.items() if not k.startswith("_")}
    if job.status == JobStatus.RUNNING:
        _finish(job.pk, JobStatus.FAILED, "The worker stopped while running this job.")
    new = job_start(
        organization=job.organization,
        kind=job.kind,
        task=current_app.tasks[task_name],
        params=params,
        user=user,
        title=job.title,
    )
    audit_log(
        organization=job.organization,
        action="job_rerun",
        actor=user,
        target=f"job #{job.pk}",
        details={"kind": job.kind, "job": new.pk, "rerun_of": job.pk},
        request=request,
    )
    return new


def job_get(*, job_id: int) -> Job:
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound("No such job.")
    return job


def stale_after_seconds() -> int:
    return settings.JOB_STALE_AFTER_SECONDS


# --- is anyone picking up jobs? -----------------------------------------------------------
# Every worker process writes a heartbeat to the shared cache (the database cache in
# the embedded mode, Redis with services) from a thread started when it is ready
# (config/celery.py). Queued jobs with no recent heartbeat mean no worker is running:
# the jobs page says so instead of leaving people to wonder (issue 8, item 5).
WORKER_HEARTBEAT_KEY = "segmenta:worker-heartbeat"
WORKER_HEARTBEAT_EVERY = 15  # seconds
_heartbeat_started = False


def worker_heartbeat() -> None:
    cache.set(WORKER_HEARTBEAT_KEY, time.time(), timeout=WORKER_HEARTBEAT_EVERY * 8)


def worker_heartbeat_clear() -> None:
    cache.delete(WORKER_HEARTBEAT_KEY)


def worker_last_seen() -> datetime | None:
    seen = cache.get(WORKER_HEARTBEAT_KEY)
    return datetime.fromtimestamp(seen, tz=UTC) if seen else None


def worker_heartbeat_start() -> None:
    """Beat from a daemon thread of the worker's main process for as long as it lives."""
    global _heartbeat_started
    if _heartbeat_started:
        return
    _heartbeat_started = True

    def beat() -> None:
        from django.db import connections

        while True:
            try:
                worker_heartbeat()
            except Exception:  # a missed beat only shows a warning; never stop the worker
                log.warning("worker.heartbeat_failed", exc_info=True)
            finally:
                connections.close_all()  # this thread's own connections
            time.sleep(WORKER_HEARTBEAT_EVERY)

    threading.Thread(target=beat, name="segmenta-heartbeat", daemon=True).start()


def jobs_waiting_without_worker() -> dict | None:
    """The current organisation's jobs queued longer than `JOB_QUEUED_WARNING_SECONDS`
    while no worker has reported for three heartbeats, or None."""
    limit = timezone.now() - timedelta(seconds=settings.JOB_QUEUED_WARNING_SECONDS)
    waiting = Job.objects.filter(status=JobStatus.QUEUED, created_at__lt=limit)
    oldest = waiting.order_by("created_at").values_list("created_at", flat=True).first()
    if oldest is None:
        return None
    seen = worker_last_seen()
    if seen is not None and (timezone.now() - seen).total_seconds() < 3 * WORKER_HEARTBEAT_EVERY:
        return None
    return {"count": waiting.count(), "since": oldest, "last_seen": seen}


# --- jobs whose worker died -----------------------------------------------------------
def jobs_recover_stale() -> dict[str, int]:
    """Requeue every running job whose worker stopped reporting `JOB_STALE_AFTER_SECONDS`
    ago (killed, out of memory, machine restarted), or fail it with a reason once it has
    been started `JOB_MAX_ATTEMPTS` times. Platform work across organisations: run by
    Celery beat every minute and when a worker starts.

    Safe to repeat and to race: each change is conditional on the heartbeat it read,
    the task only takes a job that is queued (or stale), and every job's service
    reaches the same end state when run again.
    """
    from accounts.tenancy import unscoped_context

    limit = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)
    with unscoped_context():
        stale = list(
            Job.all_objects.filter(status=JobStatus.RUNNING)
            .filter(
                models.Q(heartbeat_at__lt=limit)
                | models.Q(heartbeat_at__isnull=True, created_at__lt=limit)
            )
            .order_by("pk")
        )
    outcome = {"requeued": 0, "failed": 0}
    for job in stale:
        with tenant_context(job.organization_id):
            claim = Job.objects.filter(
                pk=job.pk, status=JobStatus.RUNNING, heartbeat_at=job.heartbeat_at
            )
            if job.attempts >= settings.JOB_MAX_ATTEMPTS or not job.params.get("_task"):
                done = claim.update(
                    status=JobStatus.FAILED,
                    finished_at=timezone.now(),
                    message=(
                        f"The worker stopped while running this job ({job.attempts} "
                        "times), so it was not started again. Nothing was half-written; "
                        "you can run it again."
                    ),
                )
                outcome["failed"] += done
                log.warning("job.stale_failed job_id=%s attempts=%s", job.pk, job.attempts)
                continue
            if not claim.update(
                status=JobStatus.QUEUED,
                message="The worker stopped while running this job; it was queued again.",
            ):
                continue  # the job moved on meanwhile
            outcome["requeued"] += 1
            log.warning("job.stale_requeued job_id=%s attempts=%s", job.pk, job.attempts)
            job.refresh_from_db()
            _send(job)
    return outcome
