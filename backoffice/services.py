"""What platform staff do from the back office that no member service covers:
audit entries in an organisation's log under the staff member's name (actor kind
"staff", shown to the owner as "Segmenta support"), and re-running an
organisation's job as the platform.

Staff are not members of the organisations they look after, so the member's
`core.jobs.job_rerun` (which checks the member's role) would refuse them. Here the
platform starts the job (as schedules do: `job_start(user=None)`), gated by the
staff permission `core.change_job` in the view, and the audit entry names who.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import AuditLogEntry
from accounts.services import audit_log
from accounts.tenancy import tenant_context
from core.exceptions import ApplicationError
from core.models import Job, JobStatus

# Set on a job the back office re-ran, naming the fresh job ("_" keys are not passed
# to the task): it is not re-run a second time.
RERUN_AS = "_rerun_as"


def staff_audit_log(
    *,
    organization,
    action: str,
    staff,
    target: str = "",
    details: dict | None = None,
    request=None,
) -> AuditLogEntry:
    """Write `action` to `organization`'s audit log as staff member `staff`
    (shown to the owner as "Segmenta support (<email>)")."""
    return audit_log(
        organization=organization,
        action=action,
        actor=Actor.staff(staff, organization),
        target=target,
        details=details,
        request=request,
    )


def job_rerun_by_staff(*, job: Job, staff, request=None) -> Job:
    """Run `job` again for its organisation, as the platform, on behalf of `staff`.

    - failed, cancelled or succeeded: a fresh job with the same task and parameters
      (as the member's re-run does);
    - running with a stale heartbeat (its worker died): marked failed with that
      reason, then a fresh job;
    - queued for too long (the message was lost, or no worker took it): the same
      job is sent to the broker again (a second delivery of a job already taken is
      skipped by the task).

    Written to the organisation's audit log as "Job re-run by Segmenta support".
    Returns the job that will run."""
    from celery import current_app  # type: ignore[import-untyped]

    from core.jobs import _finish, _send, job_kinds, job_start

    kind = job_kinds().get(job.kind)
    task_name = job.params.get("_task")
    if kind is None or not task_name or task_name not in current_app.tasks:
        raise ApplicationError("This job cannot be run again: its kind is no longer known.")
    with tenant_context(job.organization_id), transaction.atomic():
        # Read again under a lock: a double click, or two staff members at once,
        # start one fresh job, not two.
        job = Job.objects.select_for_update().select_related("organization").get(pk=job.pk)
        rerun_as = (job.params or {}).get(RERUN_AS)
        if rerun_as:
            raise ApplicationError(f"Job #{job.pk} was already re-run as job #{rerun_as}.")
        if job.status == JobStatus.SUCCEEDED:
            raise ApplicationError(
                "This job succeeded; only failed, cancelled or stuck jobs are run again here."
            )
        if job.status == JobStatus.RUNNING and not job.is_stale:
            raise ApplicationError("This job is running and its worker is alive; wait for it.")
        if job.status == JobStatus.QUEUED:
            Job.objects.filter(pk=job.pk).update(message="Sent to the workers again.")
            _send(job)
            new = job
        else:
            if job.status == JobStatus.RUNNING:
                _finish(job.pk, JobStatus.FAILED, "The worker stopped while running this job.")
            params = {k: v for k, v in job.params.items() if not k.startswith("_")}
            new = job_start(
                organization=job.organization,
                kind=job.kind,
                task=current_app.tasks[task_name],
                params=params,
                user=None,  # the platform: staff hold no role in the organisation
                title=job.title,
            )
            Job.objects.filter(pk=job.pk).update(params={**job.params, RERUN_AS: new.pk})
    staff_audit_log(
        organization=job.organization,
        action="job_rerun",
        staff=staff,
        target=f"job #{job.pk}",
        details={
            "kind": job.kind,
            "job": new.pk,
            "rerun_of": job.pk,
            "was": job.status,
            "at": timezone.now().isoformat(timespec="seconds"),
        },
        request=request,
    )
    return new
