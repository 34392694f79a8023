"""An organisation's own plan limits (set by platform staff) in imports, uploads and
the bulk API: customers, rows, columns, upload size (issue 17)."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.limits import default_limits, limits_for
from accounts.models import AuditLogEntry, OrganizationLimits
from accounts.tenancy import tenant_context
from core.exceptions import ApplicationError
from customers.models import Customer, Import, Order
from customers.services.importing import import_from_path

pytestmark = pytest.mark.django_db

CUSTOMER_ROW_REFUSAL = (
    "Your plan's limit of 3 customers is reached: this row would add a new customer "
    "(rows for customers already held still go in). Ask Segmenta support to raise it."
)


def plan(org, **values) -> OrganizationLimits:
    return OrganizationLimits.objects.create(organization=org, **values)


def run_import(org, tmp_path: Path, data: bytes, kind: str = "customers", name="f.csv"):
    """Import a file as `import_data` does: (import, error message or None)."""
    path = tmp_path / name
    path.write_bytes(data)
    with tenant_context(org):
        try:
            imp, _ = import_from_path(
                organization=org, path=str(path), kind=kind, run_pipeline=False
            )
        except ApplicationError as exc:
            return None, exc.message
        return imp, None


def held(org) -> dict[str, str]:
    with tenant_context(org):
        return dict(Customer.objects.values_list("external_id", "first_name"))


def limit_entries(org) -> list[AuditLogEntry]:
    with tenant_context(org):
        return list(AuditLogEntry.objects.filter(action="limit_reached"))


# --- customers ------------------------------------------------------------------------------


def test_a_customers_file_stops_at_the_limit_and_still_updates_who_is_held(org, tmp_path):
    plan(org, customers=3)
    run_import(org, tmp_path, b"customer_id,first_name\nC0,Ada\n")
    imp, error = run_import(
        org,
        tmp_path,
        b"customer_id,first_name\n"
        b"C0,Adela\n"  # held: updated
        b"N1,Bo\n"
        b"N2,Cy\n"
        b"N3,Di\n"  # a fourth customer: refused
        b"N1,Bea\n"  # N1 is now held: updated
        b"N4,Ed\n",  # refused
    )
    assert error is None
    assert held(org) == {"C0": "Adela", "N1": "Bea", "N2": "Cy"}
    assert (imp.created, imp.updated, imp.rejected) == (2, 2, 2)
    assert [(e["row"], e["field"], e["message"]) for e in imp.errors] == [
        (4, "customer_id", CUSTOMER_ROW_REFUSAL),  # data rows, the header not counted
        (6, "customer_id", CUSTOMER_ROW_REFUSAL),
    ]
    # the owner sees it in the audit log, once
    [entry] = limit_entries(org)
    assert entry.actor_kind == "system"
    assert entry.target == "customers"
    assert entry.details["message"] == CUSTOMER_ROW_REFUSAL
    imp, _ = run_import(org, tmp_path, b"customer_id,first_name\nN5,Fay\n")
    assert imp.rejected == 1
    assert len(limit_entries(org)) == 1  # at most one entry per limit per day


def test_an_orders_file_does_not_create_customers_beyond_the_limit(org, other_org, tmp_path):
    plan(org, customers=2)
    data = (
        b"order_id,customer_id,ordered_at,sku,quantity,unit_price\n"
        b"O1,C1,2024-05-01 10:00,S1,1,2.50\n"
        b"O2,C2,2024-05-01 10:00,S1,1,2.50\n"
        b"O3,C3,2024-05-01 10:00,S1,1,2.50\n"
        b"O3,C3,2024-05-01 10:00,S2,1,4.00\n"
        b"O4,C1,2024-05-02 10:00,S1,1,2.50\n"
    )
    imp, error = run_import(org, tmp_path, data, kind="orders")
    assert error is None
    assert sorted(held(org)) == ["C1", "C2"]
    with tenant_context(org):
        assert sorted(Order.objects.values_list("external_id", flat=True)) == ["O1", "O2", "O4"]
    # both lines of the refused order, naming the customer column
    assert [(e["row"], e["field"]) for e in imp.errors] == [
        (3, "customer_id"),
        (4, "customer_id"),
    ]
    assert imp.errors[0]["message"].startswith("Your plan's limit of 2 customers is reached")
    # another organisation (the platform's defaults) is not limited
    imp, error = run_import(other_org, tmp_path, data, kind="orders")
    assert error is None and imp.rejected == 0
    assert sorted(held(other_org)) == ["C1", "C2", "C3"]


def test_erased_customers_do_not_count(org, tmp_path):
    plan(org, customers=2)
    run_import(org, tmp_path, b"customer_id\nC1\nC2\n")
    with tenant_context(org):
        Customer.objects.filter(external_id="C1").update(
            erased_at="2026-01-01T00:00:00Z", external_id="erased-1"
        )
    imp, _ = run_import(org, tmp_path, b"customer_id\nC3\n")
    assert imp.created == 1 and imp.rejected == 0


def test_a_bulk_call_over_the_limit_is_refused_whole(org, api):
    plan(org, customers=3)
    assert (
        api.post(
            "/api/v1/customers/bulk/", [{"customer_id": "C1"}, {"customer_id": "C2"}], format="json"
        ).status_code
        == 200
    )
    refused = api.post(
        "/api/v1/customers/bulk/",
        [
            {"customer_id": "C1", "first_name": "Ada"},
            {"customer_id": "N1"},
            {"customer_id": "N2"},
            {"customer_id": "N1", "first_name": "Bo"},
        ],
        format="json",
    )
    assert refused.status_code == 403
    assert refused.json()["error"] == {
        "code": "limit_reached",
        "message": "Your plan's limit of 3 customers is reached: this call would add 2 new "
        "customers and 1 is left; nothing was written. Ask Segmenta support to raise it.",
        "fields": {"body": "Too many new customers."},
    }
    assert held(org) == {"C1": "", "C2": ""}  # not even the update of C1
    # orders naming unknown customers create them: the same refusal
    lines = [
        {
            "order_id": f"O{i}",
            "customer_id": f"N{i}",
            "ordered_at": "2026-11-20T14:02:00Z",
            "sku": "S1",
            "quantity": 1,
            "unit_price": "2.50",
        }
        for i in (1, 2)
    ]
    refused = api.post("/api/v1/orders/bulk/", lines, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "limit_reached"
    with tenant_context(org):
        assert not Order.objects.exists()
    assert len(limit_entries(org)) == 1
    # what fits goes in
    fits = api.post("/api/v1/orders/bulk/", lines[:1], format="json")
    assert fits.status_code == 200 and fits.json()["created"] == 1
    assert sorted(held(org)) == ["C1", "C2", "N1"]


# --- rows, columns, upload size -----------------------------------------------------------


def test_rows_and_columns_over_the_plan_stop_the_import(org, other_org, tmp_path):
    plan(org, import_rows=3, import_columns=3)
    rows = b"customer_id\nC1\nC2\nC3\nC4\n"
    imp, error = run_import(org, tmp_path, rows)
    assert error == (
        "Your plan's limit of 3 rows in one file is reached: the file has more than 3 rows, "
        "so nothing was imported; split it into smaller files. Ask Segmenta support to raise it."
    )
    wide = b"customer_id,a,b,c\nC1,1,2,3\n"
    imp, error = run_import(org, tmp_path, wide)
    assert error == (
        "Your plan's limit of 3 columns in one file is reached: the file has 4 columns; remove "
        "the columns you do not need. Ask Segmenta support to raise it."
    )
    assert held(org) == {}
    # the platform's defaults for the other organisation
    assert run_import(other_org, tmp_path, rows)[1] is None
    assert run_import(other_org, tmp_path, wide)[1] is None


def test_a_file_over_the_plans_upload_size_is_refused_on_the_site_api_and_command(
    org, owner_client, api, tmp_path
):
    plan(org, upload_bytes=100)
    big = b"customer_id,first_name\n" + b"".join(b"C%03d,Someone\n" % i for i in range(20))
    message = (
        f"Your plan's limit of 100 bytes largest upload is reached: the file is {len(big)} "
        "bytes; compress it as .csv.gz or split it. Ask Segmenta support to raise it."
    )
    page = owner_client.post(
        "/customers/imports/new/",
        {"kind": "customers", "file": SimpleUploadedFile("c.csv", big)},
    )
    assert message in html.unescape(page.content.decode())
    answer = api.post(
        "/api/v1/imports/",
        {"kind": "customers", "file": SimpleUploadedFile("c.csv", big)},
        format="multipart",
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "limit_reached"
    assert answer.json()["error"]["message"] == message
    assert run_import(org, tmp_path, big)[1] == message
    with tenant_context(org):
        assert not Import.objects.exists()
    assert held(org) == {}
    small = b"customer_id\nC1\n"
    answer = api.post(
        "/api/v1/imports/",
        {"kind": "customers", "file": SimpleUploadedFile("c.csv", small)},
        format="multipart",
    )
    assert answer.status_code == 202


def test_without_a_limits_row_the_defaults_apply(org, tmp_path, settings):
    assert limits_for(org) == default_limits()
    assert limits_for(org).own == frozenset()
    settings.ORG_MAX_CUSTOMERS = 2
    imp, _ = run_import(org, tmp_path, b"customer_id\nC1\nC2\nC3\n")
    assert (imp.created, imp.rejected) == (2, 1)
    assert imp.errors[0]["message"].startswith("Your plan's limit of 2 customers is reached")
