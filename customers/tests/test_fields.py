"""One definition of the customer fields (customers/fields.py): it covers the model,
and the import, the API, the edit form, the exports and erasure follow it."""

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from django.db import models

from core.jobs import job_start
from customers import fields as customer_fields
from customers.api.serializers import (
    CustomerRecordSerializer,
    CustomerSerializer,
    OrderLineRecordSerializer,
)
from customers.forms import CustomerForm
from customers.models import Customer
from customers.services import customer_erase, customer_export_data
from customers.services.consent import CONSENT_FIELDS
from customers.services.customers import CUSTOMER_EDITABLE, customer_update
from customers.services.exports import CUSTOMER_EXPORT_COLUMNS
from customers.services.imports import kinds, run_records
from customers.services.imports.columns import FIELDS, SYNONYMS
from customers.services.privacy import HEADERS, PERSONAL_BLANK
from customers.tasks import organization_export

from .factories import CustomerFactory

DEFINED = customer_fields.CUSTOMER_FIELDS

# The model field class each kind of value lives in.
KIND_MODEL_FIELD = {
    "id": models.CharField,
    "email": models.CharField,
    "str": models.CharField,
    "date": models.DateField,
    "datetime": models.DateTimeField,
    "latitude": models.FloatField,
    "longitude": models.FloatField,
    "bool": models.BooleanField,
    "json": models.JSONField,
    "count": models.PositiveIntegerField,
    "money": models.DecimalField,
}

# A cell of a customers file and the value it stores, per kind.
FILE_VALUE = {
    "id": ("C-77", "C-77"),
    "email": ("Ann@Example.com", "ann@example.com"),
    "date": ("1976-11-24", dt.date(1976, 11, 24)),
    "datetime": ("2024-03-01T10:00:00+00:00", dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC)),
    "latitude": ("51.5", 51.5),
    "longitude": ("-0.12", -0.12),
    "bool": ("yes", True),
}


def _file_value(f):
    if f.kind == "str":
        text = f"{f.name}-x"[: f.max_length]
        return text, text
    return FILE_VALUE[f.kind]


def _filled(org):
    """A customer with every field a customers file can fill, read by the import."""
    record = {f.file_column: _file_value(f)[0] for f in customer_fields.select(imported=True)}
    outcome = run_records(organization=org, kind="customers", records=[record])
    assert outcome.counts.created == 1, outcome.errors
    return Customer.objects.get(external_id="C-77")


def test_every_model_field_is_defined_or_excluded():
    model = [f.name for f in Customer._meta.concrete_fields]
    defined = [f.name for f in DEFINED]
    assert len(set(defined)) == len(defined)
    assert not set(defined) & set(customer_fields.NOT_FIELDS)
    assert sorted(model) == sorted([*defined, *customer_fields.NOT_FIELDS])


@pytest.mark.parametrize("f", DEFINED, ids=lambda f: f.name)
def test_each_definition_matches_its_model_field(f):
    assert isinstance(f.model_field, KIND_MODEL_FIELD[f.kind])
    if f.kind in ("str", "id", "email"):
        assert f.max_length
    assert f.label and f.label[0].isupper()
    assert not f.form or f.editable, "the form changes only what a person may change"
    assert not f.editable or f.api, "what a person may change, the API shows"
    assert f.on_orders == bool(f.order_aliases)
    assert f.imported == bool(f.aliases)
    assert not f.consent or f.personal


def test_what_is_not_personal_is_said_explicitly():
    # Erasure blanks every personal field; the rest must be a decision, not an omission.
    assert customer_fields.names(personal=False) == [
        "external_id",  # replaced by a keyed hash
        "erased_at",
        "created_at",
        "updated_at",
    ]


def test_consent_fields_are_marked():
    assert customer_fields.names(consent=True) == [
        "accepts_email",
        "accepts_sms",
        "email_consent_at",
        "email_consent_source",
        "sms_consent_at",
        "sms_consent_source",
    ]
    # the fields only the consent service writes
    assert sorted(CONSENT_FIELDS) == sorted(customer_fields.names(consent=True))


def test_import_columns_and_aliases_follow_the_definition():
    imported = customer_fields.select(imported=True)
    # besides the fields, a customers file may give the shop system's own order
    # figures (statistics, written only while no order of the customer is stored)
    figures = {"orders_count": "int", "total_spent": "money"}
    assert FIELDS["customers"] == {**{f.file_column: f.kind for f in imported}, **figures}
    assert set(SYNONYMS["customers"]) - {f.file_column for f in imported} == set(figures)
    for f in imported:
        assert SYNONYMS["customers"][f.file_column] == list(f.aliases)
    assert all(customer_fields.FIELDS[name].statistic for name in figures)
    address = customer_fields.select(on_orders=True)
    assert address and all(f.imported for f in address)
    for f in address:
        assert FIELDS["orders"][f.file_column] == f.kind
        assert SYNONYMS["orders"][f.file_column] == list(f.order_aliases)
    assert kinds.PROFILE_FIELDS == {f.name: f.max_length for f in address}
    # (test_a_customers_file_fills_every_column_it_names reads each one)
    assert kinds.CUSTOMER_FIELDS == [f.name for f in imported if f.kind != "id"]


@pytest.mark.django_db
def test_a_customers_file_fills_every_column_it_names(in_org):
    customer = _filled(in_org)
    for f in customer_fields.select(imported=True):
        assert getattr(customer, f.name) == _file_value(f)[1], f.name
    assert customer.email_consent_at and customer.sms_consent_at  # consent records


