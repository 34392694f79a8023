"""Support access grants (accounts/support.py) and the owner's page
(Settings → Support access, accounts/support_views.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from accounts import support
from accounts.models import AuditLogEntry, Role, SupportGrant
from accounts.tenancy import tenant_context
from accounts.tests.factories import UserFactory
from core.exceptions import ApplicationError, PermissionDenied

pytestmark = pytest.mark.django_db

REASON = "Import of orders.csv fails at row 12; the owner asked us to look"


def _staff(*perms: str, email: str = "helper@segmenta.test"):
    user = UserFactory(email=email, is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return type(user).objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def staff():
    return _staff(support.REQUEST_PERMISSION)


@pytest.fixture
def emergency_staff():
    return _staff(
        support.REQUEST_PERMISSION, support.EMERGENCY_PERMISSION, email="oncall@segmenta.test"
    )


def _entries(org, action=None):
    with tenant_context(org):
        qs = AuditLogEntry.objects.all()
        if action:
            qs = qs.filter(action=action)
        return list(qs)


def _requested(org, staff, hours=4):
    return support.grant_request(organization=org, staff=staff, reason=REASON, hours=hours)


def _approved(org, staff, owner, hours=4):
    return support.grant_approve(grant=_requested(org, staff, hours), actor=owner)


# --- Asking ------------------------------------------------------------------------


class TestRequest:
    def test_request_is_pending_gives_no_access_and_emails_the_owners(
        self, org, owner, staff, mailoutbox, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            grant = _requested(org, staff, hours=6)
        assert grant.status == "pending"
        assert support.grant_active_for(staff=staff, organization_id=org.pk) is None
        (mail,) = mailoutbox
        assert mail.to == ["owner@acme.test"]
        assert REASON in mail.body and "helper@segmenta.test" in mail.body
        assert "6 hours" in mail.body
        assert "/accounts/settings/support/" in mail.body
        (entry,) = _entries(org, "support_requested")
        assert entry.actor_kind == "staff" and entry.actor_id == staff.pk
        assert entry.get_actor_kind_display() == "Segmenta support"

    @pytest.mark.parametrize("reason", ["", "   ", "too short", "x" * 501])
    def test_reason_is_required_and_bounded(self, org, staff, reason):
        with pytest.raises(ApplicationError) as exc:
            support.grant_request(organization=org, staff=staff, reason=reason, hours=2)
        assert "reason" in exc.value.message
        with tenant_context(org):
            assert not SupportGrant.objects.exists()

    @pytest.mark.parametrize("hours", [0, -1, 73, "many", None])
    def test_hours_are_one_to_the_maximum(self, org, staff, hours, settings):
        settings.SUPPORT_GRANT_MAX_HOURS = 72
        with pytest.raises(ApplicationError) as exc:
            support.grant_request(organization=org, staff=staff, reason=REASON, hours=hours)
        assert "1 to 72 hours" in exc.value.message

    def test_the_maximum_itself_is_allowed(self, org, staff, settings):
        settings.SUPPORT_GRANT_MAX_HOURS = 72
        assert _requested(org, staff, hours=72).hours == 72

    def test_only_staff_with_the_permission_may_ask(self, org, owner):
        plain_staff = _staff(email="nobody@segmenta.test")
        with pytest.raises(PermissionDenied):
            _requested(org, plain_staff)
        with pytest.raises(PermissionDenied):
            _requested(org, owner)  # an owner is not platform staff


# --- Deciding ---------------------------------------------------------------------------


class TestDecide:
    def test_owner_approves_and_access_runs_for_the_hours_from_approval(self, org, owner, staff):
        grant = _requested(org, staff, hours=3)
        grant = support.grant_approve(grant=grant, actor=owner)
        assert grant.status == "active"
        assert grant.expires_at - grant.approved_at == timedelta(hours=3)
        assert grant.decided_by == owner
        active = support.grant_active_for(staff=staff, organization_id=org.pk)
        assert active is not None and active.pk == grant.pk
        (entry,) = _entries(org, "support_approved")
        assert entry.actor_kind == "user" and entry.actor_label == "owner@acme.test"

    def test_a_non_owner_member_cannot_approve(self, org, staff, admin):
        grant = _requested(org, staff)
        with pytest.raises(PermissionDenied):
            support.grant_approve(grant=grant, actor=admin)
        with pytest.raises(PermissionDenied):
            support.grant_approve(grant=grant, actor=staff)  # nor the staff member
        grant.refresh_from_db()
        assert grant.status == "pending"

    def test_another_organisations_owner_cannot_approve(self, org, other_org, staff, make_member):
        rival_owner = make_member(other_org, Role.OWNER, "owner@rival.test")
        grant = _requested(org, staff)
        with pytest.raises(PermissionDenied):
            support.grant_approve(grant=grant, actor=rival_owner)

    def test_only_a_pending_request_can_be_approved(self, org, owner, staff):
        grant = _approved(org, staff, owner)
        with pytest.raises(ApplicationError, match="no longer waiting"):
            support.grant_approve(grant=grant, actor=owner)
        other = _staff(support.REQUEST_PERMISSION, email="other@segmenta.test")
        declined = support.grant_decline(grant=_requested(org, other), actor=owner)
        with pytest.raises(ApplicationError, match="no longer waiting"):
            support.grant_approve(grant=declined, actor=owner)

    def test_declined_revoked_and_expired_grants_give_no_access(self, org, owner, staff):
        declined = support.grant_decline(grant=_requested(org, staff), actor=owner)
        assert declined.status == "declined"
        assert support.grant_active_for(staff=staff, organization_id=org.pk) is None

        revoked = support.grant_revoke(grant=_approved(org, staff, owner), actor=owner)
        assert revoked.status == "ended"
        assert support.grant_active_for(staff=staff, organization_id=org.pk) is None

        expired = _approved(org, staff, owner)
        with tenant_context(org):
            SupportGrant.objects.filter(pk=expired.pk).update(
                expires_at=timezone.now() - timedelta(seconds=1)
            )
        expired.refresh_from_db()
        assert expired.status == "expired"
        assert support.grant_active_for(staff=staff, organization_id=org.pk) is None
        actions = [e.action for e in _entries(org)]
        assert "support_declined" in actions and "support_revoked" in actions

    def test_the_staff_member_can_end_their_own_access(self, org, owner, staff):
        grant = support.grant_revoke(grant=_approved(org, staff, owner), actor=staff)
        assert grant.status == "ended"
        (entry,) = _entries(org, "support_revoked")
        assert entry.actor_kind == "staff"

    def test_other_staff_cannot_end_it(self, org, owner, staff):
        grant = _approved(org, staff, owner)
        with pytest.raises(PermissionDenied):
            support.grant_revoke(grant=grant, actor=_staff(email="other@segmenta.test"))

    def test_a_grant_for_one_organisation_gives_nothing_of_another(
        self, org, other_org, owner, staff
    ):
        _approved(org, staff, owner)
        assert support.grant_active_for(staff=staff, organization_id=org.pk) is not None
        assert support.grant_active_for(staff=staff, organization_id=other_org.pk) is None

    def test_another_staff_members_grant_is_not_theirs(self, org, owner, staff):
        _approved(org, staff, owner)
        other = _staff(support.REQUEST_PERMISSION, email="other@segmenta.test")
        assert support.grant_active_for(staff=other, organization_id=org.pk) is None

    def test_staff_who_lost_staff_status_have_no_access(self, org, owner, staff):
        _approved(org, staff, owner)
        staff.is_staff = False
        staff.save()
        assert support.grant_active_for(staff=staff, organization_id=org.pk) is None


# --- Emergency -------------------------------------------------------------------------------


class TestEmergency:
    def test_needs_the_permission(self, org, staff):
        with pytest.raises(PermissionDenied, match="permission"):
            support.grant_emergency(organization=org, staff=staff, reason=REASON)
        with tenant_context(org):
            assert not SupportGrant.objects.exists()

    def test_needs_a_reason(self, org, emergency_staff):
        with pytest.raises(ApplicationError, match="reason"):
            support.grant_emergency(organization=org, staff=emergency_staff, reason="urgent")

    def test_is_active_at_once_for_at_most_four_hours_and_owners_are_told(
        self, org, owner, emergency_staff, mailoutbox, django_capture_on_commit_callbacks
    ):
        with pytest.raises(ApplicationError, match="1 to 4 hours"):
            support.grant_emergency(organization=org, staff=emergency_staff, reason=REASON, hours=5)
        with django_capture_on_commit_callbacks(execute=True):
            grant = support.grant_emergency(organization=org, staff=emergency_staff, reason=REASON)
        assert grant.status == "active" and grant.kind == "emergency"
        assert grant.expires_at - grant.approved_at == timedelta(hours=4)
        assert support.grant_active_for(staff=emergency_staff, organization_id=org.pk) == grant
        (mail,) = mailoutbox
        assert mail.to == ["owner@acme.test"] and "emergency" in mail.subject
        assert REASON in mail.body and "/accounts/settings/support/" in mail.body
        (entry,) = _entries(org, "support_emergency")
        assert entry.actor_kind == "staff" and entry.details["reason"] == REASON


# --- Recording views --------------------------------------------------------------------------


class TestViewRecord:
    def test_writes_viewed_by_segmenta_support(self, org, owner, staff):
        grant = _approved(org, staff, owner)
        support.support_view_record(grant=grant, staff=staff, what="customer #123")
        (entry,) = _entries(org, "support_viewed")
        assert entry.target == "customer #123"
        assert entry.get_action_display() == "Viewed by Segmenta support"
        assert entry.actor_kind == "staff"

    @pytest.mark.parametrize(
        "what", ["customer alice@example.com", "customer #C-1001", "Alice Smith", "customers ?q=x"]
    )
    def test_refuses_anything_but_kinds_and_ids(self, org, owner, staff, what):
        grant = _approved(org, staff, owner)
        with pytest.raises(ValueError):
            support.support_view_record(grant=grant, staff=staff, what=what)
        assert not _entries(org, "support_viewed")

    def test_refuses_without_an_active_grant_of_that_staff_member(self, org, owner, staff):
        pending = _requested(org, staff)
        with pytest.raises(PermissionDenied):
            support.support_view_record(grant=pending, staff=staff, what="customers list")
        grant = support.grant_approve(grant=pending, actor=owner)
        with pytest.raises(PermissionDenied):
            support.support_view_record(
                grant=grant, staff=_staff(email="x@segmenta.test"), what="customers list"
            )


# --- The owner's page ---------------------------------------------------------------------------


class TestOwnerPage:
    def test_empty_state_and_what_support_can_see(self, owner_client):
        page = owner_client.get(reverse("accounts:support"))
        assert page.status_code == 200
        text = page.content.decode()
        assert "No requests are waiting" in text
        assert "Nobody at Segmenta can see your customers" in text
        assert "look at, but not change" in text
        assert 'aria-current="page">Support access' in text

    def test_only_owners_see_it(self, client, admin, org):
        client.force_login(admin)
        assert client.get(reverse("accounts:support")).status_code == 403
        assert b"Support access" not in client.get(reverse("accounts:members")).content

    def test_pending_request_approved_from_the_page(self, owner_client, org, staff):
        grant = _requested(org, staff, hours=5)
        page = owner_client.get(reverse("accounts:support")).content.decode()
        assert REASON in page and "helper@segmenta.test" in page and "5 hours" in page
        approve = reverse("accounts:support_decide", kwargs={"pk": grant.pk, "decision": "approve"})
        assert approve in page and "csrfmiddlewaretoken" in page
        response = owner_client.post(approve, follow=True)
        assert response.redirect_chain[-1][0] == reverse("accounts:support")
        assert b"Approved" in response.content
        grant.refresh_from_db()
        assert grant.status == "active"
        assert b"End access now" in response.content

    def test_decline_and_revoke_from_the_page(self, owner_client, org, owner, staff):
        pending = _requested(org, staff)
        owner_client.post(
            reverse("accounts:support_decide", kwargs={"pk": pending.pk, "decision": "decline"})
        )
        pending.refresh_from_db()
        assert pending.status == "declined"
        active = _approved(org, staff, owner)
        owner_client.post(
            reverse("accounts:support_decide", kwargs={"pk": active.pk, "decision": "revoke"})
        )
        active.refresh_from_db()
        assert active.status == "ended"
        page = owner_client.get(reverse("accounts:support")).content.decode()
        assert "Earlier requests" in page and "declined" in page and "ended early" in page

    def test_get_is_not_allowed(self, owner_client, org, staff):
        grant = _requested(org, staff)
        url = reverse("accounts:support_decide", kwargs={"pk": grant.pk, "decision": "approve"})
        assert owner_client.get(url).status_code == 405
        grant.refresh_from_db()
        assert grant.status == "pending"

    def test_another_organisations_grant_is_404(self, client, org, other_org, staff, make_member):
        grant = _requested(org, staff)
        client.force_login(make_member(other_org, Role.OWNER, "owner@rival.test"))
        for decision in ("approve", "decline", "revoke"):
            url = reverse("accounts:support_decide", kwargs={"pk": grant.pk, "decision": decision})
            assert client.post(url).status_code == 404
        grant.refresh_from_db()
        assert grant.status == "pending"

    def test_non_owner_member_is_refused(self, client, org, admin, staff):
        grant = _requested(org, staff)
        client.force_login(admin)
        url = reverse("accounts:support_decide", kwargs={"pk": grant.pk, "decision": "approve"})
        assert client.post(url).status_code == 403
        grant.refresh_from_db()
        assert grant.status == "pending"

    def test_a_second_decision_is_a_message_not_an_error(self, owner_client, org, staff):
        grant = _requested(org, staff)
        url = reverse("accounts:support_decide", kwargs={"pk": grant.pk, "decision": "decline"})
        owner_client.post(url)
        response = owner_client.post(
            reverse("accounts:support_decide", kwargs={"pk": grant.pk, "decision": "approve"}),
            follow=True,
        )
        assert response.status_code == 200
        assert b"no longer waiting" in response.content
        grant.refresh_from_db()
        assert grant.status == "declined"


class TestOneOpenRequest:
    def test_a_second_request_while_one_is_pending_or_running_is_refused(
        self, org, owner, staff, mailoutbox, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            first = _requested(org, staff)
            with pytest.raises(ApplicationError, match="already asked"):
                _requested(org, staff)
        assert len(mailoutbox) == 1  # the owners are not emailed twice
        support.grant_approve(grant=first, actor=owner)
        with pytest.raises(ApplicationError, match="already have access"):
            _requested(org, staff)
        support.grant_revoke(grant=first, actor=staff)
        assert _requested(org, staff).status == "pending"  # after it ended, ask again

    def test_another_staff_member_may_ask_at_the_same_time(self, org, staff):
        _requested(org, staff)
        other = _staff(support.REQUEST_PERMISSION, email="other@segmenta.test")
        assert _requested(org, other).status == "pending"
