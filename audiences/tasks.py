"""Audience jobs: build one audience, or refresh them all after a pipeline run."""

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


def _build_cancelled(job) -> None:
    from .services import audience_build_cancelled

    audience_build_cancelled(job=job)


register_job_kind(
    name="audience", task=audience_build, role="marketer", on_cancelled=_build_cancelled
)
