"""Redemptions, re-derived from the orders (the `offers` pipeline step, and after an
offer is built or its limits change).

An order redeems an offer when one of its lines carries (`OrderLine.discount_code`,
matched ignoring case, spaces and dashes) the code given to **that order's
customer**: their own unique code, or the offer's shared code when they are one of
its recipients (not the hold-out). A unique code used by someone else, or on a
guest order, redeems nothing and is not stored. Returns redeem nothing.

Each use is judged in order time, per offer; a use is stored with `counted=False`
and the reason when
- the order is not paid (pending, cancelled or refunded);
- it was placed before `starts_at` or after `ends_at`;
- the basket is below `min_basket` — the basket is the order's net goods amount,
  or only its lines in `categories` when the offer names categories;
- the code has already been counted `max_redemptions_per_code` times (for a shared
  code: by that customer), or the offer `max_redemptions_total` times.

Revenue is the order's revenue as the organisation counts it (`revenue_basis`).
The discount is the sum of the order's `discount_amount` when the lines give one,
else worked out from the offer's terms: the percentage of the basket, the amount
(at most the basket), 0 for free delivery, the product's price for a product.

Idempotent: the rows are compared with what the orders say now, so a re-imported
or deleted order changes them and a second run changes nothing; a row keeps its id
while its order still redeems the offer. Each counted redemption has one
`offer_redeemed` event (properties `offer_id`, `order_id`, `code`) on the customer,
written once and removed if the redemption stops counting.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction

from accounts.tenancy import scope_check
from core.jobs import NULL_JOB, JobHandle

from .codes import code_key
from .models import CodeMode, Offer, OfferKind, OfferRecipient, OfferRedemption

log = logging.getLogger("segmenta.offers")

EVENT_TYPE = "offer_redeemed"
CHUNK = 2_000
FOUR = Decimal("0.0001")
ZERO = Decimal(0)

__all__ = ["EVENT_TYPE", "Use", "judge_uses", "redemptions_refresh"]


@dataclass
class Use:
    """One order carrying one offer's code given to its customer (no ORM)."""

    order_id: int
    customer_id: int
    recipient_id: int
    code: str
    ordered_at: Any
    status: str
    basket: Decimal
    revenue: Decimal
    discount: Decimal
    counted: bool = True
    reason: str = ""


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):,}"


def judge_uses(offer: Offer, uses: list[Use]) -> list[Use]:
    """Mark each use counted or not, with the reason, in order time (no ORM)."""
    per_code: dict[Any, int] = defaultdict(int)
    total = 0
    shared = offer.code_mode == CodeMode.SHARED and not offer.is_reward
    for use in sorted(uses, key=lambda u: (u.ordered_at, u.order_id)):
        code_of = use.customer_id if shared else use.recipient_id
        reason = ""
        if use.status != "paid":
            reason = f"The order is {use.status}, not paid."
        elif offer.starts_at is not None and use.ordered_at < offer.starts_at:
            reason = "Used before the offer started."
        elif offer.ends_at is not None and use.ordered_at > offer.ends_at:
            reason = "Used after the offer ended."
        elif offer.min_basket is not None and use.basket < offer.min_basket:
            where = " in the offer's categories" if offer.categories else ""
            reason = (
                f"The basket{where} ({_money(use.basket)}) was below the minimum of "
                f"{_money(offer.min_basket)}."
            )
        elif per_code[code_of] >= offer.max_redemptions_per_code:
            times = offer.max_redemptions_per_code
            reason = f"The code had already been used {times} time{'s' if times != 1 else ''} (its limit)."
        elif offer.max_redemptions_total is not None and total >= offer.max_redemptions_total:
            reason = (
                f"The offer had reached its limit of {offer.max_redemptions_total:,} redemptions."
            )
        use.counted = not reason
        use.reason = reason
        if use.counted:
            per_code[code_of] += 1
            total += 1
    return uses


# --- loading ----------------------------------------------------------------------------
def _code_maps(offers: list[Offer]):
    """{code key: (offer id, recipient id, customer id, code)} for unique codes;
    {code key: offer id} for shared codes, and each shared offer's recipients."""
    unique: dict[str, tuple[int, int, int, str]] = {}
    shared: dict[str, int] = {}
    shared_recipients: dict[int, dict[int, int]] = {}
    ids = [o.pk for o in offers]
    for offer in offers:
        if offer.code_mode == CodeMode.SHARED and offer.shared_code:
            shared[code_key(offer.shared_code)] = offer.pk
            shared_recipients[offer.pk] = {}
    rows = (
        OfferRecipient.objects.filter(offer_id__in=ids, holdout=False)
        .values_list("pk", "offer_id", "customer_id", "code")
        .iterator(chunk_size=20_000)
    )
    for pk, offer_id, customer_id, code in rows:
        if code:
            unique[code_key(code)] = (offer_id, pk, customer_id, code)
        elif offer_id in shared_recipients:
            shared_recipients[offer_id].setdefault(customer_id, pk)
    return unique, shared, shared_recipients


