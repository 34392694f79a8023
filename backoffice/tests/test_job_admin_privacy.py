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


@pytest.mark.parametrize(
    "lookup",
    ["result__icontains", "params__icontains", "result__regex", "result__errors__0__value"],
)
def test_job_list_cannot_be_filtered_on_hidden_values(client, org, lookup):
    """Filtering the list on a hidden field is an oracle: `?result__icontains=jo.`
    answers whether (and, a character at a time, what) a job's hidden values hold."""
    with tenant_context(org):
        Job.objects.create(
            organization=org,
            kind="import",
            status="failed",
            params={"file": "jo.secret@example.com.csv"},
            result={"errors": [{"row": 2, "value": "jo.secret@example.com"}]},
        )
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:core_job_changelist"), {lookup: "jo.secret@example.com"})
    assert page.status_code == 400  # DisallowedModelAdminLookup
    assert b"jo.secret" not in page.content
