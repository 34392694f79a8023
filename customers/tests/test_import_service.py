"""Imports as jobs: the stored file, the report, re-runs, cancellation, erased ids."""

from pathlib import Path
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.tenancy import tenant_context
from core.exceptions import ApplicationError
from core.jobs import JobCancelled, JobHandle
from core.models import Job, JobStatus
from customers.models import Customer, Import, ImportStatus, Order, OrderLine
from customers.services import customer_erase, import_create, import_start
from customers.services.importing import import_execute, import_from_path

from .factories import DATA

pytestmark = pytest.mark.django_db


def upload(name: str, content: bytes | None = None):
    data = content if content is not None else (DATA / name).read_bytes()
    return SimpleUploadedFile(name, data, content_type="text/csv")


def test_upload_is_stored_under_the_organisation(in_org, owner, settings):
    imp = import_create(
        organization=in_org, kind="orders", uploaded_file=upload("orders_bom_tab.tsv"), user=owner
    )
    assert imp.file.startswith(f"org_{in_org.pk}/imports/")
    assert Path(settings.MEDIA_ROOT, imp.file).exists()
    assert imp.status == ImportStatus.DRAFT
    assert imp.mapping["ordered_at"] == "ordered_at"
    assert imp.detected["delimiter"] == "\t"


def test_too_large_and_unreadable_uploads_are_refused(in_org, settings):
    settings.UPLOAD_MAX_BYTES = 10
    with pytest.raises(ApplicationError, match="limit"):
        import_create(
            organization=in_org, kind="orders", uploaded_file=upload("orders_bom_tab.tsv")
        )
    settings.UPLOAD_MAX_BYTES = 10_000
    with pytest.raises(ApplicationError, match="Excel"):
        import_create(
            organization=in_org, kind="orders", uploaded_file=upload("x.csv", b"PK\x03\x04rest")
        )
    assert not Import.objects.exclude(file="").filter(status="succeeded").exists()


def test_import_job_runs_and_reports(in_org, owner):
    imp = import_create(
        organization=in_org, kind="orders", uploaded_file=upload("orders_bad_rows.csv"), user=owner
    )
    job = import_start(imp=imp, user=owner, sync=True)
    imp.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.result["url"] == f"/customers/imports/{imp.pk}/"
    assert (job.result["created"], job.result["rejected"]) == (2, 4)
    assert imp.status == ImportStatus.SUCCEEDED
    assert (imp.rows, imp.created, imp.updated, imp.unchanged, imp.rejected) == (6, 2, 0, 0, 4)
    assert [e["row"] for e in imp.errors] == [2, 3, 4, 5]
    assert imp.errors_file and imp.job_id == job.pk


def test_progress_is_reported_per_chunk(in_org, tmp_path):
    seen = []
    rows = ["order_id,customer_id,ordered_at,sku,quantity,unit_price"]
    rows += [f"{i},c{i % 50},2024-01-01,S,1,1" for i in range(12_000)]
    path = tmp_path / "progress.csv"
    path.write_text("\n".join(rows))
    import_from_path(
        organization=in_org,
        path=str(path),
        kind="orders",
        progress=lambda p, m: seen.append((p, m)),
        run_pipeline=False,
    )
    chunk_reports = [m for _, m in seen if m.startswith("Imported")]
    assert len(chunk_reports) >= 2
    assert "of 12,000 rows" in chunk_reports[0]
    assert all(0 <= p <= 100 for p, _ in seen)


def _state():
    return (
        sorted(
            Order.objects.values_list(
                "external_id", "total", "lines_count", "customer__external_id"
            )
        ),
        sorted(Customer.objects.values_list("external_id", "orders_count", "total_spent")),
        sorted(OrderLine.objects.values_list("order__external_id", "position", "sku", "amount")),
    )


