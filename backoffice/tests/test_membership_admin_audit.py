"""A membership staff add, change or remove in the back office is written to the
organisation's audit log: nobody joins an organisation unseen by its owners."""

import pytest
from django.urls import reverse

from accounts.models import AuditLogEntry, Membership, Role
from accounts.tenancy import tenant_context
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _log(org):
    with tenant_context(org):
        return list(
            AuditLogEntry.objects.order_by("created_at").values_list(
                "action", "actor_kind", "target"
            )
        )


def test_superuser_joining_changing_and_leaving_is_audited(client, org):
    root = UserFactory(email="root@segmenta.test", is_staff=True, is_superuser=True)
    client.force_login(root)
    add = reverse("admin:accounts_membership_add")
    r = client.post(add, {"organization": org.pk, "user": root.pk, "role": Role.VIEWER})
    assert r.status_code == 302, r.content[:500]
    membership = Membership.objects.get(organization=org, user=root)
    change = reverse("admin:accounts_membership_change", args=[membership.pk])
    r = client.post(change, {"organization": org.pk, "user": root.pk, "role": Role.OWNER})
    assert r.status_code == 302
    r = client.post(
        reverse("admin:accounts_membership_delete", args=[membership.pk]), {"post": "yes"}
    )
    assert r.status_code == 302
    entries = [e for e in _log(org) if e[2] == "root@segmenta.test"]
    assert entries == [
        ("member_joined", "staff", "root@segmenta.test"),
        ("role_changed", "staff", "root@segmenta.test"),
        ("member_removed", "staff", "root@segmenta.test"),
    ]