def _candidates(unique, shared) -> dict[tuple[int, int], tuple[str, str]]:
    """{(offer id, order id): (code key, code)} for every order line carrying a code
    of these offers."""
    from customers.models import OrderLine

    found: dict[tuple[int, int], tuple[str, str]] = {}
    if not unique and not shared:
        return found
    rows = (
        OrderLine.objects.exclude(discount_code="")
        .values_list("order_id", "discount_code")
        .iterator(chunk_size=20_000)
    )
    for order_id, raw in rows:
        key = code_key(raw)
        if key in unique:
            found.setdefault((unique[key][0], order_id), (key, unique[key][3]))
        elif key in shared:
            offer_id = shared[key]
            found.setdefault((offer_id, order_id), (key, ""))
    return found


def _orders(order_ids: list[int], *, organization) -> dict[int, dict[str, Any]]:
    from customers.models import Order, OrderLine
    from customers.selectors import order_revenue

    revenue = order_revenue(organization.revenue_basis or "goods")
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(order_ids), CHUNK):
        chunk = order_ids[start : start + CHUNK]
        for row in (
            Order.objects.filter(pk__in=chunk)
            .annotate(counted=revenue)
            .values("pk", "customer_id", "ordered_at", "status", "is_return", "total", "counted")
        ):
            row["lines"] = []
            out[row["pk"]] = row
        for order_id, category, amount, discount in OrderLine.objects.filter(
            order_id__in=chunk
        ).values_list("order_id", "category", "amount", "discount_amount"):
            if order_id in out:
                out[order_id]["lines"].append((category or "", amount or ZERO, discount))
    return out


def _basket(order: dict[str, Any], categories: list[str]) -> Decimal:
    if not categories:
        return Decimal(order["total"] or 0)
    wanted = {c.casefold() for c in categories}
    return sum(
        (Decimal(a) for c, a, _ in order["lines"] if " ".join(c.split()).casefold() in wanted),
        ZERO,
    )


def _discount(offer: Offer, order: dict[str, Any], basket: Decimal, product_price) -> Decimal:
    given = [Decimal(d) for _, _, d in order["lines"] if d is not None]
    if given:
        return sum(given, ZERO)
    if offer.kind == OfferKind.PERCENT:
        return max(basket, ZERO) * Decimal(offer.value or 0) / 100
    if offer.kind == OfferKind.AMOUNT:
        return min(Decimal(offer.value or 0), max(basket, ZERO))
    if offer.kind == OfferKind.PRODUCT:
        return Decimal(product_price or 0)
    return ZERO


# --- the refresh ------------------------------------------------------------------------
def redemptions_refresh(
    *, organization, offer_ids: list[int] | None = None, job: JobHandle = NULL_JOB
) -> dict[str, int]:
    """Re-derive the redemptions of the organisation's offers (or of `offer_ids`) from
    the orders. Returns counts: {"offers", "redemptions", "counted", "created",
    "updated", "deleted"}."""
    from customers.models import Product

    scope_check(organization=organization)
    done = {"offers": 0, "redemptions": 0, "counted": 0, "created": 0, "updated": 0, "deleted": 0}
    offers_qs = Offer.objects.order_by("pk")
    if offer_ids is not None:
        offers_qs = offers_qs.filter(pk__in=list(offer_ids))
    with transaction.atomic():
        # one refresh at a time per offer (the step, a build, a change of limits)
        offers = list(offers_qs.select_for_update())
        if not offers:
            return done
        done["offers"] = len(offers)
        job.progress(10, "Matching discount codes to orders")
        unique, shared, shared_recipients = _code_maps(offers)
        candidates = _candidates(unique, shared)
        job.progress(40, f"Reading {len(candidates):,} orders that carry a code")
        orders = _orders(sorted({o for _, o in candidates}), organization=organization)
        skus = [o.value for o in offers if o.kind == OfferKind.PRODUCT and o.value]
        prices = dict(Product.objects.filter(sku__in=skus).values_list("sku", "price"))

        uses_by_offer: dict[int, list[Use]] = defaultdict(list)
        for (offer_id, order_id), (key, code) in candidates.items():
            order = orders.get(order_id)
            if order is None or order["is_return"] or order["customer_id"] is None:
                continue
            customer_id = order["customer_id"]
            if code:  # a unique code: it must be this customer's
                _, recipient_id, owner_id, _ = unique[key]
                if owner_id != customer_id:
                    continue
            else:  # the shared code: only for the offer's recipients
                recipient_id = shared_recipients.get(offer_id, {}).get(customer_id)
                if recipient_id is None:
                    continue
            uses_by_offer[offer_id].append(
                Use(
                    order_id=order_id,
                    customer_id=customer_id,
                    recipient_id=recipient_id,
                    code=code,
                    ordered_at=order["ordered_at"],
                    status=order["status"],
                    basket=ZERO,
                    revenue=Decimal(order["counted"] or 0),
                    discount=ZERO,
                )
            )
        job.progress(60, "Checking the terms and limits")
        wanted: dict[tuple[int, int], Use] = {}
        by_pk = {o.pk: o for o in offers}
        for offer_id, uses in uses_by_offer.items():
            offer = by_pk[offer_id]
            for use in uses:
                order = orders[use.order_id]
                use.basket = _basket(order, offer.categories or [])
                use.discount = _discount(offer, order, use.basket, prices.get(offer.value))
                if not use.code:
                    use.code = offer.shared_code
            for use in judge_uses(offer, uses):
                wanted[(offer_id, use.order_id)] = use
        job.progress(80, "Saving redemptions")
        _write(offers, wanted, done)
        _events(offers, wanted)
    done["redemptions"] = len(wanted)
    done["counted"] = sum(1 for u in wanted.values() if u.counted)
    log.info("offers.redemptions_refreshed %s", " ".join(f"{k}={v}" for k, v in done.items()))
    return done