def test_an_interrupted_import_reruns_to_the_same_end_state(org, other_org, owner):
    rows = ["order_id,customer_id,ordered_at,sku,quantity,unit_price"]
    rows += [
        f"{i // 3},c{i // 3 % 40},2024-01-{1 + i // 3 % 28:02d},S{i % 9},1,2.50"
        for i in range(15_000)
    ]
    content = ("\n".join(rows) + "\n").encode()

    # The reference: one clean run (in another organisation).
    with tenant_context(other_org):
        ref = import_create(
            organization=other_org, kind="orders", uploaded_file=upload("a.csv", content)
        )
        import_start(imp=ref, sync=True)
        expected = _state()

    with tenant_context(org):
        # A run that dies after its second chunk (the worker was killed)...
        imp = import_create(
            organization=org, kind="orders", uploaded_file=upload("a.csv", content), user=owner
        )
        calls = {"n": 0}

        def dying(percent, message="", **kw):
            if message.startswith("Imported"):
                calls["n"] += 1
                if calls["n"] == 2:
                    raise SystemExit("worker killed")

        with pytest.raises(SystemExit):
            import_execute(imp=imp, progress=dying)
        assert 0 < Order.objects.count() < len(expected[0])
        imp.refresh_from_db()
        assert imp.status == ImportStatus.FAILED

        # ...and is run again.
        import_execute(imp=imp, progress=None)
        imp.refresh_from_db()
        assert imp.status == ImportStatus.SUCCEEDED
        assert imp.rows == 15_000 and imp.rejected == 0
        assert imp.created + imp.unchanged == 15_000 and imp.unchanged > 0
        assert _state() == expected
        assert OrderLine.objects.count() == 15_000


def test_cancelled_import_keeps_what_was_written(in_org, owner):
    rows = ["order_id,customer_id,ordered_at,sku,quantity,unit_price"]
    rows += [f"{i},c{i % 10},2024-01-01,S,1,1" for i in range(11_000)]
    imp = import_create(
        organization=in_org,
        kind="orders",
        uploaded_file=upload("b.csv", "\n".join(rows).encode()),
        user=owner,
    )
    job = import_start(imp=imp, user=owner, sync=False)  # queued only (tests do not commit)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    handle = JobHandle(job.pk)

    def progress(percent, message=""):
        if message.startswith("Imported"):  # someone presses Cancel after the first chunk
            Job.objects.filter(pk=job.pk).update(cancel_requested=True)
        handle.progress(percent, message, force=True)

    with pytest.raises(JobCancelled):
        import_execute(imp=imp, progress=progress)
    imp.refresh_from_db()
    assert imp.status == ImportStatus.CANCELLED
    assert "run it again" in imp.message
    assert Order.objects.count() == imp.created > 0


def test_erased_customer_stays_erased(in_org, owner, tmp_path):
    import_from_path(
        organization=in_org,
        path=str(DATA / "orders_returns_guests.csv"),
        kind="orders",
        run_pipeline=False,
    )
    customer = Customer.objects.get(external_id="17850")
    customer_erase(customer=customer, actor=owner, sync_files=True)
    imp, summary = import_from_path(
        organization=in_org,
        path=str(DATA / "orders_returns_guests.csv"),
        kind="orders",
        run_pipeline=False,
    )
    assert imp.rejected == 3
    assert all("customer was erased on" in e["message"] for e in imp.errors)
    assert imp.unchanged == 4
    assert not Customer.objects.filter(external_id="17850").exists()
    # Customers files are refused for that id too.
    path = tmp_path / "erased.csv"
    path.write_text("customer_id,email\n17850,back@example.com\n")
    imp, _ = import_from_path(
        organization=in_org, path=str(path), kind="customers", run_pipeline=False
    )
    assert imp.rejected == 1 and imp.created == 0


def test_a_changed_import_starts_the_pipeline(in_org):
    with mock.patch("segmentation.pipeline.pipeline_after_data_change") as after:
        import_from_path(organization=in_org, path=str(DATA / "orders_bom_tab.tsv"), kind="orders")
        import_from_path(organization=in_org, path=str(DATA / "orders_bom_tab.tsv"), kind="orders")
    assert after.call_count == 1  # the second run changed nothing


def test_pipeline_refusal_does_not_fail_the_import(in_org):
    with mock.patch(
        "segmentation.pipeline.pipeline_after_data_change", side_effect=ApplicationError("no steps")
    ):
        imp, _ = import_from_path(
            organization=in_org, path=str(DATA / "orders_bom_tab.tsv"), kind="orders"
        )
    assert imp.status == ImportStatus.SUCCEEDED
