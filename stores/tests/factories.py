"""`build_world` for the tenant isolation sweep: one store."""

from __future__ import annotations

from accounts.tenancy import tenant_context


def build_world(organization) -> None:
    from stores.models import Store

    with tenant_context(organization):
        Store.objects.create(
            organization=organization,
            name=f"World store {organization.pk}",
            latitude=51.5,
            longitude=-0.12,
            postal_prefixes=["SW1"],
        )
