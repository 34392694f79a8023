"""`build_world` for the tenant isolation sweep: one of each offers tenant model
(an offer, a recipient with a code, and a redemption of it on an order)."""

from __future__ import annotations

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
            external_id=f"offer-world-order-{organization.pk}",
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
