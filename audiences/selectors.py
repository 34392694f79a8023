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
    next build)."""
    AudienceMember.objects.filter(customer_id__in=customer_ids).delete()
