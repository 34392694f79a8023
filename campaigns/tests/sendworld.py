"""A small world for the send tests: two segments of a live run, customers with and
without consent, and a campaign to them."""

from __future__ import annotations

from campaigns.models import Campaign, Variant
from customers.models import Customer
from segmentation.models import SegmentMembership
from segmentation.tests.factories import PersonaFactory, SegmentationRunFactory, SegmentFactory


def customers(org, n, prefix, *, email=True, sms=False, phone=True, **extra):
    return [
        Customer.objects.create(
            organization=org,
            external_id=f"{prefix}{i}",
            email=f"{prefix}{i}@example.com",
            phone=f"+4477009000{i:02d}" if phone else "",
            first_name=f"{prefix.title()}{i}",
            accepts_email=email,
            accepts_sms=sms,
            **extra,
        )
        for i in range(n)
    ]


def segments(org, groups: dict[str, list]):
    """A live run with one segment per name holding those customers."""
    run = SegmentationRunFactory(organization=org, is_live=True)
    out = {}
    for name, members in groups.items():
        segment = SegmentFactory(organization=org, last_run=run, name=name)
        SegmentMembership.objects.bulk_create(
            [
                SegmentMembership(organization=org, run=run, segment=segment, customer=c)
                for c in members
            ]
        )
        out[name] = segment
    return out


def persona(org, segment, name="Bargain hunter"):
    return PersonaFactory(organization=org, segment=segment, name=name)


def campaign(org, segment_ids, **fields):
    defaults = {
        "name": "Spring",
        "channel": "email",
        "subject": "Hello {{ first_name }}",
        "body": "Hi {{ first_name }}, see https://shop.example/new",
        "status": "draft",
    }
    defaults.update(fields)
    return Campaign.objects.create(organization=org, segment_ids=list(segment_ids), **defaults)


def variant(org, campaign, name, **fields):
    fields.setdefault("subject", f"{name} {{{{ first_name }}}}")
    fields.setdefault("body", f"{name} words for {{{{ first_name }}}}")
    return Variant.objects.create(organization=org, campaign=campaign, name=name, **fields)
