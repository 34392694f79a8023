"""`build_world` for the tenant isolation sweep: one of each audiences tenant model."""

from __future__ import annotations

from accounts.tenancy import tenant_context


def build_world(organization) -> None:
    from audiences.models import Audience, AudienceMember, AudienceStatus
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
