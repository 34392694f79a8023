"""Every campaigns table, with what erasure does to its rows and whether each export
(one person's JSON, the organisation's zip) carries it. A new model must be added
here, which makes its author decide both."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from django.apps import apps
from django.conf import settings

from accounts.tenancy import tenant_context
from campaigns.models import AutomationMember, AutomationOccurrence, Delivery, OutboxMessage
from campaigns.tests.factories import build_world
from core.models import Job
from customers.models import Customer, Event
from customers.services.privacy import (
    customer_erase,
    customer_export_data,
    organization_export_run,
)

CAMPAIGN_TABLES = {
    "Campaign": ("no personal data (templates and counts)", None, None),
    "Variant": ("no personal data (templates)", None, None),
    "TrackedLink": ("no personal data (a campaign's links)", None, None),
    "CampaignSettings": ("no personal data (cap, quiet hours, sender)", None, None),
    "Automation": ("no personal data (a trigger and a message)", None, None),
    "Delivery": ("deleted", "messages", "messages.csv"),
    "OutboxMessage": ("deleted", "outbox", "outbox.csv"),
    "AutomationOccurrence": ("deleted", "automation_occurrences", "automation_occurrences.csv"),
    "AutomationMember": ("deleted", "automation_triggers", "automation_members.csv"),
}
PERSONAL = {
    "Delivery": Delivery,
    "OutboxMessage": OutboxMessage,
    "AutomationOccurrence": AutomationOccurrence,
    "AutomationMember": AutomationMember,
}


def test_every_campaigns_table_is_erased_and_exported(org, owner):
    assert {m.__name__ for m in apps.get_app_config("campaigns").get_models()} == set(
        CAMPAIGN_TABLES
    )
    build_world(org)
    with tenant_context(org):
        delivery = Delivery.objects.order_by("pk").first()
        customer = Customer.objects.get(pk=delivery.customer_id)
        for name, model in PERSONAL.items():
            assert model.objects.filter(customer=customer).exists(), name
        exported = customer_export_data(customer=customer)
        for name, (_, person_key, _) in CAMPAIGN_TABLES.items():
            if person_key:
                assert exported[person_key], name

        job = Job.objects.create(organization=org, kind="org_export", title="export")
        result = organization_export_run(job_id=job.pk, user_id=owner.pk)
        with zipfile.ZipFile(Path(settings.MEDIA_ROOT, result["file"])) as archive:
            for name, (_, _, file_name) in CAMPAIGN_TABLES.items():
                if file_name:
                    text = io.TextIOWrapper(archive.open(file_name), encoding="utf-8").read()
                    assert customer.external_id in text, name

        Event.objects.create(
            organization=org,
            customer=customer,
            type="message_clicked",
            occurred_at=delivery.created_at,
            properties={"campaign_id": delivery.campaign_id},
        )
        customer_erase(customer=customer, actor=owner)
        for name, model in PERSONAL.items():
            assert not model.objects.filter(customer_id=customer.pk).exists(), name
        # tracking events are the customer's events: erased with them
        assert not Event.objects.filter(customer_id=customer.pk, type="message_clicked").exists()
