"""A NUL character (a zero byte) in a file or an API record: no database text column
can store one. The row holding it is refused naming the field and the kind of data,
the rest is imported; a binary file is still refused whole."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from customers.models import Customer, Event, Feedback, Order, Product
from customers.services.importing import import_from_path
from customers.services.imports.reader import SAMPLE_BYTES, Unreadable

pytestmark = pytest.mark.django_db

# kind: (header, a good row, a row whose `field` holds a NUL, field, model)
FILES = {
    "customers": (
        "customer_id,first_name,email",
        "c1,Ada,ada@example.com",
        "c2,Bo\x00b,bob@example.com",
        "first_name",
        Customer,
    ),
    "products": ("sku,name,price", "S1,Mug,3", "S2,Pl\x00ate,4", "name", Product),
    "orders": (
        "order_id,customer_id,ordered_at,amount",
        "O1,c1,2024-01-01,5",
        "O2,c1,2024-01-02,6\x00",
        "amount",
        Order,
    ),
    "events": (
        "event_id,customer_id,occurred_at,type",
        "e1,c1,2024-01-01,page_view",
        "e2,c1,2024-01-02,page\x00_view",
        "type",
        Event,
    ),
    "feedback": (
        "feedback_id,customer_id,created_at,rating,text",
        "f1,c1,2024-01-01,4,good",
        "f2,c1,2024-01-02,5,gr\x00eat",
        "text",
        Feedback,
    ),
}


def _import(org, tmp_path, kind, lines):
    path = tmp_path / f"{kind}.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode())
    with tenant_context(org):
        imp, _ = import_from_path(organization=org, path=str(path), kind=kind, run_pipeline=False)
    return imp


@pytest.mark.parametrize("kind", list(FILES))
def test_a_row_with_a_nul_is_refused_naming_its_field_and_kind(org, tmp_path, kind):
    header, good, bad, field, model = FILES[kind]
    imp = _import(org, tmp_path, kind, [header, good, bad])
    assert (imp.created, imp.rejected) == (1, 1)
    [error] = imp.errors
    assert error["row"] == 2 and error["field"] == field
    assert "NUL character" in error["message"]
    assert f"row of the {kind} file" in error["message"]
    with tenant_context(org):
        assert model.objects.count() == 1


def test_a_nul_after_the_first_part_of_the_file_is_refused_not_dropped(org, tmp_path):
    """Past the part read to detect the encoding the NUL was dropped silently
    (Bo\\x00b stored as Bob): the same row is refused wherever it stands."""
    rows = [f"c{i},Ada,ada{i}@example.com" for i in range(SAMPLE_BYTES // 20)]
    imp = _import(
        org, tmp_path, "customers", ["customer_id,first_name,email", *rows, "c2,Bo\x00b,"]
    )
    assert imp.rejected == 1
    assert imp.errors[0]["row"] == len(rows) + 1 and imp.errors[0]["field"] == "first_name"
    with tenant_context(org):
        assert not Customer.objects.filter(first_name="Bob").exists()


def test_a_header_with_a_nul_still_maps_its_columns(org, tmp_path):
    imp = _import(org, tmp_path, "customers", ["customer_id,first\x00_name", "c1,Ada"])
    assert (imp.created, imp.rejected) == (1, 0)
    with tenant_context(org):
        assert Customer.objects.get(external_id="c1").first_name == "Ada"


def test_a_binary_file_is_still_refused_whole(org, tmp_path):
    path = tmp_path / "photo.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64)
    with tenant_context(org), pytest.raises(Unreadable, match="not a text file"):
        import_from_path(organization=org, path=str(path), kind="customers", run_pipeline=False)


@pytest.mark.parametrize(
    "kind, record, field",
    [
        ("customers", {"customer_id": "n1", "first_name": "Nul\x00Byte"}, "first_name"),
        (
            "orders",
            {"order_id": "o1", "customer_id": "c1", "ordered_at": "2024-01-01", "sku": "A\x00"},
            "sku",
        ),
        ("events", {"customer_id": "c1", "occurred_at": "2024-01-01", "type": "vi\x00ew"}, "type"),
        ("products", {"sku": "A", "name": "x", "attributes": {"note": ["a\x00"]}}, "note"),
        ("feedback", {"customer_id": "c1", "created_at": "2024-01-01", "text": "x\x00y"}, "text"),
    ],
)
def test_an_api_record_with_a_nul_names_its_field_not_the_key(api, org, kind, record, field):
    """Before, PostgreSQL's refusal named the kind's key (feedback_id, order_id...)
    and SQLite stored the NUL."""
    r = api.post(f"/api/v1/{kind}/bulk/", [record], format="json")
    assert r.status_code == 200, r.content[:300]
    body = r.json()
    assert (body["created"], body["rejected"]) == (0, 1)
    [error] = body["errors"]
    assert error["index"] == 0 and error["field"] == field
    assert (
        f"NUL character (a zero byte), which cannot be stored: this {kind} record"
        in (error["message"])
    )
