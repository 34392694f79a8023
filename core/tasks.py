"""Platform tasks: a demo job to show the progress bar works end to end."""

import time

from celery import shared_task

from .jobs import TenantTask, register_job_kind


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
