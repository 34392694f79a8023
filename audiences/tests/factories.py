"""`build_world` for the tenant isolation sweep: one of each audiences tenant model,
and a preview job."""

from __future__ import annotations

from accounts.tenancy import tenant_context


def build_world(organization) -> None:
    from audiences.models import Audience, AudienceMember, AudienceStatus
    from audiences.services import PREVIEW_JOB_KIND
    from core.models import Job, JobStatus
    from customers.models import Customer

    with tenant_context(organization):
        customer = Customer.objects.first() or Customer.objects.create(
            organization=organization, external_id="aud-world-1", email="aud-world@example.com"
        )
        audience = Audience.objects.create(
            organization=organization,
            name=f"World audience {organization.pk}",
            definition={"kind": "location", "countries": ["GB"]},
            status=AudienceStatus.READY,
            size=1,
        )
        AudienceMember.objects.create(
            organization=organization, audience=audience, customer=customer, rank=1, score=0.5
        )
        # a model kind's preview, worked out by a job (audiences/preview/{job_id}/)
        definition = {"kind": "lookalike", "seed_customer_ids": [customer.external_id]}
        Job.objects.create(
            organization=organization,
            kind=PREVIEW_JOB_KIND,
            title="Audience preview: Customers like a group you choose",
            status=JobStatus.SUCCEEDED,
            progress=100,
            message="1 customers.",
            params={
                "definition": definition,
                "preview_key": "world",
                "_task": "audiences.tasks.audience_preview",
            },
            result={
                "size": 1,
                "candidates": 1,
                "reachable": {"email": 1, "sms": 0},
                "expected_conversions": None,
                "model": None,
                "fairness": [],
                "best_channel": None,
                "unplaced": None,
                "notes": [],
                "definition": definition,
                "estimated": False,
                "sample_size": None,
                "estimate": None,
            },
        )
