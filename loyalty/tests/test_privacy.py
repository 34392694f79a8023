"""Every loyalty table, with what erasure does to its rows and whether each export
(one person's JSON, the organisation's zip) carries it. A new model must be added
here, which makes its author decide both."""

from __future__ import annotations

import csv
import io
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
from loyalty.models import LoyaltyAccount, PointsRedemption, TierChange
from loyalty.tests.factories import build_world

LOYALTY_TABLES = {
    "LoyaltyProgram": ("no personal data (the owner's rules)", None, None),
    "LoyaltyTier": ("no personal data (a tier's name and threshold)", None, None),
    "LoyaltyAccount": ("deleted", "account", "loyalty_accounts.csv"),
    "TierChange": ("deleted", "tier_changes", "loyalty_tier_changes.csv"),
    "PointsRedemption": ("deleted", "points_exchanged", "loyalty_points_exchanged.csv"),
}
PERSONAL = {
    "LoyaltyAccount": LoyaltyAccount,
    "TierChange": TierChange,
    "PointsRedemption": PointsRedemption,
}


def test_every_loyalty_table_is_erased_and_exported(org, owner):
    assert {m.__name__ for m in apps.get_app_config("loyalty").get_models()} == set(LOYALTY_TABLES)
    build_world(org)
    with tenant_context(org):
        account = LoyaltyAccount.objects.get()
        customer = Customer.objects.get(pk=account.customer_id)
        for name, model in PERSONAL.items():
            assert model.objects.filter(customer=customer).exists(), name
        exported = customer_export_data(customer=customer)["loyalty"]
        for name, (_, person_key, _) in LOYALTY_TABLES.items():
            if person_key:
                assert exported[person_key], name
        assert exported["account"]["tier"] == "Gold" and exported["account"]["points"] == 250
        assert exported["tier_changes"] == [
            {"from": "", "to": "Gold", "up": True, "changed_on": "2026-01-01"}
        ]
        assert exported["points_exchanged"][0]["code"] == "WORLDLOYALTY1"

        job = Job.objects.create(organization=org, kind="org_export", title="export")
        result = organization_export_run(job_id=job.pk, user_id=owner.pk)
        with zipfile.ZipFile(Path(settings.MEDIA_ROOT, result["file"])) as archive:
            for name, (_, _, file_name) in LOYALTY_TABLES.items():
                if file_name:
                    text = io.TextIOWrapper(archive.open(file_name), encoding="utf-8").read()
                    rows = list(csv.DictReader(io.StringIO(text)))
                    assert [r["customer_id"] for r in rows] == [customer.external_id], name
            accounts = archive.read("loyalty_accounts.csv").decode()
            assert "Gold" in accounts and "250" in accounts

        Event.objects.create(
            organization=org,
            customer=customer,
            type="tier_changed",
            occurred_at=account.updated_at,
            properties={"tier": "Gold", "from": "", "up": True},
        )
        customer_erase(customer=customer, actor=owner)
        for name, model in PERSONAL.items():
            assert not model.objects.filter(customer_id=customer.pk).exists(), name
        assert not Event.objects.filter(customer_id=customer.pk, type="tier_changed").exists()
        # the programme and its tiers hold nobody's data: they stay
        assert apps.get_model("loyalty", "LoyaltyTier").objects.filter(name="Gold").exists()
