"""What the owner's audit log calls each action."""

import pytest
from django.urls import reverse

from accounts import support
from accounts.models import AuditLogEntry
from accounts.tests.factories import UserFactory

REASON = "Customer asked why an import failed"


def test_capability_actions_have_labels():
    assert AuditLogEntry(action="offer.created").action_label == "Offer created"
    assert AuditLogEntry(action="support_viewed").action_label == "Viewed by Segmenta support"


def test_an_action_without_a_label_still_reads_as_words():
    assert AuditLogEntry(action="campaign.paused_by_x").action_label == "Campaign paused by x"


@pytest.mark.django_db
def test_owner_can_show_only_what_support_did(client, org, owner):
    from accounts.services import audit_log
    from accounts.tenancy import tenant_context

    with tenant_context(org):
        audit_log(organization=org, action="settings_changed", actor=owner, target="Settings")
    staff = UserFactory(email="helper@segmenta.test", is_staff=True, is_superuser=True)
    grant = support.grant_request(organization=org, staff=staff, reason=REASON, hours=2)
    support.grant_approve(grant=grant, actor=owner)
    client.force_login(owner)
    everything = client.get(reverse("accounts:audit")).content.decode()
    only = client.get(reverse("accounts:audit"), {"show": "support"}).content.decode()
    assert "Settings changed" in everything and "Support access approved" in everything
    assert "Settings changed" not in only
    assert "Support access requested" in only  # done by the staff member
    assert "Support access approved" not in only  # done by the owner
    bogus = client.get(reverse("accounts:audit"), {"show": "nonsense"}).content.decode()
    assert "Settings changed" in bogus