def _write(offers: list[Offer], wanted: dict[tuple[int, int], Use], done: dict) -> None:
    ids = [o.pk for o in offers]
    existing = {
        (r.offer_id, r.order_id): r
        for r in OfferRedemption.objects.filter(offer_id__in=ids).only(
            "pk",
            "offer_id",
            "order_id",
            "recipient_id",
            "customer_id",
            "code",
            "revenue",
            "discount",
            "redeemed_at",
            "counted",
            "reason",
        )  # fmt: skip
    }
    stale = [r.pk for key, r in existing.items() if key not in wanted]
    for start in range(0, len(stale), CHUNK):
        OfferRedemption.objects.filter(pk__in=stale[start : start + CHUNK]).delete()
    done["deleted"] = len(stale)
    organization_id = offers[0].organization_id
    new_rows, changed = [], []
    for (offer_id, order_id), use in wanted.items():
        fields = {
            "recipient_id": use.recipient_id,
            "customer_id": use.customer_id,
            "code": use.code[:32],
            "revenue": use.revenue.quantize(FOUR),
            "discount": use.discount.quantize(FOUR),
            "redeemed_at": use.ordered_at,
            "counted": use.counted,
            "reason": use.reason[:200],
        }
        row = existing.get((offer_id, order_id))
        if row is None:
            new_rows.append(
                OfferRedemption(
                    organization_id=organization_id, offer_id=offer_id, order_id=order_id, **fields
                )
            )
            continue
        if any(
            (
                Decimal(getattr(row, k)).quantize(FOUR)
                if k in ("revenue", "discount")
                else getattr(row, k)
            )
            != v
            for k, v in fields.items()
        ):
            for k, v in fields.items():
                setattr(row, k, v)
            changed.append(row)
    if changed:
        OfferRedemption.objects.bulk_update(
            changed,
            ["recipient_id", "customer_id", "code", "revenue", "discount", "redeemed_at",
             "counted", "reason"],
            batch_size=500,
        )  # fmt: skip
    OfferRedemption.objects.bulk_create(new_rows, batch_size=500)
    done["created"] = len(new_rows)
    done["updated"] = len(changed)


def _events(offers: list[Offer], wanted: dict[tuple[int, int], Use]) -> None:
    """One `offer_redeemed` event per counted redemption, kept in step with them."""
    from customers.models import Event

    ids = {o.pk for o in offers}
    want = {key: use for key, use in wanted.items() if use.counted}
    stale = []
    for pk, customer_id, props in Event.objects.filter(type=EVENT_TYPE).values_list(
        "pk", "customer_id", "properties"
    ):
        props = props or {}
        offer_id, order_id = props.get("offer_id"), props.get("order_id")
        if offer_id not in ids or not isinstance(order_id, int):
            continue  # another offer's, or not one of ours
        key = (int(offer_id), order_id)
        use = want.get(key)
        if use is not None and use.customer_id == customer_id:
            want.pop(key)
        else:
            stale.append(pk)
    for start in range(0, len(stale), CHUNK):
        Event.objects.filter(pk__in=stale[start : start + CHUNK]).delete()
    organization_id = offers[0].organization_id
    Event.objects.bulk_create(
        [
            Event(
                organization_id=organization_id,
                customer_id=use.customer_id,
                type=EVENT_TYPE,
                occurred_at=use.ordered_at,
                properties={"offer_id": offer_id, "order_id": order_id, "code": use.code},
            )
            for (offer_id, order_id), use in sorted(want.items())
        ],
        batch_size=500,
    )
