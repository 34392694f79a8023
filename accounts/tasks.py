"""Scheduled work of accounts: organisations whose scheduled deletion is due."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="accounts.tasks.organizations_delete_due")
def organizations_delete_due() -> int:
    """Hourly (Celery beat): delete the organisations whose deletion date has come
    (accounts.suspension). Returns how many were deleted."""
    from .suspension import organizations_delete_due as delete_due

    return delete_due()
