"""Reading offers: lists, codes, the customer page's panel, and what erasure and the
exports need. Codes are personal data (a code is given to one person): they go with
the person on erasure and are in both exports."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from .models import CodeMode, Offer, OfferRecipient, OfferRedemption

__all__ = [
    "customer_codes",
    "customer_offers",
    "customer_panel",
    "erase_customers",
    "holdout_ids",
    "offer_codes",
    "offers_list",
    "org_export",
    "person_export",
]


def offers_list() -> QuerySet[Offer]:
    """The organisation's offers, newest first (the hidden loyalty reward offers left out)."""
    return Offer.objects.filter(is_reward=False).order_by("-created_at", "-id")


def offer_codes(*, offer: Offer) -> QuerySet[OfferRecipient]:
    """The recipients of an offer (not the hold-out), with their customer, erased
    customers left out. A shared offer's rows have a blank `code`: theirs is
    `offer.shared_code` (`recipient_code`)."""
    return (
        OfferRecipient.objects.filter(offer=offer, holdout=False, customer__erased_at__isnull=True)
        .select_related("customer")
        .order_by("customer_id", "id")
    )


def recipient_code(offer: Offer, recipient: OfferRecipient) -> str:
    return recipient.code or (offer.shared_code if offer.code_mode == CodeMode.SHARED else "")


def customer_codes(*, offer: Offer, customer_ids) -> dict[int, str]:
    """The code each of these customers was given (their unique code, or the shared
    code); the hold-out and customers outside the offer are absent."""
    ids = list(customer_ids)
    out: dict[int, str] = {}
    for start in range(0, len(ids), 5000):
        rows = OfferRecipient.objects.filter(
            offer=offer, holdout=False, customer_id__in=ids[start : start + 5000]
        ).order_by("created_at", "id")
        for customer_id, code in rows.values_list("customer_id", "code"):
            code = code or (offer.shared_code if offer.code_mode == CodeMode.SHARED else "")
            if code:
                out[customer_id] = code  # the newest, for a reward offer's several codes
    return out


def holdout_ids(*, offer: Offer) -> set[int]:
    return set(
        OfferRecipient.objects.filter(offer=offer, holdout=True).values_list(
            "customer_id", flat=True
        )
    )


def customer_offers(*, customer) -> list[dict[str, Any]]:
    """Each code this customer was given, with its uses (newest offer first)."""
    return _customer_offers(customer=customer)[0]


def _customer_offers(*, customer) -> tuple[list[dict[str, Any]], list[str]]:
    """(`customer_offers`, names of the offers they were kept back from), from one
    read of their recipient rows and one of their redemptions."""
    rows = (
        OfferRecipient.objects.filter(customer_id=customer.pk)
        .select_related("offer")
        .order_by("-offer__created_at", "-id")
    )
    uses: dict[int, list[dict[str, Any]]] = {}
    for r in (
        OfferRedemption.objects.filter(customer_id=customer.pk)
        .select_related("order")
        .order_by("redeemed_at", "id")
    ):
        uses.setdefault(r.recipient_id, []).append(
            {
                "order_id": r.order_id,
                "order": r.order.external_id,
                "redeemed_at": r.redeemed_at,
                "counted": r.counted,
                "reason": r.reason,
                "revenue": r.revenue,
                "discount": r.discount,
            }
        )
    out = []
    held_back = []
    for r in rows:
        if r.holdout:
            held_back.append(r.offer.name)
            continue
        out.append(
            {
                "offer_id": r.offer_id,
                "offer": r.offer.name,
                "kind": r.offer.kind,
                "is_reward": r.offer.is_reward,
                "code": recipient_code(r.offer, r),
                "ends_at": r.offer.ends_at,
                "uses": uses.get(r.pk, []),
            }
        )
    return out, held_back


