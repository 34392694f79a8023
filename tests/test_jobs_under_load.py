"""Pipeline steps finish while another process writes to the same database (issue 8,
item 4): in the default SQLite mode the site keeps writing while a job reads, and a
progress write must never turn the job's long read into a write that loses."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from django.conf import settings

from accounts.tenancy import tenant_context, unscoped_context
from accounts.tests.factories import OrganizationFactory
from core.jobs import JobHandle
from core.models import Job
from predictions import services as predictions_service
from segmentation.pipeline import pipeline_start
from segmentation.services import segments as segments_service
from segmentation.tests.factories import planted_customers
from tests.test_worker import ROOT, _database_url

# Another process writing like `products/bulk/` does: short transactions, all the time.
WRITER = textwrap.dedent(
    """
    import sys, time
    import django
    django.setup()
    from django.db import transaction
    from accounts.tenancy import tenant_context
    from customers.models import Product

    org_id = int(sys.argv[1])
    n = 0
    with tenant_context(org_id):
        while True:
            with transaction.atomic():
                for _ in range(5):
                    n += 1
                    Product.objects.create(organization_id=org_id, sku=f"w{n}", name="busy")
            if n == 5:
                print("ready", flush=True)
            time.sleep(0.002)
    """
)


@pytest.fixture
def busy_writer(transactional_db):
    """Start a process that keeps writing to the test database; yields its organisation."""
    other = OrganizationFactory()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "SEGMENTA_VAR_DIR": str(settings.VAR_DIR),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env.pop("DATABASE_OWNER_URL", None)
    # The writer runs as the site does, not on the test settings this process has.
    env["DJANGO_ENV"] = "development"
    proc = subprocess.Popen(  # noqa: S603 - this interpreter and a fixed script
        [sys.executable, "-c", WRITER, str(other.pk)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        yield other
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_segments_and_predictions_finish_while_another_process_writes(busy_writer, monkeypatch):
    org = OrganizationFactory()
    planted_customers(org, n_customers=300)
    # Small data, many chunks: every chunk of the read reports progress, as a large
    # organisation's read does.
    monkeypatch.setattr(segments_service, "FETCH_CHUNK", 50)
    monkeypatch.setattr(predictions_service, "FETCH_CHUNK", 50)
    monkeypatch.setattr(JobHandle, "_MIN_INTERVAL", 0.0)
    with unscoped_context():
        from customers.models import Product

        written_before = Product.all_objects.filter(organization=busy_writer).count()

    with tenant_context(org):
        result = pipeline_start(organization=org, steps=["segments", "predictions"], sync=True)
        messages = {j.kind: (j.status, j.message) for j in Job.objects.all()}

    assert result["status"] == "succeeded", messages
    assert result["runs"]["segments"] and result["runs"]["predictions"]
    with unscoped_context():
        written_after = Product.all_objects.filter(organization=busy_writer).count()
    assert written_after > written_before  # the other process really wrote meanwhile
