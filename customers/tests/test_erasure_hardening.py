"""Erasure under faults and attack (issue 8, items 3, 12, 16, 17): nothing of the
person outlives the erasure request, a broken file does not stop the clean-up, old
exports go, and the erased person cannot come back by another identifier."""

import datetime as dt
import hashlib
import os
import re
import zipfile
from pathlib import Path

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from accounts.tenancy import tenant_context
from core.jobs import job_start
from core.models import Job
from customers.models import Customer, Import
from customers.services import customer_erase, import_create, import_start
from customers.services.identity import erased_external_id
from customers.services.imports.engine import run_records
from customers.tasks import erasure_scrub, organization_export

from .factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.django_db

EMAIL = "jo.erased@example.com"
PHONE = "+44 20 7946 0018"
ORDERS = (
    "order_id,customer_id,ordered_at,sku,quantity,unit_price\n"
    "A1,AC0004,2024-03-01T10:00:00Z,SKU1,1,9.50\n"
    "A2,KEEP01,2024-03-02T10:00:00Z,SKU1,2,9.50\n"
)


def _person(**kw):
    values = {"external_id": "AC0004", "email": EMAIL, "phone": PHONE, "first_name": "Jo"}
    values.update(kw)
    return CustomerFactory(**values)


def _upload(org, owner, content: str, name: str = "orders.csv") -> Import:
    imp = import_create(
        organization=org,
        kind="orders",
        uploaded_file=SimpleUploadedFile(name, content.encode()),
        user=owner,
    )
    import_start(imp=imp, user=owner, sync=True)
    imp.refresh_from_db()
    return imp


def _every_stored_value() -> str:
    """Every row of every table, as one text (what a database dump would show)."""
    out = []
    for model in apps.get_models():
        for row in model._base_manager.all().values():
            out.append(repr(row))
    return "\n".join(out)


# --- item 3: nothing that outlives the erasure holds the identifiers -----------------------


def test_erasure_writes_no_identifier_anywhere_even_before_the_cleanup_runs(in_org, owner):
    person = _person()
    OrderFactory(customer=person)
    # The clean-up job is queued (on commit) and has not run: nothing may wait in it.
    customer_erase(customer=person, actor=owner)
    stored = _every_stored_value().lower()
    for value in ("ac0004", EMAIL, "7946 0018", "79460018"):
        # Not counting chance matches inside the hex digits of a hash.
        assert not re.search(rf"(?<![0-9a-f]){re.escape(value)}(?![0-9a-f])", stored), value
    job = Job.objects.get(kind="erasure")
    assert job.status == "queued"


def test_saved_audiences_keep_no_erased_seed(in_org, owner):
    """A lookalike audience names its seed customers by their own ids: the erased
    person's leaves every seed list (audiences/tests/test_erasure_seeds.py has the
    rest: rebuilt with the seeds left, or waiting for new ones)."""
    from audiences.models import Audience, AudienceStatus

    person = _person()
    CustomerFactory(external_id="KEEP01")
    for name, seeds in (("Like both", ["AC0004", "KEEP01"]), ("Like Jo", ["AC0004"])):
        Audience.objects.create(
            organization=in_org,
            name=name,
            definition={"kind": "lookalike", "seed_customer_ids": seeds},
            status=AudienceStatus.READY,
        )
    customer_erase(customer=person, actor=owner)
    stored = _every_stored_value().lower()
    assert not re.search(r"(?<![0-9a-f])ac0004(?![0-9a-f])", stored)
    seeds = dict(Audience.objects.values_list("name", "definition__seed_customer_ids"))
    assert seeds == {"Like both": ["KEEP01"], "Like Jo": []}


def test_the_cleanup_an_erasure_starts_cannot_be_cancelled(api, client, org, owner, marketer):
    with tenant_context(org):
        customer_erase(customer=_person(), actor=owner)
        job = Job.objects.get(kind="erasure")
    r = api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_cancellable"
    client.force_login(marketer)
    r = client.post(reverse("core:job_cancel", args=[job.pk]))
    assert r.status_code in (302, 409)
    with tenant_context(org):
        job.refresh_from_db()
    assert job.status == "queued" and not job.cancel_requested