def customer_panel(*, request, customer) -> dict | None:
    """The customer page's "Offers" place: their codes and when they were used, the
    offers they were kept back from, or a line saying there are none."""
    codes, held = _customer_offers(customer=customer)
    return {
        "template": "offers/_customer_panel.html",
        "context": {"codes": codes, "held_back": held},
    }


def person_export(*, customer) -> dict:
    """The codes one person was given and their uses, for their export."""
    rows = []
    for item in customer_offers(customer=customer):
        rows.append(
            {
                "offer_id": item["offer_id"],
                "offer": item["offer"],
                "code": item["code"],
                "redemptions": [
                    {
                        "order_id": u["order"],
                        "redeemed_at": u["redeemed_at"].isoformat(),
                        "counted": u["counted"],
                        "reason": u["reason"],
                        "revenue": str(u["revenue"]),
                        "discount": str(u["discount"]),
                    }
                    for u in item["uses"]
                ],
            }
        )
    held = OfferRecipient.objects.filter(customer_id=customer.pk, holdout=True).values_list(
        "offer_id", "offer__name"
    )
    for offer_id, name in held:
        rows.append({"offer_id": offer_id, "offer": name, "code": "", "held_back": True})
    return {"offers": rows}


def org_export() -> list[tuple[str, list[str], object]]:
    """Every offer's codes and redemptions, for the organisation's zip."""
    codes = (
        OfferRecipient.objects.filter(customer__erased_at__isnull=True)
        .order_by("offer_id", "customer_id", "id")
        .values_list(
            "offer_id",
            "offer__name",
            "customer__external_id",
            "code",
            "offer__shared_code",
            "holdout",
            "store_id",
            "created_at",
        )  # fmt: skip
    )

    def code_rows():
        for offer_id, name, external_id, code, shared, held, store_id, created in codes.iterator(
            chunk_size=2000
        ):
            yield [offer_id, name, external_id, "" if held else (code or shared), held,
                   store_id, created]  # fmt: skip

    redemptions = (
        OfferRedemption.objects.filter(customer__erased_at__isnull=True)
        .order_by("offer_id", "redeemed_at", "id")
        .values_list(
            "offer_id",
            "offer__name",
            "customer__external_id",
            "order__external_id",
            "code",
            "redeemed_at",
            "counted",
            "reason",
            "revenue",
            "discount",
        )  # fmt: skip
        .iterator(chunk_size=2000)
    )
    return [
        (
            "offer_codes.csv",
            ["offer_id", "offer", "customer_id", "code", "held_back", "store_id", "created_at"],
            code_rows(),
        ),
        (
            "offer_redemptions.csv",
            [
                "offer_id",
                "offer",
                "customer_id",
                "order_id",
                "code",
                "redeemed_at",
                "counted",
                "reason",
                "revenue",
                "discount",
            ],  # fmt: skip
            redemptions,
        ),
    ]


def erase_customers(*, organization, customer_ids: list[int]) -> None:
    """Codes are personal: an erased person's codes and redemptions go at once (the
    offers' counts follow)."""
    from django.db.models import Count, Q

    offer_ids = set(
        OfferRecipient.objects.filter(customer_id__in=customer_ids).values_list(
            "offer_id", flat=True
        )
    )
    OfferRedemption.objects.filter(customer_id__in=customer_ids).delete()
    OfferRecipient.objects.filter(customer_id__in=customer_ids).delete()
    counts = (
        OfferRecipient.objects.filter(offer_id__in=offer_ids)
        .values("offer_id")
        .annotate(
            recipients=Count("pk", filter=Q(holdout=False)),
            held=Count("pk", filter=Q(holdout=True)),
        )
    )
    found = {row["offer_id"]: row for row in counts}
    for offer_id in offer_ids:
        row = found.get(offer_id, {"recipients": 0, "held": 0})
        Offer.objects.filter(pk=offer_id).update(
            recipients_count=row["recipients"], holdout_count=row["held"]
        )
