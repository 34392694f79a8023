"""`build_world` for the tenant isolation sweep: one of each campaigns tenant model."""

from __future__ import annotations

import secrets

from django.utils import timezone

from accounts.tenancy import tenant_context


def build_world(organization) -> None:
    from campaigns.models import (
        Automation,
        AutomationMember,
        AutomationOccurrence,
        Campaign,
        CampaignSettings,
        Delivery,
        DeliveryStatus,
        OutboxMessage,
        TrackedLink,
        Variant,
    )
    from customers.models import Customer
    from offers.models import Offer, OfferRecipient

    with tenant_context(organization):
        customer = Customer.objects.first() or Customer.objects.create(
            organization=organization, external_id="camp-world-1", email="camp@example.com"
        )
        # the campaign carries an offer, so its pages and forms show one
        offer = Offer.objects.create(
            organization=organization,
            name=f"World campaign offer {organization.pk}",
            kind="percent",
            value="10",
            status="ready",
            recipients_count=1,
        )
        OfferRecipient.objects.create(
            organization=organization,
            offer=offer,
            customer=customer,
            code=f"CAMPWORLD{organization.pk}",
        )
        campaign = Campaign.objects.create(
            organization=organization,
            name=f"World campaign {organization.pk}",
            subject="Hello {{ first_name }}",
            body="Hi {{ first_name }}, see https://shop.example/new {% offer %}",
            offer_id=offer.pk,
        )
        variant = Variant.objects.create(
            organization=organization, campaign=campaign, name="World variant", body="Hi"
        )
        Delivery.objects.create(
            organization=organization,
            campaign=campaign,
            variant=variant,
            customer=customer,
            channel="email",
            status=DeliveryStatus.SENT,
            to_address=customer.email,
            token=secrets.token_hex(16),
        )
        TrackedLink.objects.create(
            organization=organization, campaign=campaign, url="https://shop.example/new"
        )
        CampaignSettings.objects.get_or_create(organization=organization)
        OutboxMessage.objects.create(
            organization=organization,
            channel="email",
            customer=customer,
            to_address=customer.email or "camp@example.com",
            subject="Hello",
            text="Hi",
        )
        automation = Automation.objects.create(
            organization=organization,
            name=f"World automation {organization.pk}",
            trigger_kind="birthday",
            subject="Happy birthday {{ first_name }}",
            body="Hi {{ first_name }}",
            baseline_at=timezone.now(),  # evaluated once: who met the trigger is recorded
        )
        # the hidden campaign it sends through mirrors its message
        round_campaign = Campaign.objects.create(
            organization=organization,
            name=f"World automation {organization.pk} (automation, round 1)",
            automation=automation,
            automation_round=1,
            subject=automation.subject,
            body=automation.body,
            status="sent",
        )
        # (a variant too, so campaign and variant ids stay in step for the sweep's routes
        # that take both)
        Variant.objects.create(
            organization=organization, campaign=round_campaign, name="World round", body="Hi"
        )
        delivery = Delivery.objects.create(
            organization=organization,
            campaign=round_campaign,
            customer=customer,
            channel="email",
            status=DeliveryStatus.SENT,
            to_address=customer.email,
            token=secrets.token_hex(16),
        )
        AutomationOccurrence.objects.create(
            organization=organization,
            automation=automation,
            customer=customer,
            key="birthday:2026",
            delivery=delivery,
        )
        AutomationMember.objects.create(
            organization=organization, automation=automation, customer=customer
        )
