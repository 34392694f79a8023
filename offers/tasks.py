"""Offer jobs: build one offer (recipients, hold-out, codes, fairness), and the
`offers` pipeline step that re-derives redemptions from the orders."""

from __future__ import annotations

from celery import shared_task

from core.jobs import TenantTask, register_job_kind


@shared_task(base=TenantTask, bind=True, name="offers.tasks.offer_build")
def offer_build(self, *, organization_id: int, job_id: int | None, offer_id: int):
    from .services import offer_build as build

    offer = build(offer_id=offer_id, job=self.job)
    return {
        "message": f"{offer.name}: {offer.recipients_count:,} codes, "
        f"{offer.holdout_count:,} kept back.",
        "offer_id": offer.pk,
        "recipients": offer.recipients_count,
        "holdout": offer.holdout_count,
        "fairness_flagged": offer.fairness_flagged,
    }


@shared_task(base=TenantTask, bind=True, name="offers.tasks.offers_refresh")
def offers_refresh(self, *, organization_id: int, job_id: int | None, as_of: str | None = None):
    """The `offers` step: redemptions follow the orders after every import. `as_of`
    is accepted like every step's, and ignored: a redemption is a fact of its order."""
    from .models import Offer

    if not Offer.objects.exists():  # one query on an organisation without offers
        return {"message": "No offers yet.", "offers": 0}
    from accounts.models import Organization
    from segmentation.pipeline import pipeline_wait_for_imports

    from .redemption import redemptions_refresh

    pipeline_wait_for_imports()
    organization = Organization.objects.get(pk=organization_id)
    done = redemptions_refresh(organization=organization, job=self.job)
    return {
        "message": f"{done['counted']:,} redemptions counted across {done['offers']:,} offers.",
        **done,
    }


def _build_cancelled(job) -> None:
    from .services import offer_build_cancelled

    offer_build_cancelled(job=job)


register_job_kind(name="offer", task=offer_build, role="marketer", on_cancelled=_build_cancelled)
