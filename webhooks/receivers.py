"""A reactivated organisation's held webhook deliveries go out again."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

log = logging.getLogger("segmenta.webhooks")


@receiver(post_save, sender="accounts.Organization", dispatch_uid="webhooks_resume_held")
def _organization_saved(
    sender, instance, created=False, update_fields=None, using=None, **kwargs
) -> None:
    """An organisation saved active (its reactivation, accounts.suspension) sends the
    deliveries held while it was suspended, once the save is committed (whichever
    connection saved it: the back office's goes through the platform's)."""
    if created or instance.status != "active":
        return
    if update_fields is not None and "status" not in update_fields:
        return
    org_id = instance.pk

    def resume() -> None:
        from .services import deliveries_resume

        try:
            deliveries_resume(org_id)
        except Exception:  # never break the save: the deliveries stay held and listed
            log.exception("webhooks.resume_failed org=%s", org_id)

    transaction.on_commit(resume, using=using)
