"""Reading audiences: lists, members, and what erasure and the exports need."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Audience, AudienceMember


def audiences_list() -> QuerySet[Audience]:
    return Audience.objects.order_by("name", "id")


def audience_get(*, pk: int) -> Audience | None:
    return Audience.objects.filter(pk=pk).first()


def audience_members(*, audience: Audience) -> QuerySet[AudienceMember]:
    """Members best first (rank), erased customers left out, with the customer."""
    return (
        AudienceMember.objects.filter(audience=audience, customer__erased_at__isnull=True)
        .select_related("customer")
        .order_by("rank", "id")
    )


def customer_audiences(*, customer) -> list[dict]:
    rows = (
        AudienceMember.objects.filter(customer_id=customer.pk)
        .select_related("audience")
        .order_by("audience__name")
    )
    return [
        {
            "audience_id": r.audience_id,
            "audience": r.audience.name,
            "rank": r.rank,
            "score": r.score,
        }
        for r in rows
    ]


def person_export(*, customer) -> dict:
    """The audiences one person is in, for their export."""
    return {"audiences": customer_audiences(customer=customer)}


def org_export() -> list[tuple[str, list[str], object]]:
    """Every audience's members, for the organisation's zip."""
    fields = ["audience_id", "audience__name", "customer__external_id", "rank", "score"]
    rows = (
        AudienceMember.objects.filter(customer__erased_at__isnull=True)
        .order_by("audience_id", "rank")
        .values_list(*fields)
        .iterator(chunk_size=2000)
    )
    headers = ["audience_id", "audience", "customer_id", "rank", "score"]
    return [("audience_members.csv", headers, rows)]


def erase_customers(*, organization, customer_ids: list[int]) -> None:
    """An erased person leaves every audience at once (sizes are recounted at the
    next build), the seed lists of the saved lookalike audiences
    (`services.audience_seeds_forget`), and the lookalike previews' jobs that named
    them as a seed."""
    from .services import audience_seeds_forget

    AudienceMember.objects.filter(customer_id__in=customer_ids).delete()
    audience_seeds_forget(organization=organization, customer_ids=customer_ids)
    _preview_jobs_forget(customer_ids)


def _preview_jobs_forget(customer_ids: list[int]) -> None:
    """A lookalike preview's job keeps the seed customers' own ids (as the shop typed
    them) in its parameters: an erased person's id leaves them, and the job is no
    longer reused (its figures were worked out with them). Its result is scrubbed
    with every job's (customers.services.privacy). Runs before the customer's id is
    rewritten, so the id is still there to be found."""
    from core.models import Job
    from customers.models import Customer

    from .services import PREVIEW_JOB_KIND

    gone = set(Customer.objects.filter(pk__in=customer_ids).values_list("external_id", flat=True))
    if not gone:
        return
    jobs = Job.objects.filter(kind=PREVIEW_JOB_KIND, params__definition__kind="lookalike")
    for job in jobs.only("id", "params"):
        definition = dict((job.params or {}).get("definition") or {})
        seeds = definition.get("seed_customer_ids") or []
        kept = [s for s in seeds if s not in gone]
        if len(kept) == len(seeds):
            continue
        definition["seed_customer_ids"] = kept
        params = {**job.params, "definition": definition, "preview_key": ""}
        Job.objects.filter(pk=job.pk).update(params=params)
