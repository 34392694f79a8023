"""The analysis pipeline: named steps, each a background job per organisation.

Steps are declared by capabilities (`core.capabilities.Capability.steps`, from
each app's `AppConfig.ready()`), so adding a capability never edits this file.
`pipeline_start` is what `run_pipeline`, the site, imports and the nightly
schedule call.
"""

from __future__ import annotations

import logging
import time
from datetime import date

from core import capabilities
from core.capabilities import Step
from core.exceptions import ApplicationError
from core.jobs import job_start
from core.models import Job, JobStatus

log = logging.getLogger("segmenta.pipeline")

# Steps that belong to later capabilities: refused with a clear message until built.
FUTURE_STEPS: dict[str, str] = {}


def available_steps() -> list[Step]:
    return capabilities.steps()


def _resolve(steps: list[str] | None) -> list[Step]:
    known = {s.name: s for s in available_steps()}
    if not steps:
        return list(known.values())
    chosen = []
    for name in steps:
        name = name.strip()
        if name in known:
            chosen.append(known[name])
        elif name in FUTURE_STEPS:
            raise ApplicationError(f"Step '{name}' cannot run: {FUTURE_STEPS[name]}")
        else:
            raise ApplicationError(
                f"Unknown step '{name}'. Known steps: {', '.join(known) or 'none'}."
            )
    return sorted(chosen, key=lambda s: s.order)


def pipeline_start(
    *,
    organization,
    steps: list[str] | None = None,
    as_of: date | None = None,
    sync: bool = False,
    user=None,
    reason: str = "on demand",
) -> dict:
    """Start (or, with sync, run) each step as its own job. Returns run and job ids."""
    from celery import current_app

    started = time.monotonic()
    chosen = _resolve(steps)
    jobs: dict[str, int] = {}
    runs: dict[str, int | None] = {}
    status = "queued"
    for step in chosen:
        task = current_app.tasks[step.task]
        job = job_start(
            organization=organization,
            kind=step.name,
            task=task,
            params={"as_of": as_of.isoformat() if as_of else None},
            user=user,
            title=f"{step.title} ({reason})",
            sync=sync,
        )
        jobs[step.name] = job.pk
        runs[step.name] = (job.result or {}).get("run_id") if sync else None
        if sync and job.status != JobStatus.SUCCEEDED:
            status = "failed"
    if sync and status != "failed":
        status = "succeeded"
    return {
        "runs": runs,
        "jobs": jobs,
        "status": status,
        "seconds": round(time.monotonic() - started, 2),
    }


def pipeline_step_start(*, organization, step: str, user=None, as_of: date | None = None) -> Job:
    """Start one step on demand (the site's and the API's "run it again"), or return
    the job of that step already waiting or running, so repeated clicks queue one."""
    waiting = (
        Job.objects.filter(kind=step, status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
        .order_by("-created_at")
        .first()
    )
    if waiting is not None and not waiting.is_stale:
        return waiting
    result = pipeline_start(
        organization=organization, steps=[step], as_of=as_of, user=user, reason="on demand"
    )
    return Job.objects.get(pk=result["jobs"][step])


# --- never publish on half an import ---------------------------------------------------
# Jobless imports (the import_data command) have no heartbeat: one still marked running
# after this long is taken to have been killed.
JOBLESS_IMPORT_MAX_SECONDS = 3600


def pipeline_import_unfinished():
    """The current organisation's unfinished import (queued or running, and alive), or
    None. A step must not publish results read while one is under way."""
    from django.conf import settings
    from django.utils import timezone

    from customers.models import Import, ImportStatus

    unfinished = Import.objects.filter(
        status__in=[ImportStatus.QUEUED, ImportStatus.RUNNING]
    ).select_related("job")
    for imp in unfinished.order_by("created_at"):
        job = imp.job
        if job is not None:
            if not job.is_finished and not job.is_stale:
                return imp
            continue
        started = imp.started_at or imp.created_at
        if (timezone.now() - started).total_seconds() < max(
            JOBLESS_IMPORT_MAX_SECONDS, settings.JOB_STALE_AFTER_SECONDS
        ):
            return imp
    return None


def pipeline_wait_for_imports() -> None:
    """Called by each step when it starts and again just before it publishes: while an
    import of the organisation is unfinished, the step goes back to the queue (its
    results would mix old and new data) and starts again once the import has ended."""
    from core.jobs import JobMustWait

    imp = pipeline_import_unfinished()
    if imp is None:
        return
    raise JobMustWait(
        f"Waiting for the import of {imp.original_filename or 'a file'} to finish.",
        ready=lambda: pipeline_import_unfinished() is None,
    )


def pipeline_after_data_change(*, organization, user=None) -> dict | None:
    """After an import: refresh every step unless the same step is already waiting.
    Returns `pipeline_start`'s answer, whose `jobs` also name the steps' jobs already
    waiting (they will read the new data), or None when nothing is refreshed."""
    pending = dict(
        Job.objects.filter(status=JobStatus.QUEUED).order_by("pk").values_list("kind", "pk")
    )
    known = [s.name for s in available_steps()]
    steps = [name for name in known if name not in pending]
    waiting = {name: pending[name] for name in known if name in pending}
    if not steps:
        return {"runs": {}, "jobs": waiting, "status": "queued", "seconds": 0} if waiting else None
    started = pipeline_start(
        organization=organization, steps=steps, user=user, reason="after import"
    )
    started["jobs"] = {**waiting, **started["jobs"]}
    return started
