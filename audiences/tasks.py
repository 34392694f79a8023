"""Audience jobs: build one audience, refresh them all after a pipeline run, or work
out the preview of a definition whose kind fits a model."""

from __future__ import annotations

from celery import shared_task

from core.jobs import TenantTask, register_job_kind


@shared_task(base=TenantTask, bind=True, name="audiences.tasks.audience_build")
def audience_build(self, *, organization_id: int, job_id: int | None, audience_id: int):
    from .services import audience_build as build

    audience = build(audience_id=audience_id, job=self.job)
    return {
        "message": f"{audience.name}: {audience.size:,} customers.",
        "audience_id": audience.pk,
        "size": audience.size,
    }


@shared_task(base=TenantTask, bind=True, name="audiences.tasks.audiences_refresh")
def audiences_refresh(self, *, organization_id: int, job_id: int | None, as_of: str | None = None):
    from .services import audiences_refresh_all

    done = audiences_refresh_all(job=self.job)
    return {
        "message": f"Rebuilt {done['rebuilt']:,} audiences ({done['failed']:,} failed).",
        **done,
    }


# The preview job's time limit (seconds): a preview that takes longer helps no one.
PREVIEW_TIME_LIMIT = 300


@shared_task(
    base=TenantTask,
    bind=True,
    name="audiences.tasks.audience_preview",
    soft_time_limit=PREVIEW_TIME_LIMIT,
    time_limit=PREVIEW_TIME_LIMIT + 30,
)
def audience_preview(
    self,
    *,
    organization_id: int,
    job_id: int | None,
    definition: dict,
    preview_key: str = "",  # what finds the job again (services.preview_key); unused here
):
    from .services import audience_preview_run

    return audience_preview_run(definition=definition, job=self.job)


def _build_cancelled(job) -> None:
    from .services import audience_build_cancelled

    audience_build_cancelled(job=job)


register_job_kind(
    name="audience", task=audience_build, role="marketer", on_cancelled=_build_cancelled
)
# Those who may use the builder (or write through the API) start it. Nothing to undo
# when it is cancelled: a preview stores nothing but its job's result. Not listed: it
# serves the builder while someone waits, and its "failures" are answers (too few
# responders), so they fill no jobs page and send no job.failed webhook.
register_job_kind(name="audience_preview", task=audience_preview, role="marketer", listed=False)
