"""Backup and restore of one organisation (docs/backups.md): an organisation with
customers, orders, events, feedback, consent history, a live segmentation run with
an edited persona and a live prediction run is backed up with `org_backup`, restored
with `org_restore` as a new organisation, and compared by external ids: the same
customers, orders and lines, segment members and predictions, exactly."""

from __future__ import annotations

import json
import zipfile
from decimal import Decimal

import pytest
from django.core.management import call_command

from accounts.models import Membership, Organization, Role
from accounts.tenancy import tenant_context
from customers.models import ConsentChange, Customer, Event, Feedback, Order, OrderLine, Product
from customers.services import backup
from customers.services.consent import consent_change
from customers.services.importing import import_from_path
from predictions.models import CustomerPrediction, PredictionRun
from segmentation.models import Persona, Segment, SegmentationRun, SegmentMembership
from segmentation.tests.factories import planted_customers

from .factories import DATA

pytestmark = pytest.mark.django_db(transaction=False)


def _command(name, *args, capsys):
    code = 0
    try:
        call_command(name, *args)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def source(org, owner):
    """An organisation with every kind of data and a live pipeline run."""
    planted_customers(org, n_customers=240)
    with tenant_context(org):
        for name, kind in (
            ("orders_returns_guests.csv", "orders"),
            ("customers_messy.csv", "customers"),
            ("events.csv", "events"),
        ):
            import_from_path(organization=org, path=str(DATA / name), kind=kind, run_pipeline=False)
        import_from_path(
            organization=org,
            path=str(DATA / "feedback_reviews.tsv"),
            kind="feedback",
            run_pipeline=False,
        )
        customer = Customer.objects.order_by("pk").first()
        consent_change(customer=customer, channel="email", granted=True, source="test", via="site")
        Customer.objects.filter(pk=customer.pk).update(
            attributes={"tier": "=gold", "note": "-5% off", "n": 3},
            first_name="  spaced  ",
        )
        Order.objects.filter(pk=Order.objects.order_by("pk").first().pk).update(
            properties={"gift": True}, status="pending", shipping_amount=Decimal("4.9500")
        )
        Product.objects.filter(pk=Product.objects.order_by("pk").first().pk).update(
            hidden=True, merchandise=False, merchandise_source="owner"
        )
        from segmentation.pipeline import pipeline_start

        result = pipeline_start(organization=org, steps=["segments", "predictions"], sync=True)
        assert result["status"] == "succeeded", result
        persona = Persona.objects.order_by("pk").first()
        persona.name = "Edited by a person"
        persona.human_edited_fields = ["name"]
        persona.save()
    return org


def _snapshot(org) -> dict:
    with tenant_context(org):
        snap = backup.organization_snapshot()
        snap["personas"] = sorted(
            Persona.objects.values_list("segment__key", "name", "summary", "human_edited_fields")
        )
        snap["segments"] = sorted(
            Segment.objects.values_list("key", "name", "kind", "is_active", "size", "rule")
        )
        snap["consent"] = sorted(
            ConsentChange.objects.values_list(
                "customer__external_id", "channel", "granted", "changed_at", "source", "via"
            )
        )
        snap["events"] = sorted(
            Event.objects.values_list("external_id", "customer__external_id", "type", "properties"),
            key=str,
        )
        snap["feedback"] = sorted(
            Feedback.objects.values_list("external_id", "customer__external_id", "text", "rating")
        )
        snap["products"] = sorted(
            Product.objects.values_list(
                "sku", "name", "category", "price", "hidden", "merchandise", "merchandise_source"
            )
        )
        snap["runs"] = (
            SegmentationRun.objects.get(is_live=True).as_of,
            PredictionRun.objects.get(is_live=True).as_of,
        )
    return snap


def test_backup_and_restore_give_the_same_organisation(source, tmp_path, capsys):
    archive = tmp_path / "acme.zip"
    code, out, err = _command(
        "org_backup", "--org", source.slug, "--out", str(archive), capsys=capsys
    )
    assert code == 0, err
    assert _last_json(out)["file"] == str(archive)
    with zipfile.ZipFile(archive) as z:
        manifest = json.loads(z.read("manifest.json"))
    assert manifest["organization"]["currency"] == source.currency
    assert manifest["files"]["restore/segmentation.segmentmembership.jsonl"] > 0
    assert manifest["files"]["restore/predictions.customerprediction.jsonl"] > 0

    code, out, err = _command(
        "org_restore", str(archive), "--owner", "restorer@example.test", "--name", "Acme again",
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    result = _last_json(out)
    restored = Organization.objects.get(pk=result["organization"]["id"])
    assert restored.pk != source.pk and restored.name == "Acme again"
    assert (restored.currency, restored.time_zone) == (source.currency, source.time_zone)
    assert Membership.objects.filter(
        organization=restored, user__email="restorer@example.test", role=Role.OWNER
    ).exists()

    before, after = _snapshot(source), _snapshot(restored)
    for part in before:
        assert after[part] == before[part], part
    assert before["memberships"] and before["predictions"] and before["lines"]
    # and the source is untouched by the restore; nothing of it reached the new one
    with tenant_context(source):
        assert Customer.objects.count() == len(before["customers"])
    with tenant_context(restored):
        own = set(Customer.objects.values_list("pk", flat=True))
        assert set(SegmentMembership.objects.values_list("customer_id", flat=True)) <= own
        assert set(CustomerPrediction.objects.values_list("customer_id", flat=True)) <= own
        assert set(OrderLine.objects.values_list("order__organization_id", flat=True)) == {
            restored.pk
        }


def test_the_archive_holds_only_its_organisation(org, other_org, tmp_path):
    from .factories import CustomerFactory, OrderFactory, OrderLineFactory

    for o, prefix in ((org, "mine"), (other_org, "theirs")):
        with tenant_context(o):
            c = CustomerFactory(organization=o, external_id=f"{prefix}-1")
            OrderLineFactory(
                organization=o,
                order=OrderFactory(organization=o, customer=c, external_id=f"{prefix}-o1"),
            )
    archive = tmp_path / "acme.zip"
    backup.organization_backup(organization=org, path=archive)
    with zipfile.ZipFile(archive) as z:
        text = "".join(z.read(n).decode() for n in z.namelist())
    assert "mine-1" in text and "mine-o1" in text
    assert "theirs" not in text and other_org.name not in text


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "not a zip archive"),
        ({"customers.csv": "id\n"}, "no manifest.json"),
        ({"manifest.json": json.dumps({"format": "other"})}, "not a Segmenta organisation"),
        (
            {"manifest.json": json.dumps({"format": backup.FORMAT, "version": 99})},
            "version 99",
        ),
    ],
)
def test_restore_refuses_what_is_not_an_archive_it_reads(content, reason, tmp_path, capsys, db):
    path = tmp_path / "x.zip"
    if content is None:
        path.write_text("hello")
    else:
        with zipfile.ZipFile(path, "w") as z:
            for name, text in content.items():
                z.writestr(name, text)
    code, out, err = _command("org_restore", str(path), "--owner", "o@example.test", capsys=capsys)
    assert code == 1 and reason in err
    assert not Organization.objects.exists()  # nothing was created