@pytest.mark.django_db
def test_an_orders_file_fills_the_address_fields(in_org):
    address = customer_fields.select(on_orders=True)
    line = {"customer_id": "C-9", "ordered_at": "2024-03-01", "sku": "S1", "amount": "5"}
    line.update({f.file_column: _file_value(f)[0] for f in address})
    outcome = run_records(organization=in_org, kind="orders", records=[line])
    assert not outcome.errors, outcome.errors
    customer = Customer.objects.get(external_id="C-9")
    assert {f.name: getattr(customer, f.name) for f in address} == {
        f.name: _file_value(f)[1] for f in address
    }


def test_bulk_record_schema_follows_the_definition():
    fields = CustomerRecordSerializer().fields
    imported = customer_fields.select(imported=True)
    assert list(fields) == [*(f.file_column for f in imported), "attributes"]
    assert [name for name, field in fields.items() if field.required] == ["customer_id"]
    address = {f.file_column for f in customer_fields.select(on_orders=True)}
    assert address <= set(OrderLineRecordSerializer().fields)


def test_api_fields_follow_the_definition():
    fields = CustomerSerializer().fields
    assert list(fields) == [
        "id",
        *customer_fields.names(api=True),
        "segment",
        "segments",
        "predictions",
        "loyalty",
    ]
    writable = [name for name, field in fields.items() if not field.read_only]
    assert writable == customer_fields.names(editable=True)
    assert list(CUSTOMER_EDITABLE) == customer_fields.names(editable=True)


@pytest.mark.django_db
def test_a_person_may_change_every_editable_field(api, org):
    from accounts.tenancy import tenant_context

    with tenant_context(org):
        customer = CustomerFactory(external_id="C-1")
    body = {}
    for f in customer_fields.select(editable=True):
        if f.kind == "json":
            body[f.name] = {"tier": "gold"}
        else:
            body[f.name] = _file_value(f)[0]
    r = api.patch(f"/api/v1/customers/{customer.pk}/", body, format="json")
    assert r.status_code == 200, r.json()
    shown = {
        "id",
        *customer_fields.names(api=True),
        "segment",
        "segments",
        "predictions",
        "loyalty",
    }
    assert set(r.json()) == shown
    with tenant_context(org):
        customer.refresh_from_db()
        for f in customer_fields.select(editable=True):
            expected = {"tier": "gold"} if f.kind == "json" else _file_value(f)[1]
            assert getattr(customer, f.name) == expected, f.name
        # and `customer_update` clears each of them with None
        customer_update(customer=customer, data=dict.fromkeys(CUSTOMER_EDITABLE))
        customer.refresh_from_db()
        for f in customer_fields.select(editable=True):
            assert getattr(customer, f.name) == f.blank, f.name


def test_the_edit_form_follows_the_definition():
    form = CustomerForm()
    assert set(form.fields) == set(customer_fields.names(form=True))
    assert list(form.fields)[:2] == ["first_name", "last_name"]
    for name, field in form.fields.items():
        assert form[name].label == customer_fields.FIELDS[name].label
        assert field.required is False


@pytest.mark.django_db
def test_the_list_export_has_the_definitions_columns(owner_client, org):
    from accounts.tenancy import tenant_context

    with tenant_context(org):
        _filled(org)
    r = owner_client.get("/customers/export.csv")
    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode())))
    listed = customer_fields.listed_fields()
    assert rows[0] == [f.file_column for f in listed]
    assert [f.name for f in listed] == [f for _, f in CUSTOMER_EXPORT_COLUMNS]
    assert rows[0][-1] == "attributes"  # the one JSON cell last
    assert sorted(f.name for f in listed) == sorted(customer_fields.names(listed=True))


@pytest.mark.django_db
def test_the_organisation_export_has_the_definitions_columns(in_org):
    _filled(in_org)
    job = job_start(organization=in_org, kind="org_export", task=organization_export, sync=True)
    assert job.status == "succeeded", job.message
    with zipfile.ZipFile(Path(settings.MEDIA_ROOT, job.result["file"])) as archive:
        rows = list(csv.reader(io.StringIO(archive.read("customers.csv").decode())))
    assert rows[0] == [HEADERS.get(n, n) for n in customer_fields.names(exported=True)]
    assert rows[1][0] == "C-77"


@pytest.mark.django_db
def test_the_person_export_has_the_definitions_fields(in_org):
    customer = _filled(in_org)
    data = customer_export_data(customer=customer)
    assert list(data["customer"]) == customer_fields.names(profile=True)
    assert list(data["statistics"]) == customer_fields.names(statistic=True)
    assert data["customer"]["email"] == "ann@example.com"
    assert isinstance(data["statistics"]["total_spent"], str)  # money as text


@pytest.mark.django_db
def test_erasure_blanks_every_personal_field(in_org, owner):
    customer = _filled(in_org)
    Customer.objects.filter(pk=customer.pk).update(
        attributes={"tier": "gold"},
        orders_count=3,
        total_spent=12,
        first_order_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        last_order_at=dt.datetime(2024, 2, 1, tzinfo=dt.UTC),
    )
    assert set(PERSONAL_BLANK) == set(customer_fields.names(personal=True))
    customer.refresh_from_db()
    for f in customer_fields.select(personal=True):
        assert getattr(customer, f.name) != f.blank, f"{f.name} is blank before erasure"
    customer_erase(customer=customer, actor=owner)
    customer.refresh_from_db()
    for f in customer_fields.select(personal=True):
        assert getattr(customer, f.name) == f.blank, f.name
    assert customer.external_id != "C-77" and customer.erased_at