def test_one_unreadable_upload_does_not_stop_the_cleanup(in_org, owner, settings):
    broken = _upload(in_org, owner, ORDERS, "first.csv")
    good = _upload(in_org, owner, ORDERS, "second.csv")
    # The first stored upload is damaged on disk (a compressed file cut short).
    Path(settings.MEDIA_ROOT, broken.file).write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 20)
    person = Customer.objects.get(external_id="AC0004")
    customer_erase(customer=person, actor=owner, sync_files=True)

    job = Job.objects.get(kind="erasure")
    assert job.status == "succeeded", job.message
    assert "could not be read" in job.message
    assert [f["import"] for f in job.result["unreadable"]] == [broken.pk]
    good_text = Path(settings.MEDIA_ROOT, good.file).read_text()
    assert "AC0004" not in good_text and "KEEP01" in good_text


def test_cleanup_run_again_later_still_finds_the_person(in_org, owner, settings):
    """A clean-up that never ran (worker stopped, job lost) is made good by the next
    one: the clean-up works from what erasure keeps, not from its own parameters."""
    first = _upload(in_org, owner, ORDERS)
    customer_erase(customer=Customer.objects.get(external_id="AC0004"), actor=owner)
    Job.objects.filter(kind="erasure").update(status="failed")
    assert "AC0004" in Path(settings.MEDIA_ROOT, first.file).read_text()
    job_start(organization=in_org, kind="erasure", task=erasure_scrub, sync=True)
    text = Path(settings.MEDIA_ROOT, first.file).read_text()
    assert "AC0004" not in text and "KEEP01" in text


def test_queued_cleanup_from_before_the_fix_is_run_without_keeping_identifiers(in_org, owner):
    """A job queued by the old code still carries the identifiers: running it turns
    them into keyed hashes and drops them from its parameters."""
    person = _person()
    Customer.objects.filter(pk=person.pk).update(
        external_id=erased_external_id(in_org.pk, "AC0004"), erased_at=timezone.now(), email=""
    )
    legacy = {"external_id": "AC0004", "email": EMAIL, "phone": PHONE}
    job = job_start(
        organization=in_org,
        kind="erasure",
        task=erasure_scrub,
        params={"customer_id": person.pk, "identifiers": legacy},
        sync=True,
    )
    assert job.status == "succeeded", job.message
    assert "identifiers" not in job.params and EMAIL not in str(job.params)
    outcome = run_records(organization=in_org, kind="customers", records=[{"email": EMAIL}])
    assert outcome.counts.rejected == 1


def test_migration_forgets_identifiers_left_in_old_cleanup_jobs(org, other_org):
    import importlib

    migration = importlib.import_module("customers.migrations.0002_erased_identifiers")
    legacy = {"external_id": "AC0004", "email": EMAIL, "phone": PHONE}
    with tenant_context(org):
        job = Job.objects.create(
            kind="erasure", status="cancelled", params={"customer_id": 7, "identifiers": legacy}
        )
    migration.forget_identifiers_in_cleanup_jobs(apps, None)
    with tenant_context(org):
        job.refresh_from_db()
        assert job.params == {"customer_id": 7}
        outcome = run_records(organization=org, kind="customers", records=[{"email": EMAIL}])
        assert outcome.counts.rejected == 1
    with tenant_context(other_org):
        outcome = run_records(organization=other_org, kind="customers", records=[{"email": EMAIL}])
        assert outcome.counts.rejected == 0


# --- item 12: organisation exports made before an erasure, and expiry ----------------------


def _export(org) -> Job:
    job = job_start(organization=org, kind="org_export", task=organization_export, sync=True)
    assert job.status == "succeeded", job.message
    return job


def test_erasure_removes_earlier_organisation_exports(
    owner_client, org, owner, settings, django_capture_on_commit_callbacks
):
    with tenant_context(org):
        person = _person()
        job = _export(org)
        path = Path(settings.MEDIA_ROOT, job.result["file"])
        with zipfile.ZipFile(path) as z:
            assert EMAIL in z.read("customers.csv").decode()
        with django_capture_on_commit_callbacks(execute=True):
            customer_erase(customer=person, actor=owner)
    assert not path.exists()
    r = owner_client.get(f"/customers/privacy/exports/{job.pk}/")
    assert r.status_code == 410
    assert "erased" in r.content.decode()
    # A new export is fine and does not hold the person.
    with tenant_context(org):
        fresh = _export(org)
    r = owner_client.get(f"/customers/privacy/exports/{fresh.pk}/")
    assert r.status_code == 200
    body = b"".join(r.streaming_content)
    with zipfile.ZipFile(__import__("io").BytesIO(body)) as z:
        assert EMAIL not in z.read("customers.csv").decode()


