"""Platform tasks: a demo job to show the progress bar works end to end, the recovery of
jobs whose worker died, and the background refresh of the figures pages keep."""

import time

from celery import shared_task

from .jobs import TenantTask, register_job_kind
from .kept import REFRESH_TIME_LIMIT


@shared_task(base=TenantTask, bind=True, name="core.tasks.demo_countdown")
def demo_countdown(
    self, *, organization_id: int, job_id: int | None, steps: int = 10, delay: float = 0.2
):
    """A small job that counts down; used by tests and the jobs page's 'try it' button."""
    for i in range(steps):
        self.job.progress(100 * i / steps, f"Step {i + 1} of {steps}")
        time.sleep(delay)
    return {"message": f"Counted {steps} steps.", "steps": steps}


register_job_kind(name="demo", task=demo_countdown, role="marketer")


@shared_task(name="core.tasks.jobs_recover_stale")
def recover_stale_jobs() -> dict:
    """Platform task (Celery beat, every minute, and at worker start): requeue or fail
    jobs whose worker died."""
    from .jobs import jobs_recover_stale

    return jobs_recover_stale()


@shared_task(
    base=TenantTask,
    bind=True,
    name="core.tasks.kept_refresh",
    autoretry_for=(),  # a failure is logged and the page keeps its figure (core/kept.py)
    soft_time_limit=REFRESH_TIME_LIMIT,
    time_limit=REFRESH_TIME_LIMIT + 30,
)
def kept_refresh(
    self, *, organization_id: int, job_id: int | None = None, name: str, refresh: str, params: dict
) -> bool:
    """Work out a figure a page keeps (the dashboard's, a big segment's best
    channel) in the background for a big organisation: `core.kept`."""
    from .kept import kept_refresh_run

    return kept_refresh_run(name=name, refresh=refresh, params=params)
