"""One consent service: every path that changes consent writes history with how it
came and who recorded it, and the precedence rules hold on every path."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.actor import Actor
from accounts.tenancy import tenant_context
from core.jobs import job_start
from customers.models import ConsentChange, Customer
from customers.services import customer_erase, customer_update, import_create, import_start
from customers.services.consent import consent_change
from customers.services.privacy import customer_export_data
from customers.tasks import organization_export

from .factories import CustomerFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC


def _customer(org, **kw) -> Customer:
    with tenant_context(org):
        return CustomerFactory(external_id="C1", email="c1@example.com", **kw)


def _history(org, customer) -> list[ConsentChange]:
    with tenant_context(org):
        return list(ConsentChange.objects.filter(customer=customer).order_by("recorded_at", "id"))


def _import(org, owner, text: str) -> None:
    with tenant_context(org):
        imp = import_create(
            organization=org,
            kind="customers",
            uploaded_file=SimpleUploadedFile("customers.csv", text.encode()),
            user=owner,
        )
        import_start(imp=imp, user=owner, sync=True)
        imp.refresh_from_db()
        assert imp.status == "succeeded", imp.message


def _unsubscribe(org, customer, channel="email") -> ConsentChange:
    with tenant_context(org):
        customer.refresh_from_db()
        return consent_change(
            customer=customer,
            channel=channel,
            granted=False,
            via="unsubscribe",
            actor=Actor.system("unsubscribe link"),
        )


def _state(org, customer) -> tuple[bool, dt.datetime | None]:
    with tenant_context(org):
        customer.refresh_from_db()
    return customer.accepts_email, customer.email_consent_at


# --- every path writes history -------------------------------------------------------


def test_site_form_records_the_member(owner_client, org, owner):
    customer = _customer(org)
    r = owner_client.post(
        f"/customers/{customer.pk}/edit/",
        {"external_id": "C1", "email": "c1@example.com", "accepts_email": "on"},
    )
    assert r.status_code == 302
    [change] = _history(org, customer)
    assert (change.channel, change.granted, change.via) == ("email", True, "site")
    assert (change.actor_kind, change.actor_label) == ("user", owner.email)
    assert change.source == f"edited by {owner.email}"
    assert _state(org, customer) == (True, change.changed_at)


def test_api_patch_records_the_key(api, org):
    customer = _customer(org, accepts_sms=True)
    r = api.patch(f"/api/v1/customers/{customer.pk}/", {"accepts_sms": False}, format="json")
    assert r.status_code == 200, r.json()
    [change] = _history(org, customer)
    assert (change.channel, change.granted, change.via, change.actor_kind) == (
        "sms",
        False,
        "api",
        "api_key",
    )
    assert change.actor_label.startswith("API key test write (")


def test_bulk_records_keep_the_stated_time(api, org):
    customer = _customer(org)
    stated = "2025-06-01T09:30:00Z"
    r = api.post(
        "/api/v1/customers/bulk/",
        [{"customer_id": "C1", "accepts_email": True, "email_consent_at": stated}],
        format="json",
    )
    assert r.status_code == 200, r.json()
    [change] = _history(org, customer)
    assert (change.via, change.actor_kind, change.granted) == ("api", "api_key", True)
    assert change.changed_at == dt.datetime(2025, 6, 1, 9, 30, tzinfo=UTC)
    assert change.recorded_at > change.changed_at
    assert _state(org, customer) == (True, change.changed_at)


def test_file_import_records_the_member_who_imported(org, owner):
    _import(org, owner, "customer_id,accepts_email,accepts_sms\nC9,yes,no\n")
    with tenant_context(org):
        customer = Customer.objects.get(external_id="C9")
    # A new customer who says no to SMS has not changed anything: only email is history.
    [change] = _history(org, customer)
    assert (change.channel, change.granted, change.via) == ("email", True, "import")
    assert (change.actor_kind, change.actor_label) == ("user", owner.email)
    assert change.source.startswith("import #") and "customers.csv" in change.source


def test_unsubscribe_is_recorded_as_the_persons_own(org):
    customer = _customer(org, accepts_email=True)
    change = _unsubscribe(org, customer)
    assert (change.via, change.actor_kind, change.source) == (
        "unsubscribe",
        "system",
        "Unsubscribe link",
    )
    assert _state(org, customer) == (False, change.changed_at)


def test_repeating_the_held_value_writes_nothing(api, org, owner):
    customer = _customer(org, accepts_email=True)
    api.patch(f"/api/v1/customers/{customer.pk}/", {"accepts_email": True}, format="json")
    _import(org, owner, "customer_id,accepts_email\nC1,true\n")
    assert _history(org, customer) == []


# --- precedence -------------------------------------------------------------------------


def test_an_unsubscribe_outlives_imports_and_edits_without_a_later_time(
    api, owner_client, org, owner
):
    customer = _customer(org, accepts_email=True)
    unsubscribed = _unsubscribe(org, customer)
    # A nightly file that still says yes, with no consent time of its own: kept.
    _import(org, owner, "customer_id,accepts_email\nC1,yes\n")
    # One stating a time before the unsubscribe: older news, kept.
    earlier = (unsubscribed.changed_at - dt.timedelta(days=30)).isoformat()
    _import(org, owner, f"customer_id,accepts_email,email_consent_at\nC1,yes,{earlier}\n")
    assert _state(org, customer) == (False, unsubscribed.changed_at)
    # The API's PATCH and the site's box cannot reverse it either: they say why.
    r = api.patch(f"/api/v1/customers/{customer.pk}/", {"accepts_email": True}, format="json")
    assert r.status_code == 400
    assert "unsubscribed" in r.json()["error"]["fields"]["accepts_email"]
    r = owner_client.post(
        f"/customers/{customer.pk}/edit/",
        {"external_id": "C1", "email": "c1@example.com", "first_name": "Jo", "accepts_email": "on"},
    )
    assert "unsubscribed from email" in r.content.decode()
    with tenant_context(org):
        customer.refresh_from_db()
    assert customer.first_name != "Jo"  # nothing of a refused edit is saved
    assert _state(org, customer) == (False, unsubscribed.changed_at)
    assert [c.via for c in _history(org, customer)] == ["unsubscribe"]


def test_an_opt_in_with_a_later_time_reverses_an_unsubscribe(api, org):
    customer = _customer(org, accepts_email=True)
    unsubscribed = _unsubscribe(org, customer)
    later = unsubscribed.changed_at + dt.timedelta(minutes=5)
    r = api.post(
        "/api/v1/customers/bulk/",
        [{"customer_id": "C1", "accepts_email": True, "email_consent_at": later.isoformat()}],
        format="json",
    )
    assert r.status_code == 200, r.json()
    assert _state(org, customer) == (True, later)
    assert [c.granted for c in _history(org, customer)] == [False, True]


def test_the_persons_own_opt_in_reverses_an_unsubscribe(org):
    customer = _customer(org, accepts_email=True)
    _unsubscribe(org, customer)
    with tenant_context(org):
        change = consent_change(
            customer=customer,
            channel="email",
            granted=True,
            via="preference",
            actor=Actor.system("preference page"),
        )
    assert change is not None and _state(org, customer) == (True, change.changed_at)


def test_a_stated_time_older_than_the_held_one_is_not_applied(api, org):
    held_at = dt.datetime(2025, 5, 1, tzinfo=UTC)
    customer = _customer(org, accepts_email=True, email_consent_at=held_at)
    r = api.post(
        "/api/v1/customers/bulk/",
        [{"customer_id": "C1", "accepts_email": False, "email_consent_at": "2025-04-01T00:00:00Z"}],
        format="json",
    )
    assert r.status_code == 200
    assert _state(org, customer) == (True, held_at)
    assert _history(org, customer) == []
    # Withdrawals that do not state an older time always apply.
    api.post(
        "/api/v1/customers/bulk/", [{"customer_id": "C1", "accepts_email": False}], format="json"
    )
    assert _state(org, customer)[0] is False


def test_customer_update_in_a_job_records_the_system(org):
    customer = _customer(org)
    with tenant_context(org):
        customer_update(customer=customer, data={"accepts_sms": True}, actor=Actor.system("job #7"))
    [change] = _history(org, customer)
    assert (change.via, change.actor_kind, change.actor_label) == ("system", "system", "job #7")


# --- erasure, exports, API ---------------------------------------------------------------


def test_erasure_removes_the_history(org, owner):
    customer = _customer(org, accepts_email=True)
    _unsubscribe(org, customer)
    with tenant_context(org):
        customer_update(customer=customer, data={"accepts_sms": True}, actor=owner)
        assert ConsentChange.objects.filter(customer=customer).count() == 2
        customer_erase(customer=customer, actor=owner)
        assert not ConsentChange.objects.filter(customer=customer).exists()
        customer.refresh_from_db()
    assert (customer.accepts_email, customer.accepts_sms, customer.email_consent_at) == (
        False,
        False,
        None,
    )


def test_both_exports_carry_the_history(org, owner, settings):
    customer = _customer(org, accepts_email=True)
    _unsubscribe(org, customer)
    with tenant_context(org):
        data = customer_export_data(customer=customer)
    [entry] = data["consent"]["history"]
    assert entry["via"] == "unsubscribe" and entry["recorded_by"] == "unsubscribe link"
    assert entry["granted"] is False and entry["recorded_at"]

    with tenant_context(org):
        job = job_start(organization=org, kind="org_export", task=organization_export, sync=True)
    assert job.status == "succeeded", job.message
    archive = Path(settings.MEDIA_ROOT, job.result["file"])
    with zipfile.ZipFile(archive) as z:
        rows = list(csv.DictReader(io.TextIOWrapper(z.open("consent_changes.csv"), "utf-8")))
    assert [(r["customer_id"], r["via"], r["recorded_by"]) for r in rows] == [
        ("C1", "unsubscribe", "unsubscribe link")
    ]


def test_api_lists_the_history_newest_first(api, api_read, org, owner):
    customer = _customer(org)
    with tenant_context(org):
        customer_update(customer=customer, data={"accepts_email": True}, actor=owner)
    _unsubscribe(org, customer)
    r = api_read.get(f"/api/v1/customers/{customer.pk}/consent/")
    assert r.status_code == 200
    results = r.json()["results"]
    assert [(c["granted"], c["via"], c["recorded_by"]) for c in results] == [
        (False, "unsubscribe", "unsubscribe link"),
        (True, "site", owner.email),
    ]
    assert set(results[0]) >= {"channel", "changed_at", "source", "recorded_at"}
    assert api.post(f"/api/v1/customers/{customer.pk}/consent/").status_code == 405


def test_customer_page_shows_how_and_who(owner_client, org, owner):
    customer = _customer(org)
    with tenant_context(org):
        customer_update(customer=customer, data={"accepts_email": True}, actor=owner)
    _unsubscribe(org, customer)
    html = owner_client.get(f"/customers/{customer.pk}/").content.decode()
    assert "Unsubscribe link" in html and "unsubscribe link" in html
    assert "Edited on the site" in html and owner.email in html


def test_migration_says_how_earlier_changes_came(org, owner):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("customers.migrations.0007_consent_history")
    customer = _customer(org)
    with tenant_context(org):
        for source in (f"edited by {owner.email}", "API key ab12cd34", "import #3 (shop.csv)", "?"):
            ConsentChange.objects.create(
                customer=customer, channel="email", granted=True, source=source
            )
    migration.describe_old_changes(apps, None)
    rows = [(c.via, c.actor_kind, c.actor_label) for c in _history(org, customer)]
    assert rows == [
        ("site", "user", owner.email),
        ("api", "api_key", "API key ab12cd34"),
        ("import", "system", "import #3 (shop.csv)"),
        ("", "", ""),
    ]


def test_nothing_else_writes_consent_history():
    """The consent service is the one way: no other module creates history rows or
    inserts them except with the service's own batch (imports and bulk records)."""
    import re

    root = Path(__file__).resolve().parents[2]
    writes = re.compile(
        r"(?<!class )ConsentChange(\.objects\.(create|bulk_create|get_or_create)|\()"
    )
    offenders = []
    for path in root.glob("*/**/*.py"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith((".venv/", "var/")) or "/tests/" in rel or "/migrations/" in rel:
            continue
        text = path.read_text()
        if rel != "customers/services/consent.py" and writes.search(text):
            offenders.append(rel)
        for match in re.finditer(r'insert\(\s*"customers_consentchange",\s*(\S+)', text):
            if not match.group(1).endswith("HISTORY_COLUMNS,"):
                offenders.append(rel)
    assert offenders == []