def test_export_running_during_an_erasure_is_not_served(owner_client, org, owner, settings):
    """An archive begun before an erasure may hold the person even if it was
    written after it: the download refuses it."""
    with tenant_context(org):
        person = _person()
        job = _export(org)
        # Still running when the person is erased; it finishes afterwards.
        Job.objects.filter(pk=job.pk).update(status="running", finished_at=None)
        customer_erase(customer=person, actor=owner)
        Job.objects.filter(pk=job.pk).update(status="succeeded", finished_at=timezone.now())
    assert Path(settings.MEDIA_ROOT, job.result["file"]).exists()
    r = owner_client.get(f"/customers/privacy/exports/{job.pk}/")
    assert r.status_code == 410


def test_exports_expire_after_the_set_time(owner_client, org, settings):
    settings.ORG_EXPORT_EXPIRE_DAYS = 7
    with tenant_context(org):
        _person()
        job = _export(org)
        young = _export(org)
    path = Path(settings.MEDIA_ROOT, job.result["file"])
    assert owner_client.get(f"/customers/privacy/exports/{job.pk}/").status_code == 200
    eight_days_ago = timezone.now() - dt.timedelta(days=8)
    with tenant_context(org):
        Job.objects.filter(pk=job.pk).update(finished_at=eight_days_ago)
    os.utime(path, (eight_days_ago.timestamp(), eight_days_ago.timestamp()))

    r = owner_client.get(f"/customers/privacy/exports/{job.pk}/")
    assert r.status_code == 410
    assert "expired" in r.content.decode()
    page = owner_client.get("/customers/privacy/").content.decode()
    assert "Expired" in page and "kept for 7 days" in page and "(until " in page

    from customers.tasks import org_exports_expire

    assert org_exports_expire() == 1
    assert not path.exists()
    assert Path(settings.MEDIA_ROOT, young.result["file"]).exists()
    assert owner_client.get(f"/customers/privacy/exports/{young.pk}/").status_code == 200


def test_expiry_is_scheduled_by_celery_beat():
    from config.celery import app

    app.finalize()
    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "customers.tasks.org_exports_expire" in tasks


# --- item 16: the tombstone is a keyed hash -------------------------------------------------


def test_tombstone_cannot_be_recovered_by_guessing(in_org, owner, settings):
    person = _person()
    customer_erase(customer=person, actor=owner)
    person.refresh_from_db()
    guess = hashlib.sha256(f"{in_org.pk}:AC0004".encode()).hexdigest()[:48]
    assert person.external_id.startswith("erased:")
    assert guess not in person.external_id
    # The hash depends on the server's secret, which a guesser does not have.
    first = erased_external_id(in_org.pk, "AC0004")
    settings.SECRET_KEY = "another secret " * 4
    assert erased_external_id(in_org.pk, "AC0004") != first


def test_tombstone_of_the_old_unkeyed_form_still_refuses_the_id(in_org):
    legacy = "erased:" + hashlib.sha256(f"{in_org.pk}:OLD0001".encode()).hexdigest()[:48]
    CustomerFactory(external_id=legacy, email="", erased_at=timezone.now())
    outcome = run_records(
        organization=in_org,
        kind="orders",
        records=[
            {"order_id": "O1", "customer_id": "OLD0001", "ordered_at": "2024-01-01", "amount": 5}
        ],
    )
    assert outcome.counts.rejected == 1
    assert "was erased on" in outcome.errors[0]["message"]


# --- item 17: every removed identifier blocks, and rejections do not echo it -----------------


def _erase(owner, **kw):
    person = _person(**kw)
    customer_erase(customer=person, actor=owner)
    return person


def test_bulk_record_with_only_the_erased_email_is_refused(api, org, owner):
    with tenant_context(org):
        _erase(owner)
    r = api.post(
        "/api/v1/customers/bulk/", [{"email": EMAIL.upper(), "first_name": "Jo"}], format="json"
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["created"], body["rejected"]) == (0, 1)
    assert "was erased on" in body["errors"][0]["message"]
    with tenant_context(org):
        assert not Customer.objects.filter(erased_at__isnull=True).exists()


@pytest.mark.parametrize(
    "record",
    [
        {"customer_id": "ac0004"},
        {"customer_id": " Ac0004 "},
        {"customer_id": "NEW-ID", "email": EMAIL},
        {"customer_id": "NEW-ID", "phone": "+44 (20) 7946-0018"},
    ],
)
def test_erased_person_cannot_come_back_by_another_identifier(in_org, owner, record):
    _erase(owner)
    outcome = run_records(organization=in_org, kind="customers", records=[record])
    assert outcome.counts.rejected == 1, outcome.errors
    assert not Customer.objects.filter(erased_at__isnull=True).exists()


