"""Background jobs of customer data: thin wrappers around the services (STYLE rule 9)."""

from __future__ import annotations

from celery import shared_task

from core.jobs import TenantTask, register_job_kind


@shared_task(base=TenantTask, bind=True, name="customers.tasks.import_run")
def import_run(self, *, organization_id: int, job_id: int | None, import_id: int):
    from .models import Import
    from .services.importing import import_execute

    imp = Import.objects.filter(pk=import_id).first()
    if imp is None:
        from core.exceptions import ApplicationError

        raise ApplicationError("This import no longer exists.")
    return import_execute(imp=imp, progress=self.job.progress, job_id=job_id)


@shared_task(base=TenantTask, bind=True, name="customers.tasks.organization_export")
def organization_export(
    self, *, organization_id: int, job_id: int | None, user_id: int | None = None
):
    from .services.privacy import organization_export_run

    return organization_export_run(job_id=job_id, user_id=user_id, progress=self.job.progress)


@shared_task(base=TenantTask, bind=True, name="customers.tasks.erasure_scrub")
def erasure_scrub(
    self,
    *,
    organization_id: int,
    job_id: int | None,
    customer_id: int | None = None,
    identifiers: dict | None = None,
):
    # `customer_id` and `identifiers` only arrive from jobs queued before erasure
    # stopped passing them (see erasure_scrub_run).
    from .services.privacy import erasure_scrub_run

    return erasure_scrub_run(
        job_id=job_id, identifiers=identifiers, progress=self.job.progress, actor=self.job.actor
    )


@shared_task(name="customers.tasks.org_exports_expire")
def org_exports_expire() -> int:
    """Hourly (Celery beat): delete organisation export archives that expired or
    were made before an erasure. Returns how many files were deleted."""
    from .services.privacy import organization_exports_expire_all

    return organization_exports_expire_all()


def _import_cancelled(job) -> None:
    from .services.importing import import_cancelled

    import_cancelled(job=job)


# Who may start (and re-run) each job; a privacy clean-up cannot be stopped by anyone.
register_job_kind(name="import", task=import_run, role="marketer", on_cancelled=_import_cancelled)
register_job_kind(
    name="org_export", task=organization_export, role="owner", api_keys=False, heavy=True
)
register_job_kind(name="erasure", task=erasure_scrub, role="marketer", cancellable=False)
