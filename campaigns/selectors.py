"""Reading campaigns, and what erasure and the exports need."""

from __future__ import annotations

from .models import (
    AutomationMember,
    AutomationOccurrence,
    Delivery,
    DeliveryStatus,
    OutboxMessage,
)

DELIVERY_EXPORT_FIELDS = [
    "campaign_id",
    "campaign__name",
    "channel",
    "status",
    "skip_reason",
    "to_address",
    "sent_at",
    "opened_at",
    "clicked_at",
    "converted_at",
    "revenue",
    "unsubscribed_at",
]


def survey_invited(survey) -> set[int]:
    """Ids of the customers a campaign carrying `survey` was sent to (the delivery's
    status is `sent`: not held out, skipped, failed, bounced or still waiting): the
    survey's invitations, for its response rate. Scoped to the current organisation,
    and to the survey's own."""
    return set(
        Delivery.objects.filter(
            organization_id=survey.organization_id,
            campaign__survey_id=survey.pk,
            status=DeliveryStatus.SENT,
        )
        .values_list("customer_id", flat=True)
        .distinct()
    )


def person_export(*, customer) -> dict:
    """Every message sent (or held back) to one person, for their export."""
    rows = (
        Delivery.objects.filter(customer_id=customer.pk)
        .order_by("created_at", "id")
        .values(*DELIVERY_EXPORT_FIELDS)
    )
    out = []
    for row in rows:
        row["campaign"] = row.pop("campaign__name")
        out.append({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()})
    for row in out:
        row["revenue"] = str(row["revenue"])
    outbox = (
        OutboxMessage.objects.filter(customer_id=customer.pk)
        .order_by("created_at", "id")
        .values("channel", "to_address", "subject", "text", "created_at")
    )
    occurrences = (
        AutomationOccurrence.objects.filter(customer_id=customer.pk)
        .order_by("created_at", "id")
        .values("automation_id", "automation__name", "key", "occurred_at")
    )
    triggered = (
        AutomationMember.objects.filter(customer_id=customer.pk)
        .order_by("automation_id")
        .values("automation_id", "automation__name")
    )
    return {
        "automation_triggers": [
            {"automation_id": t["automation_id"], "automation": t["automation__name"]}
            for t in triggered
        ],
        "messages": out,
        "outbox": [{**m, "created_at": m["created_at"].isoformat()} for m in outbox],
        "automation_occurrences": [
            {
                "automation_id": o["automation_id"],
                "automation": o["automation__name"],
                "key": o["key"],
                "occurred_at": o["occurred_at"].isoformat(),
            }
            for o in occurrences
        ],
    }


def org_export() -> list[tuple[str, list[str], object]]:
    """Every delivery, for the organisation's zip."""
    fields = ["customer__external_id", *DELIVERY_EXPORT_FIELDS]
    rows = (
        Delivery.objects.filter(customer__erased_at__isnull=True)
        .order_by("campaign_id", "id")
        .values_list(*fields)
        .iterator(chunk_size=2000)
    )
    headers = ["customer_id", "campaign_id", "campaign", *DELIVERY_EXPORT_FIELDS[2:]]
    outbox_fields = [
        "customer__external_id",
        "channel",
        "to_address",
        "subject",
        "text",
        "created_at",
    ]
    outbox = (
        OutboxMessage.objects.filter(customer__erased_at__isnull=True)
        .order_by("id")
        .values_list(*outbox_fields)
        .iterator(chunk_size=2000)
    )
    occurrence_fields = ["customer__external_id", "automation_id", "automation__name", "key"]
    occurrences = (
        AutomationOccurrence.objects.filter(customer__erased_at__isnull=True)
        .order_by("id")
        .values_list(*occurrence_fields, "occurred_at")
        .iterator(chunk_size=2000)
    )
    triggered = (
        AutomationMember.objects.filter(customer__erased_at__isnull=True)
        .order_by("automation_id", "id")
        .values_list("customer__external_id", "automation_id", "automation__name")
        .iterator(chunk_size=2000)
    )
    return [
        ("messages.csv", headers, rows),
        ("automation_members.csv", ["customer_id", "automation_id", "automation"], triggered),
        ("outbox.csv", ["customer_id", *outbox_fields[1:]], outbox),
        (
            "automation_occurrences.csv",
            ["customer_id", "automation_id", "automation", "key", "occurred_at"],
            occurrences,
        ),
    ]


def erase_customers(*, organization, customer_ids: list[int]) -> None:
    """An erased person's deliveries go (the address they went to with them), and their
    automation occurrences and memberships; the campaign's totals keep only the counts
    written at send time."""
    AutomationOccurrence.objects.filter(customer_id__in=customer_ids).delete()
    AutomationMember.objects.filter(customer_id__in=customer_ids).delete()
    Delivery.objects.filter(customer_id__in=customer_ids).delete()
    OutboxMessage.objects.filter(customer_id__in=customer_ids).delete()
