"""Every export carries the rows it promises, on PostgreSQL as the row-level-security
app role too (issue 8, item 2).

Two things used to empty them there: `.iterator()` reads through a server-side
cursor, which lost the organisation setting; and a streaming response is read by
the server after the view and its middleware have returned, outside the request's
scope. These tests commit (transactional), so statements run in autocommit as in
production, and they read streamed bodies outside any scope, as the server does.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest
from django.conf import settings

from accounts.tenancy import no_tenant_context, tenant_context
from core.jobs import job_start
from customers.models import Customer, OrderLine
from customers.tasks import organization_export
from segmentation.models import Segment, SegmentKind
from segmentation.selectors import segment_members
from segmentation.tests.factories import build_world

pytestmark = pytest.mark.django_db(transaction=True)


def _served(response) -> list[list[str]]:
    """The body as the server sends it: read after the request's scope ended
    (`no_tenant_context` is what a server thread sees in production)."""
    assert response.status_code == 200
    with no_tenant_context():
        body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


@pytest.fixture
def world(org, other_org):
    build_world(org)
    build_world(other_org)
    with tenant_context(org):
        ids = set(
            Customer.objects.filter(erased_at__isnull=True).values_list("external_id", flat=True)
        )
    with tenant_context(other_org):
        theirs = set(Customer.objects.values_list("external_id", flat=True))
    assert ids and theirs
    return {"ids": ids, "theirs": theirs - ids}


def test_customers_csv_export_has_every_customer(owner_client, world):
    rows = _served(owner_client.get("/customers/export.csv"))
    assert rows[0][0] == "customer_id"
    assert {r[0] for r in rows[1:]} == world["ids"]


@pytest.mark.parametrize("kind", [SegmentKind.CLUSTER, SegmentKind.RULE])
def test_segment_member_export_has_the_members(owner_client, org, world, kind):
    with tenant_context(org):
        segment = Segment.objects.get(kind=kind, parent=None)  # build_world adds a sub-segment
        members = {c.external_id for c in segment_members(segment=segment)}
    assert members
    rows = _served(owner_client.get(f"/segments/{segment.pk}/export/"))
    assert rows[0][:2] == ["id", "customer_id"]
    assert {r[1] for r in rows[1:]} == members


def test_person_export_has_their_orders(owner_client, api, org, world):
    with tenant_context(org):
        line = OrderLine.objects.select_related("order__customer").first()
        customer = line.order.customer
    site = owner_client.get(f"/customers/{customer.pk}/export/")
    assert site.status_code == 200
    via_api = api.get(f"/api/v1/customers/{customer.pk}/export/")
    assert via_api.status_code == 200
    for data in (json.loads(site.content), via_api.json()):
        assert data["customer"]["external_id"] == customer.external_id
        assert data["orders"] and data["orders"][0]["lines"]


def test_organisation_export_has_every_row(org, world):
    with tenant_context(org):
        lines = OrderLine.objects.count()
        job = job_start(organization=org, kind="org_export", task=organization_export, sync=True)
    assert job.status == "succeeded", job.message
    assert lines and job.result["files"]["orders.csv"] == lines
    with zipfile.ZipFile(Path(settings.MEDIA_ROOT, job.result["file"])) as archive:
        customers = list(csv.reader(io.StringIO(archive.read("customers.csv").decode())))
        orders = list(csv.reader(io.StringIO(archive.read("orders.csv").decode())))
    assert {r[0] for r in customers[1:]} == world["ids"]
    assert len(orders) == lines + 1