def test_orders_and_events_naming_the_erased_email_are_refused(in_org, owner):
    _erase(owner)
    orders = run_records(
        organization=in_org,
        kind="orders",
        records=[
            {"order_id": "O9", "customer_id": "NEW", "email": EMAIL, "ordered_at": "2024-01-01"}
            | {"amount": 3}
        ],
    )
    assert orders.counts.rejected == 1
    assert not Customer.objects.filter(erased_at__isnull=True).exists()


def test_editing_a_customer_to_the_erased_email_or_phone_is_refused(api, org, owner):
    with tenant_context(org):
        _erase(owner)
        other = CustomerFactory(external_id="C2", email="c2@example.com")
    r = api.patch(f"/api/v1/customers/{other.pk}/", {"email": EMAIL.upper()}, format="json")
    assert r.status_code == 400
    assert "erased" in r.json()["error"]["message"]
    r = api.patch(f"/api/v1/customers/{other.pk}/", {"phone": "0044 20 7946 0018"}, format="json")
    assert r.status_code == 200  # other digits: somebody else
    r = api.patch(f"/api/v1/customers/{other.pk}/", {"phone": "+44 20 7946-0018"}, format="json")
    assert r.status_code == 400
    with tenant_context(org):
        other.refresh_from_db()
    assert other.email == "c2@example.com"


def test_live_customer_whose_id_differs_only_in_case_is_not_blocked(in_org, owner):
    CustomerFactory(external_id="ac0004", email="other@example.com", phone="")
    _erase(owner)
    outcome = run_records(
        organization=in_org, kind="customers", records=[{"customer_id": "ac0004", "city": "Leeds"}]
    )
    assert outcome.counts.rejected == 0, outcome.errors
    assert Customer.objects.get(external_id="ac0004").city == "Leeds"


def test_rejections_after_an_erasure_do_not_store_the_erased_id(in_org, owner, settings):
    _erase(owner)
    imp = _upload(in_org, owner, ORDERS.replace("AC0004", "ac0004"))
    assert imp.rejected == 1 and imp.created == 1
    assert "ac0004" not in str(imp.errors).lower()
    [error] = imp.errors
    today = timezone.localdate().isoformat()
    assert error["row"] == 1
    assert error["message"] == f"this customer was erased on {today}"
    errors_file = Path(settings.MEDIA_ROOT, imp.errors_file).read_text()
    assert "ac0004" not in errors_file.lower()
    assert "was erased on" in errors_file


def test_parse_errors_of_an_erased_persons_rows_do_not_echo_the_id(in_org, owner):
    _erase(owner)
    outcome = run_records(
        organization=in_org,
        kind="events",
        records=[{"customer_id": "AC0004", "type": "open", "occurred_at": "not a date"}],
    )
    assert outcome.counts.rejected == 1
    assert "AC0004" not in str(outcome.errors)


# --- the tables that hold personal data, and how erasure and exports treat each --------------

# Every model of this app, with what erasure does to its rows and whether each export
# (one person's JSON, the organisation's zip) carries it. A new model must be added
# here, which makes its author decide both.
CUSTOMER_TABLES = {
    "Customer": ("blanked, id replaced by a keyed hash", "person", "org"),
    "Order": ("kept without the customer", "person", "org"),
    "OrderLine": ("kept (no personal data)", "person", "org"),
    "Product": ("not personal", None, "org"),
    "Event": ("deleted", "person", "org"),
    "Feedback": ("deleted", "person", "org"),
    "ConsentChange": ("deleted", "person", "org"),
    "Import": ("errors scrubbed; stored files rewritten", None, "org"),
    "ErasedIdentifier": ("keyed hashes only, kept to refuse the person", None, None),
    "DeletedOrder": ("order ids a person deleted (no personal data)", None, None),
    "CustomerChange": ("deleted (when a run changed the customer; no personal data)", None, None),
}


def test_every_customer_table_is_listed_for_erasure_and_exports():
    models = {m.__name__ for m in apps.get_app_config("customers").get_models()}
    assert models == set(CUSTOMER_TABLES)
    from customers.services.privacy import EXPORTS

    in_zip = {spec[0].__name__ for spec in EXPORTS.values()} | {"Order", "OrderLine"}
    assert in_zip == {name for name, (_, _, org) in CUSTOMER_TABLES.items() if org}
