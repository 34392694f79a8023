"""`build_world` for the tenant isolation sweep: one of each offers tenant model
(an offer, a recipient with a code, and a redemption of it on an order)."""

from __future__ import annotations

import itertools

from django.utils import timezone

from accounts.tenancy import tenant_context


def build_world(organization) -> dict:
    from customers.models import Customer, Order, OrderLine
    from offers.codes import codes_fresh
    from offers.models import Offer, OfferRecipient, OfferRedemption, OfferStatus

    with tenant_context(organization):
        customer = Customer.objects.filter(erased_at__isnull=True).first() or (
            Customer.objects.create(
                organization=organization, external_id="offer-world-1", email="offer@example.com"
            )
        )
        now = timezone.now()
        offer = Offer.objects.create(
            organization=organization,
            name=f"World offer {organization.pk}",
            kind="percent",
            value="10",
            segment_ids=[],
            status=OfferStatus.READY,
            built_at=now,
            recipients_count=1,
        )
        (code,) = codes_fresh(1)
        recipient = OfferRecipient.objects.create(
            organization=organization, offer=offer, customer=customer, code=code
        )
        order = Order.objects.create(
            organization=organization,
            external_id=f"OW{organization.pk}",
            customer=customer,
            ordered_at=now,
            total=45,
            lines_count=1,
        )
        OrderLine.objects.create(
            organization=organization, order=order, sku="W-1", amount=45, discount_code=code
        )
        redemption = OfferRedemption.objects.create(
            organization=organization,
            offer=offer,
            recipient=recipient,
            customer=customer,
            order=order,
            code=code,
            revenue=45,
            discount=5,
            redeemed_at=now,
        )
    return {"offer": offer, "recipient": recipient, "redemption": redemption, "code": code}


# --- small worlds for the offers tests --------------------------------------------------
def segment_world(org, *, n: int = 40, genders=None, prefix: str = "C") -> dict:
    """`n` customers (external ids C000...), all in one live cluster segment
    "Regulars"; `genders`, when given, is a list of n values (or a function of i)."""
    import datetime as dt

    from customers.models import Customer
    from segmentation.models import Segment, SegmentationRun, SegmentKind, SegmentMembership

    with tenant_context(org):
        run = SegmentationRun.objects.filter(is_live=True).first() or (
            SegmentationRun.objects.create(
                organization=org, as_of=dt.date(2025, 4, 30), chosen_k=1, is_live=True
            )
        )
        segment = Segment.objects.create(
            organization=org, kind=SegmentKind.CLUSTER, name=f"Regulars {prefix}",
            key=f"cluster-{prefix}", size=n, first_run=run, last_run=run,
        )  # fmt: skip
        customers = []
        for i in range(n):
            gender = ""
            if genders is not None:
                gender = genders(i) if callable(genders) else genders[i]
            c = Customer.objects.create(
                organization=org,
                external_id=f"{prefix}{i:03d}",
                email=f"{prefix.lower()}{i}@example.com",
                accepts_email=True,
                gender=gender,
            )
            customers.append(c)
            SegmentMembership.objects.create(organization=org, run=run, segment=segment, customer=c)
    return {"segment": segment, "customers": customers, "run": run}


def segment_add(org, world: dict, customers) -> None:
    from segmentation.models import SegmentMembership

    with tenant_context(org):
        for c in customers:
            SegmentMembership.objects.create(
                organization=org, run=world["run"], segment=world["segment"], customer=c
            )


def segment_remove(org, world: dict, customers) -> None:
    from segmentation.models import SegmentMembership

    with tenant_context(org):
        SegmentMembership.objects.filter(
            segment=world["segment"], customer__in=list(customers)
        ).delete()


def make_order(org, customer, *, code: str = "", when=None, amount=50, external_id=None,
               status: str = "paid", category: str = "", discount_amount=None, lines=None):  # fmt: skip
    """An order of one line (or `lines`: [(amount, category, code)]) for `customer`."""
    from customers.models import Order, OrderLine

    when = when or timezone.now()
    external_id = external_id or f"O{next(_order_numbers)}"
    lines = lines or [(amount, category, code)]
    with tenant_context(org):
        order = Order.objects.create(
            organization=org,
            external_id=external_id,
            customer=customer,
            ordered_at=when,
            total=sum(a for a, _, _ in lines),
            status=status,
            lines_count=len(lines),
        )
        for position, (a, cat, c) in enumerate(lines):
            OrderLine.objects.create(
                organization=org, order=order, sku=f"S{position}", amount=a, category=cat,
                discount_code=c, discount_amount=discount_amount, position=position,
            )  # fmt: skip
    return order


_order_numbers = itertools.count(1)
