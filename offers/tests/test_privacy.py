"""Every offers table, with what erasure does to its rows and whether each export
(one person's JSON, the organisation's zip) carries it. A new model must be added
here, which makes its author decide both. Codes are personal: given to one person."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from django.apps import apps
from django.conf import settings

from accounts.tenancy import tenant_context
from core.models import Job
from customers.models import Customer, Event
from customers.services.privacy import (
    customer_erase,
    customer_export_data,
    organization_export_run,
)
from offers.models import Offer, OfferRecipient, OfferRedemption
from offers.redemption import redemptions_refresh
from offers.tests.factories import build_world

OFFER_TABLES = {
    "Offer": ("kept: no personal data (terms, counts, the fairness figures)", None, None),
    "OfferRecipient": ("deleted", "offers", "offer_codes.csv"),
    "OfferRedemption": ("deleted", "offers", "offer_redemptions.csv"),
}
PERSONAL = {"OfferRecipient": OfferRecipient, "OfferRedemption": OfferRedemption}


def test_every_offers_table_is_erased_and_exported(org, owner):
    assert {m.__name__ for m in apps.get_app_config("offers").get_models()} == set(OFFER_TABLES)
    made = build_world(org)
    with tenant_context(org):
        redemptions_refresh(organization=org)  # the world's order carries the code
        assert OfferRedemption.objects.filter(counted=True).count() == 1
        assert Event.objects.filter(type="offer_redeemed").count() == 1
        customer = Customer.objects.get(pk=made["recipient"].customer_id)
        for name, model in PERSONAL.items():
            assert model.objects.filter(customer=customer).exists(), name

        exported = customer_export_data(customer=customer)
        json.dumps(exported)  # the person's export is plain JSON
        (entry,) = exported["offers"]
        assert entry["code"] == made["code"]
        assert entry["redemptions"][0]["counted"] is True

        job = Job.objects.create(organization=org, kind="org_export", title="export")
        result = organization_export_run(job_id=job.pk, user_id=owner.pk)
        with zipfile.ZipFile(Path(settings.MEDIA_ROOT, result["file"])) as archive:
            for name, (_, _, file_name) in OFFER_TABLES.items():
                if file_name:
                    text = io.TextIOWrapper(archive.open(file_name), encoding="utf-8").read()
                    assert customer.external_id in text, name
                    assert made["code"] in text, name

        customer_erase(customer=customer, actor=owner)
        for name, model in PERSONAL.items():
            assert not model.objects.filter(customer_id=customer.pk).exists(), name
        assert not OfferRecipient.objects.filter(code=made["code"]).exists()
        assert not Event.objects.filter(type="offer_redeemed").exists()
        offer = Offer.objects.get(pk=made["offer"].pk)
        assert offer.recipients_count == 0
        # the order stays without its customer: the code redeems nothing any more
        redemptions_refresh(organization=org)
        assert not OfferRedemption.objects.exists()


def test_the_customer_page_lists_their_codes_and_uses(org, owner_client):
    from django.urls import reverse

    made = build_world(org)
    with tenant_context(org):
        redemptions_refresh(organization=org)
        customer_id = made["recipient"].customer_id
        offer = made["offer"]
    page = owner_client.get(reverse("customers:detail", args=[customer_id]))
    assert page.status_code == 200
    text = page.content.decode()
    assert made["code"] in text
    assert f'for <a href="/offers/{offer.pk}/">{offer.name}</a>' in text
    assert "used on" in text
