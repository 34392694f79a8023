"""The job admin shows a job's result keys, not its values (they may hold
customer data: an import's rejected rows)."""

import pytest
from django.urls import reverse

from accounts.tenancy import tenant_context
from accounts.tests.factories import UserFactory
from core.models import Job

pytestmark = pytest.mark.django_db


def test_job_page_hides_result_and_params_values(client, org):
    with tenant_context(org):
        job = Job.objects.create(
            organization=org,
            kind="import",
            status="failed",
            params={"file": "jo.secret@example.com.csv"},
            result={"errors": [{"row": 2, "value": "jo.secret@example.com"}]},
        )
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:core_job_change", args=[job.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "jo.secret" not in body
    assert "errors (values hidden" in body
