from accounts.models import AuditLogEntry, Invitation, Membership, Role
from accounts.services import api_key_create
from accounts.tenancy import tenant_context
from accounts.tests.factories import UserFactory
from core.models import IdempotencyKey, Job


def build_world(organization) -> None:
    """One of each platform object for `organization` (used by the isolation sweep)."""
    from datetime import timedelta

    from django.utils import timezone

    with tenant_context(organization):
        Job.objects.create(
            kind="demo",
            title="Demo job",
            params={"_task": "core.tasks.demo_countdown"},
            status="failed",
        )
        AuditLogEntry.objects.create(action="sign_in", actor_label="someone")
        # a remembered answer to a write sent with an Idempotency-Key
        IdempotencyKey.objects.create(
            key="world-key",
            principal="api_key:0",
            method="POST",
            path="/api/v1/customers/bulk/",
            fingerprint="0" * 64,
            status_code=200,
            response_body='{"created": 0}',
            expires_at=timezone.now() + timedelta(hours=24),
        )
    colleague = UserFactory()
    Membership.objects.create(organization=organization, user=colleague, role=Role.MARKETER)
    Invitation.objects.create(
        organization=organization,
        email=f"invitee-{organization.slug}@example.com",
        role=Role.VIEWER,
        token_hash=Invitation.new_token()[1],
        expires_at=timezone.now() + timedelta(days=3),
    )
    api_key_create(organization=organization, name="world key", scope="read")
